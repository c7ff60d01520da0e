"""Kill test: 2,000 signed Stripe-style webhooks, sent by a sender that retries each until
it gets a 2xx (as Stripe does), while ``wfstudio serve`` (SQLite store) is SIGKILLed three
times and started again. Every event ends with exactly one completed execution."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from pathlib import Path

import httpx

from engine.connectors.signatures import sign
from tests.connectors.kill_harness import Server, assert_exactly_once, kill_and_count

EVENTS = 2000
SENDERS = 16  # deliveries in flight at once
SECRET = "whsec_kill"

PIPELINE = f"""
connectors:
  - name: stripe
    type: source.webhook
    config: {{path: /hooks/stripe, scheme: stripe, secret: {SECRET}}}
pipelines:
  charge:
    trigger: {{type: event, config: {{connector: stripe}}}}
    steps:
      - name: read
        type: step.set
        config: {{values: {{id: "{{{{ .trigger.id }}}}", amount: "{{{{ .trigger.data.data.amount }}}}"}}}}
      - name: double
        type: step.set
        config: {{values: {{twice: "{{{{ .amount * 2 }}}}"}}}}
"""


class Sender:
    """Delivers every event until the server answers 2xx, retrying through refusals,
    resets and the server being down (a fresh signature each attempt)."""

    def __init__(self, url: str, ids: list[str]):
        self.url = url
        self.ids = ids
        self.answers: Counter[str] = Counter()  # outcome of each event's 2xx answer
        self.attempts = 0
        self.done = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._send_all())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _send_all(self) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for event_id in self.ids:
            queue.put_nowait(event_id)
        limits = httpx.Limits(max_connections=SENDERS)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as client:
            await asyncio.gather(*(self._worker(client, queue) for _ in range(SENDERS)))

    async def _worker(self, client: httpx.AsyncClient, queue: asyncio.Queue[str]) -> None:
        while not queue.empty():
            event_id = queue.get_nowait()
            body = json.dumps({"id": event_id, "type": "charge.succeeded",
                               "data": {"amount": random.randint(1, 1000)}}).encode()
            for attempt in range(1, 10_000):  # bounded: gives up after ~minutes of refusals
                self.attempts += 1
                headers = {"Content-Type": "application/json", **sign("stripe", SECRET, body)}
                try:
                    answer = await client.post("/hooks/stripe", content=body, headers=headers)
                except httpx.HTTPError:
                    await asyncio.sleep(0.05 * min(attempt, 10))
                    continue
                if 200 <= answer.status_code < 300:
                    self.answers[answer.json()["outcome"]] += 1
                    self.done += 1
                    break
                assert answer.status_code in (503,) or answer.status_code >= 500, answer.text
                await asyncio.sleep(0.05 * min(attempt, 10))
            else:
                raise AssertionError(f"event {event_id} was never acknowledged")


def test_every_signed_webhook_runs_exactly_once_across_kills(tmp_path: Path) -> None:
    file = tmp_path / "hooks.yaml"
    file.write_text(PIPELINE)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    server = Server(file, store, tmp_path / "serve.log")
    ids = [f"evt_kill_{i:05d}" for i in range(EVENTS)]
    sender = Sender(server.url, ids)
    try:
        counts = kill_and_count(server, ids, kills=3, publish=sender.start, timeout=600)
    finally:
        server.kill()
    sender.thread.join(120)
    assert sender.error is None, f"the sender failed: {sender.error!r}"
    assert sender.done == EVENTS, f"only {sender.done} of {EVENTS} were acknowledged"
    assert_exactly_once(counts, ids)
    # Each event was acknowledged once to the sender; an answer lost in a kill came back
    # as a duplicate on the retry, never as a second start.
    assert sum(sender.answers.values()) == EVENTS
    assert set(sender.answers) <= {"started", "duplicate"}
