"""The Redis Streams source and sink against the real Redis on 127.0.0.1:6379.

Events come in through ``LocalService`` exactly as ``wfstudio serve`` takes them, on a real
SQLite store file. Every test uses its own stream key (deleted afterwards). A store that
refuses is a real SQLite trigger raising on insert; a dead consumer is a real consumer of
the group that read entries and never acknowledged them; a Redis that goes away is a
``redis-server`` of the test's own, stopped and started again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from engine.connectors import envelope
from engine.connectors.redis_streams import RedisStreamsSink
from engine.connectors.types import ConnectorError
from engine.service.local import LocalService
from engine.store.store import Store
from tests.connectors.kill_harness import free_port
from tests.connectors.source_support import REFUSE, completed, serving, source
from tests.waiting import wait_for_condition, wait_until

URL = "redis://127.0.0.1:6379/0"
T = TypeVar("T")

PIPELINE = """
connectors:
  - name: inbox
    type: source.redis_streams
    config: {config}
pipelines:
  handle:
    trigger: {{type: event, config: {{connector: inbox}}}}
    steps:
      - {{name: first, type: step.set, config: {{values: {{got: "{{{{ .data }}}}"}}}}}}
      - {{name: second, type: step.set, config: {{values: {{kind: "{{{{ .type }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{got: "{{{{ .got }}}}"}}}}}}
"""



@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at 127.0.0.1:6379: {exc}")
    yield client
    client.close()


@pytest.fixture
def stream(r: redis.Redis) -> Iterator[str]:
    """A stream key of this test's own, deleted afterwards."""
    key = f"wfs-test:{uuid.uuid4().hex[:12]}"
    yield key
    r.delete(key)


def pipeline_file(tmp_path: Path, config: dict[str, Any], name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(PIPELINE.format(config=json.dumps(config)))
    return path




async def when(value: Awaitable[T], check: Callable[[T], bool]) -> Any:
    got = await value
    return got if check(got) else None


def pending(r: redis.Redis, key: str, group: str = "wfstudio") -> int:
    return int(r.xpending(key, group)["pending"])


async def test_entries_start_one_execution_each_and_are_acknowledged(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    structured = envelope.make("shop", "order.created", {"n": "ce"}, id="ce-order-1")
    ids = [r.xadd(stream, {"cloudevent": json.dumps(structured), "type": "ignored"}),
           r.xadd(stream, {"data": json.dumps({"n": 1}), "type": "order.paid",
                           "subject": "o-1"}),
           r.xadd(stream, {"order": "o-2", "amount": "3"}),
           *[r.xadd(stream, {"data": json.dumps({"n": i})}) for i in range(20)]]
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 200,
                                    "type": "order.created"})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        runs = await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == 23),
            "23 completed executions", timeout=60)
        info = await wait_for_condition(
            lambda: when(source(service), lambda i: i.acknowledged == 23 and i.lag == 0),
            "23 acknowledged entries and no lag", timeout=60)
        assert pending(r, stream) == 0
    assert info.type == "source.redis_streams" and info.started == 23
    assert info.lag_unit == "entries"
    assert info.last_error is None and info.dead_lettered == 0 and info.redelivered == 0
    by_id = {run.trigger_payload["id"]: run.trigger_payload for run in runs}
    # A structured CloudEvent keeps its id; a plain entry's id is its stream entry id.
    assert set(by_id) == {"ce-order-1", *ids[1:]}
    assert by_id["ce-order-1"]["source"] == "shop" and by_id["ce-order-1"]["data"] == {"n": "ce"}
    paid = by_id[ids[1]]
    assert (paid["type"], paid["subject"], paid["data"]) == ("order.paid", "o-1", {"n": 1})
    fields_only = by_id[ids[2]]
    assert fields_only["type"] == "order.created"  # the config's type: the entry has none
    assert fields_only["data"] == {"order": "o-2", "amount": "3"}
    assert fields_only["source"] == f"redis-streams:{stream}"


async def test_a_dead_consumers_pending_entries_are_claimed_and_counted(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    r.xgroup_create(stream, "wfstudio", id="0", mkstream=True)
    ids = [r.xadd(stream, {"data": json.dumps({"n": i})}) for i in range(5)]
    # A consumer that read every entry and died before acknowledging any.
    r.xreadgroup("wfstudio", "died", {stream: ">"}, count=10)
    assert pending(r, stream) == 5
    later = r.xadd(stream, {"data": json.dumps({"n": "new"})})
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 100,
                                    "claim_idle_ms": 200})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        runs = await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == 6),
            "6 completed executions", timeout=60)
        await wait_for_condition(lambda: pending(r, stream) == 0, "no pending entries",
                                 timeout=30)
        deliveries = await service.source_deliveries("inbox")
    assert {run.trigger_payload["id"] for run in runs} == {*ids, later}
    assert {d.event_id for d in deliveries} == {*ids, later}
    consumers = {c["name"]: c for c in r.xinfo_consumers(stream, "wfstudio")}
    assert consumers["died"]["pending"] == 0 and len(consumers) == 2


async def test_own_pending_entries_are_taken_back_after_a_restart(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    """Under a fixed consumer name, a restarted source takes its own unacknowledged
    entries back at once (no waiting for claim_idle_ms)."""
    r.xgroup_create(stream, "wfstudio", id="0", mkstream=True)
    ids = [r.xadd(stream, {"data": json.dumps({"n": i})}) for i in range(3)]
    r.xreadgroup("wfstudio", "worker-1", {stream: ">"}, count=10)
    deleted = r.xadd(stream, {"data": json.dumps({"n": "deleted"})})
    r.xreadgroup("wfstudio", "worker-1", {stream: ">"}, count=10)
    r.xdel(stream, deleted)  # pending, but gone: comes back without fields
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 100,
                                    "consumer": "worker-1", "claim_idle_ms": 3_600_000})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        runs = await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == 3),
            "3 completed executions", timeout=60)
        await wait_for_condition(lambda: pending(r, stream) == 0, "no pending entries",
                                 timeout=30)
    assert {run.trigger_payload["id"] for run in runs} == set(ids)


async def test_two_consumers_share_the_group_each_entry_once(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    """Two services on separate stores (so dedup cannot hide a double delivery) read one
    group: every entry reaches exactly one of them."""
    config = {"url": URL, "stream": stream, "block_ms": 100, "batch": 7}
    first = pipeline_file(tmp_path, config, "a.yaml")
    second = pipeline_file(tmp_path, config, "b.yaml")
    r.xgroup_create(stream, "wfstudio", id="0", mkstream=True)
    async with serving(first, f"sqlite:///{tmp_path / 'a.db'}") as a, \
            serving(second, f"sqlite:///{tmp_path / 'b.db'}") as b:
        await wait_for_condition(
            lambda: len(r.xinfo_consumers(stream, "wfstudio")) == 2, "both consumers to join",
            timeout=30)
        ids: list[str] = []
        for chunk in range(20):
            ids += [r.xadd(stream, {"data": json.dumps({"n": chunk * 10 + i})})
                    for i in range(10)]
            await asyncio.sleep(0)

        async def total() -> int:
            return len(await completed(a)) + len(await completed(b))
        await wait_for_condition(lambda: when(total(), lambda n: n >= 200),
                                 "200 completed executions over both", timeout=90)
        await wait_for_condition(lambda: pending(r, stream) == 0, "no pending entries",
                                 timeout=30)
        got_a = [run.trigger_payload["id"] for run in await completed(a)]
        got_b = [run.trigger_payload["id"] for run in await completed(b)]
    assert len(got_a) + len(got_b) == 200
    assert sorted(got_a + got_b) == sorted(ids)
    assert not set(got_a) & set(got_b)


async def test_malformed_entries_are_dead_lettered_and_acknowledged(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    bad_data = r.xadd(stream, {"data": "{not json"})
    bad_event = r.xadd(stream, {"cloudevent": "[1, 2]"})
    no_version = r.xadd(stream, {"cloudevent": json.dumps({"id": "x-1", "type": "t"})})
    blob = json.dumps({"blob": "x" * 5000})
    huge = r.xadd(stream, {"data": blob})
    good = r.xadd(stream, {"data": "{}"})
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 100,
                                    "max_entry_bytes": 4096})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == 1),
            "the good entry's execution", timeout=60)
        info = await wait_for_condition(
            lambda: when(source(service), lambda i: i.acknowledged == 5),
            "5 acknowledged entries", timeout=60)
        letters = await service.list_dlq()
    assert pending(r, stream) == 0
    assert info.dead_lettered == 4 and info.started == 1
    assert {e.error_type for e in letters} == {"invalid_event"}
    errors = sorted(e.error or "" for e in letters)
    assert any(bad_data in e and "field 'data' is not JSON" in e for e in errors), errors
    assert any(bad_event in e and "holds a JSON list" in e for e in errors), errors
    assert any("specversion must be '1.0', got None" in e for e in errors), errors
    assert any(huge in e and "over max_entry_bytes (4,096)" in e for e in errors), errors
    assert {e.payload["id"] for e in letters} == {bad_data, bad_event, "x-1", huge}
    [too_big] = [e for e in letters if e.payload["id"] == huge]
    assert too_big.payload["data"] == {"data": f"<{len(blob):,} bytes>"}  # not the 5 KB
    assert {e.pipeline for e in letters} == {"handle"}
    assert no_version not in " ".join(errors) and good not in " ".join(errors)


async def test_an_entry_delivered_too_often_goes_to_the_dlq(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    r.xgroup_create(stream, "wfstudio", id="0", mkstream=True)
    poison = r.xadd(stream, {"data": json.dumps({"poison": True})})
    # Three consumers in turn took it and died without acknowledging (3 deliveries).
    r.xreadgroup("wfstudio", "crashed-1", {stream: ">"}, count=1)
    r.xautoclaim(stream, "wfstudio", "crashed-2", 0, "0-0")
    r.xautoclaim(stream, "wfstudio", "crashed-3", 0, "0-0")
    fine = r.xadd(stream, {"data": json.dumps({"poison": False})})
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 100,
                                    "claim_idle_ms": 100, "max_deliveries": 3})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        letters = await wait_for_condition(service.list_dlq, "a DLQ entry", timeout=60)
        runs = await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == 1),
            "the other entry's execution", timeout=60)
        await wait_for_condition(lambda: pending(r, stream) == 0, "no pending entries",
                                 timeout=30)
    [letter] = letters
    assert letter.error_type == "max_deliveries"
    assert "delivered 4 times" in (letter.error or "") and "max_deliveries is 3" in letter.error
    assert letter.payload["id"] == poison
    assert [run.trigger_payload["id"] for run in runs] == [fine]


async def test_nothing_is_acknowledged_until_the_store_records_it(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    db = tmp_path / "store.db"
    Store.open(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        conn.execute(REFUSE)
    entry = r.xadd(stream, {"data": json.dumps({"n": 1})})
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 100})
    async with serving(file, f"sqlite:///{db}") as service:
        info = await wait_for_condition(
            lambda: when(source(service), lambda i: i.delivered >= 2 and bool(i.last_error)),
            "the refused entry to be handed over again", timeout=60)
        assert "the test refuses" in (info.last_error or "")
        assert info.acknowledged == 0 and pending(r, stream) == 1
        assert await completed(service) == []
        [held] = r.xpending_range(stream, "wfstudio", "-", "+", 10)
        assert held["message_id"] == entry and held["times_delivered"] == 1
        with sqlite3.connect(db) as conn:  # the store takes writes again
            conn.execute("DROP TRIGGER refuse_starts")
        runs = await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == 1),
            "the entry's execution once the store records again", timeout=60)
        await wait_for_condition(lambda: pending(r, stream) == 0, "the entry acknowledged",
                                 timeout=30)
        # The counter moves just after XACK returns: wait for it, not only for Redis.
        info = await wait_for_condition(
            lambda: when(source(service), lambda i: i.last_error is None and i.acknowledged),
            "the error cleared and the entry counted as acknowledged", timeout=30)
    assert [run.trigger_payload["id"] for run in runs] == [entry]
    assert info.acknowledged == 1 and info.dead_lettered == 0


async def test_the_sink_adds_entries_trimmed_about_maxlen_and_the_source_reads_them(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    sink = RedisStreamsSink("out", {"url": URL, "stream": stream, "maxlen": 100})
    try:
        sent = []
        for i in range(450):
            event = envelope.make("wfstudio://test", "order.shipped", {"n": i},
                                  id=f"evt-{i}", subject=f"o-{i}")
            sent.append((event, await sink.send(event)))
    finally:
        await sink.close()
    event, reply = sent[-1]
    assert reply["stream"] == stream and r.xrange(stream, "-", "+")[-1][0] == reply["id"]
    # MAXLEN ~: trimmed to about 100 (whole nodes at a time), never below.
    assert 100 <= r.xlen(stream) < 450
    [(_, fields)] = r.xrange(stream, reply["id"], reply["id"])
    assert json.loads(fields["cloudevent"]) == event
    assert (fields["id"], fields["type"], fields["subject"]) == ("evt-449", "order.shipped",
                                                                  "o-449")
    kept = r.xlen(stream)
    file = pipeline_file(tmp_path, {"url": URL, "stream": stream, "block_ms": 100})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        runs = await wait_for_condition(
            lambda: when(completed(service), lambda items: len(items) == kept),
            f"{kept} completed executions", timeout=60)
    got = {run.trigger_payload["id"]: run.trigger_payload for run in runs}
    assert got["evt-449"]["data"] == {"n": 449} and got["evt-449"]["source"] == "wfstudio://test"


async def test_the_sink_says_when_redis_is_unreachable() -> None:
    port = free_port()
    sink = RedisStreamsSink("out", {"url": f"redis://127.0.0.1:{port}/0", "stream": "x"})
    try:
        with pytest.raises(ConnectorError, match=f"127.0.0.1:{port}/0 is unreachable"):
            await sink.send(envelope.make("s", "t", {}))
    finally:
        await sink.close()


async def test_a_refused_connection_shows_as_last_error_and_a_restarted_redis_is_rejoined(
        tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    file = pipeline_file(tmp_path, {"url": url, "stream": "orders", "block_ms": 100})
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        info = await wait_for_condition(
            lambda: when(source(service), lambda i: bool(i.last_error)),
            "the refused connection to be reported", timeout=30)
        assert f"Redis at 127.0.0.1:{port}/0 is unreachable" in (info.last_error or "")
        assert info.state == "failing"
        with own_redis(tmp_path, port) as client:
            client.xadd("orders", {"data": "1"})
            await wait_for_condition(
                lambda: when(completed(service), lambda items: len(items) == 1),
                "the first entry's execution", timeout=60)
            await wait_for_condition(
                lambda: when(source(service), lambda i: i.last_error is None),
                "the error cleared", timeout=30)
        info = await wait_for_condition(
            lambda: when(source(service), lambda i: "unreachable" in (i.last_error or "")),
            "the stopped Redis to be reported", timeout=60)
        with own_redis(tmp_path, port) as client:  # same data dir: the stream is back
            client.xadd("orders", {"data": "2"})
            runs = await wait_for_condition(
                lambda: when(completed(service), lambda items: len(items) == 2),
                "the second entry's execution", timeout=90)
            await wait_for_condition(lambda: pending(client, "orders") == 0,
                                     "both entries acknowledged", timeout=30)
    assert sorted(run.trigger_payload["data"] for run in runs) == [1, 2]


class own_redis:
    """A ``redis-server`` of the test's own on ``port`` (append-only file in tmp_path, so a
    restart keeps the stream), stopped on exit."""

    def __init__(self, tmp_path: Path, port: int):
        self.dir, self.port = tmp_path, port
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> redis.Redis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, decode_responses=True)

        def up() -> bool:
            try:
                return bool(self.client.ping())
            except redis.ConnectionError:
                return False
        wait_until(up, f"redis-server on port {self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


EMITTING = """
connectors:
  - name: shipped
    type: sink.redis_streams
    config: {config}
pipelines:
  ship:
    steps:
      - {{name: tell, type: step.emit, config: {{connector: shipped, type: order.shipped,
                                                subject: "{{{{ .order }}}}",
                                                data: {{order: "{{{{ .order }}}}"}}}}}}
"""


async def test_step_emit_adds_the_event_through_the_sink(
        tmp_path: Path, r: redis.Redis, stream: str) -> None:
    file = tmp_path / "ship.yaml"
    file.write_text(EMITTING.format(config=json.dumps({"url": URL, "stream": stream,
                                                       "maxlen": 1000})))
    async with await LocalService.open([file], store=f"sqlite:///{tmp_path / 'store.db'}") as svc:
        result = await svc.run("ship", {"order": "o-7"})
    assert result.status == "completed", result.error
    [(entry_id, fields)] = r.xrange(stream, "-", "+")
    event = json.loads(fields["cloudevent"])
    assert (event["type"], event["subject"], event["data"]) == ("order.shipped", "o-7",
                                                                 {"order": "o-7"})
    assert fields["id"] == event["id"] and fields["type"] == "order.shipped"
    # The step's output: the CloudEvent id, and what the sink said (entry id, stream).
    assert result.output["id"] == event["id"] and result.output["sink_id"] == entry_id
    assert result.output["stream"] == stream
