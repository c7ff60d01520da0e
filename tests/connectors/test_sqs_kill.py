"""Kill test: ``wfstudio serve`` consuming an SQS queue (moto) is SIGKILLed three times.

2,000 messages are sent while the server (SQLite store) takes them in; it is killed three
times and started again. A killed process deletes nothing more, so what it held reappears
after the (short) visibility timeout and is either a duplicate of a recorded start
(deleted, nothing new runs) or new; executions it left running are run again from the
store. Every message must end with exactly one completed execution.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from engine.connectors import envelope
from tests.connectors.conftest import Moto
from tests.connectors.kill_harness import Server, assert_exactly_once, kill_and_count
from tests.waiting import wait_until

MESSAGES = 2000
DEPTH = 200  # messages waiting in the queue at most (see Publisher)

FILE = """
connectors:
  - name: inbox
    type: source.sqs
    config: {config}
pipelines:
  handle:
    trigger: {{type: event, config: {{connector: inbox}}}}
    steps:
      - {{name: first, type: step.set, config: {{values: {{n: "{{{{ .data.n }}}}"}}}}}}
      - {{name: second, type: step.set, config: {{values: {{twice: "{{{{ .n * 2 }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{twice: "{{{{ .twice }}}}"}}}}}}
"""


def test_every_message_has_one_completed_execution_after_three_sigkills(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    # Two seconds of visibility: what a killed server held comes back quickly.
    config = moto_server.config(url, wait_time_seconds=1, visibility_timeout=2, batch=10)
    file = tmp_path / "flow.yaml"
    file.write_text(FILE.format(config=json.dumps(config)))
    server = Server(file, f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "server.log")
    publisher = Publisher(moto_server, url)
    sent = [event["id"] for event in publisher.events]
    try:
        counts = kill_and_count(server, sent, kills=3, publish=publisher.start)
    finally:
        server.kill()
        publisher.stopping.set()
        publisher.join(60)
    assert publisher.error is None, publisher.error
    assert len(set(sent)) == MESSAGES
    assert_exactly_once(counts, sent)
    # and the queue is empty: every message was deleted once its start was recorded
    wait_until(lambda: _depth(moto_server, url) == 0, "the queue to be empty", timeout=60,
               interval=0.5)


class Publisher(threading.Thread):
    """Sends the messages while the server runs, keeping at most ``DEPTH`` waiting: moto
    looks at every queued message for each one it receives, so a queue 2,000 deep would
    measure moto, not the source. The ids are known up front (the harness counts them)."""

    def __init__(self, moto: Moto, url: str):
        super().__init__(daemon=True)
        self.moto, self.url = moto, url
        # Structured CloudEvents, so the ids are known before SQS assigns MessageIds (the
        # MessageId as a stable id is checked across redeliveries in test_sqs.py).
        self.events = [envelope.make("wfstudio:kill-test", "kill.test", {"n": n},
                                     id=f"kill-{n}") for n in range(MESSAGES)]
        self.error: BaseException | None = None
        self.stopping = threading.Event()  # the test ended (failed): send no more
        self._client = moto.client()

    def run(self) -> None:
        try:
            for start in range(0, MESSAGES, 10):
                wait_until(lambda: self.stopping.is_set() or _depth(self.moto, self.url) < DEPTH,
                           "room in the queue", timeout=600, interval=0.05)
                if self.stopping.is_set():
                    return
                reply = self._client.send_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(event)}
                    for i, event in enumerate(self.events[start:start + 10])])
                assert not reply.get("Failed"), reply.get("Failed")
        except BaseException as exc:  # reported by the test
            self.error = exc


def _depth(moto: Moto, url: str) -> int:
    found = moto.client().get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(found["ApproximateNumberOfMessages"]) + int(
        found["ApproximateNumberOfMessagesNotVisible"])
