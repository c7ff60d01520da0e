"""The SQS source and sink against a real local SQS endpoint (moto in server mode).

Events come in through ``LocalService`` exactly as ``wfstudio serve`` takes them; the store
is a real SQLite file (PostgreSQL for two services sharing one queue and one store). A
store that refuses is a real SQLite trigger raising on insert, not a stand-in.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.connectors import envelope
from engine.connectors.sqs import SqsSink
from engine.connectors.types import ConnectorError
from engine.service.models import DlqFilter
from engine.store.store import Store
from tests.connectors.conftest import Moto
from tests.connectors.kill_harness import free_port
from tests.connectors.source_support import REFUSE, completed, serving, source
from tests.waiting import wait_for_condition

PIPELINE = """
connectors:
  - name: inbox
    type: source.sqs
    config: {config}
pipelines:
  handle:
    trigger: {{type: event, config: {{connector: inbox}}}}
    record: full  # the tests compare the recorded event whole (redacted masks what looks personal)
    steps:
      - {{name: first, type: step.set, config: {{values: {{got: "{{{{ .data }}}}"}}}}}}
      - {{name: second, type: step.set, config: {{values: {{kind: "{{{{ .type }}}}"}}}}}}
      - {{name: out, type: step.pipeline_output, config: {{values: {{got: "{{{{ .got }}}}"}}}}}}
"""



def refusing_store(path: Path) -> None:
    """A new store whose every new event start fails in the database (DLQ entries pass)."""
    Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute(REFUSE)


def pipeline_file(tmp_path: Path, config: dict[str, Any], name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(PIPELINE.format(config=json.dumps(config)))
    return path




def depth(moto: Moto, url: str) -> int:
    """Messages in the queue, visible or not (0: every one was deleted)."""
    found = moto.client().get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(found["ApproximateNumberOfMessages"]) + int(
        found["ApproximateNumberOfMessagesNotVisible"])


async def drained(moto: Moto, url: str) -> bool:
    return await asyncio.to_thread(depth, moto, url) == 0


async def test_messages_start_one_execution_each_and_are_deleted(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1,
                                                      type="order.created"))
    sqs = moto_server.client()
    structured = envelope.make("shop", "order.created", {"n": "ce"}, id="ce-order-1")
    bodies = [json.dumps(structured), "plain text, not JSON",
              *[json.dumps({"n": i}) for i in range(23)]]
    sent = [sqs.send_message(QueueUrl=url, MessageBody=b)["MessageId"] for b in bodies]
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        runs = await wait_for_condition(
            lambda: _when(completed(service), lambda items: len(items) == 25),
            "25 completed executions", timeout=60)
        await wait_for_condition(lambda: drained(moto_server, url), "the queue to be empty",
                                 timeout=60, interval=0.2)
        info = await wait_for_condition(
            lambda: _when(source(service), lambda i: i.acknowledged == 25),
            "25 acknowledged deliveries", timeout=60)
    assert info.type == "source.sqs" and info.started == 25 and info.last_error is None
    assert info.redelivered == 0 and info.dead_lettered == 0
    by_id = {run.trigger_payload["id"]: run.trigger_payload for run in runs}
    # A structured CloudEvent keeps its own id; every other message's id is its MessageId.
    assert set(by_id) == {"ce-order-1", *sent[1:]}
    assert by_id["ce-order-1"]["source"] == "shop"
    assert by_id["ce-order-1"]["data"] == {"n": "ce"}
    text = by_id[sent[1]]
    assert text["data"] == "plain text, not JSON" and text["datacontenttype"] == "text/plain"
    account, name = url.rsplit("/", 2)[1:]
    assert text["type"] == "order.created"
    assert text["source"] == f"arn:aws:sqs:us-east-1:{account}:{name}"
    assert sorted(by_id[m]["data"]["n"] for m in sent[2:]) == list(range(23))
    assert all(run.output == {"got": run.trigger_payload["data"]} for run in runs)


async def _when(value: Any, test: Callable[[Any], bool]) -> Any:
    got = await value
    return got if test(got) else None


async def test_a_message_the_store_refused_is_delivered_again_after_its_visibility_timeout(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    store = tmp_path / "store.db"
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1,
                                                      visibility_timeout=1))
    sent = moto_server.client().send_message(QueueUrl=url, MessageBody='{"k": 1}')["MessageId"]
    refusing_store(store)
    async with serving(file, f"sqlite:///{store}") as service:
        # refused twice: received, not deleted, hidden for 1 s, received again
        info = await wait_for_condition(
            lambda: _when(source(service), lambda i: i.delivered >= 2), "a redelivery",
            timeout=60)
        assert info.started == 0 and info.acknowledged == 0
        assert "the test refuses" in (info.last_error or "")
        with sqlite3.connect(store) as db:
            db.execute("DROP TRIGGER refuse_starts")
        [run] = await wait_for_condition(
            lambda: _when(completed(service), lambda items: len(items) == 1), "the execution",
            timeout=60)
        await wait_for_condition(lambda: drained(moto_server, url), "the message deleted",
                                 timeout=60, interval=0.2)
        info = await wait_for_condition(
            lambda: _when(source(service), lambda i: i.acknowledged == 1), "its acknowledgement")
    assert run.trigger_payload["id"] == sent
    assert info.started == 1 and info.last_error is None


async def test_a_batch_stays_hidden_while_a_slow_store_takes_it_in(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    store = tmp_path / "store.db"
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1,
                                                      visibility_timeout=4))
    sqs = moto_server.client()
    async with serving(file, f"sqlite:///{store}") as service:
        await wait_for_condition(lambda: _when(source(service), lambda i: i.lag is not None),
                                 "the source to be consuming")
        # Another connection holds the store's write lock: the intake waits for it.
        blocker = sqlite3.connect(store, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            sqs.send_message(QueueUrl=url, MessageBody='{"slow": true}')
            await wait_for_condition(lambda: _when(source(service), lambda i: i.delivered == 1),
                                     "the message to reach the intake", timeout=60)
            # Three visibility timeouts with the intake stuck: the message must stay hidden
            # (another consumer polling the queue gets nothing).
            for _ in range(12):
                reply = await asyncio.to_thread(
                    sqs.receive_message, QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=0)
                assert not reply.get("Messages"), "the message reappeared mid-intake"
            assert (await source(service)).delivered == 1
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await wait_for_condition(lambda: _when(completed(service), lambda r: len(r) == 1),
                                 "the execution", timeout=60)
        await wait_for_condition(lambda: drained(moto_server, url), "the message deleted",
                                 timeout=60, interval=0.2)
        info = await source(service)
    assert info.delivered == 1 and info.redelivered == 0 and info.started == 1


async def test_a_message_delivered_too_often_goes_to_the_dlq_and_is_deleted(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    store = tmp_path / "store.db"
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1,
                                                      visibility_timeout=1, max_deliveries=2))
    sent = moto_server.client().send_message(QueueUrl=url, MessageBody='{"k": 2}')["MessageId"]
    refusing_store(store)  # refuses starts only: a DLQ entry is still recorded
    async with serving(file, f"sqlite:///{store}") as service:
        [entry] = await wait_for_condition(lambda: service.list_dlq(DlqFilter(pipeline="handle")),
                                           "a DLQ entry", timeout=60)
        await wait_for_condition(lambda: drained(moto_server, url), "the message deleted",
                                 timeout=60, interval=0.2)
        info = await wait_for_condition(
            lambda: _when(source(service), lambda i: i.acknowledged == 1), "its acknowledgement")
    assert entry.error_type == "max_deliveries" and "max_deliveries is 2" in (entry.error or "")
    assert entry.payload["id"] == sent and entry.payload["data"] == {"k": 2}
    assert info.delivered == 3 and info.dead_lettered == 1 and info.started == 0


async def test_a_malformed_cloudevent_goes_to_the_dlq_once_and_the_rest_run(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1))
    sqs = moto_server.client()
    broken = sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
        {"specversion": "1.0", "type": "order.created", "data": {}}))["MessageId"]  # no source
    good = sqs.send_message(QueueUrl=url, MessageBody='{"ok": true}')["MessageId"]
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        [entry] = await wait_for_condition(lambda: service.list_dlq(DlqFilter(pipeline="handle")),
                                           "a DLQ entry", timeout=60)
        [run] = await wait_for_condition(lambda: _when(completed(service), lambda r: len(r) == 1),
                                         "the good message's execution", timeout=60)
        await wait_for_condition(lambda: drained(moto_server, url), "both messages deleted",
                                 timeout=60, interval=0.2)
    assert entry.error_type == "invalid_event" and "source" in (entry.error or "")
    assert entry.payload["id"] == broken  # the id it lacked is its MessageId: stable
    assert run.trigger_payload["id"] == good


async def test_the_sink_sends_a_structured_cloudevent_the_source_reads_back(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    sink = SqsSink("out", moto_server.config(url))
    event = envelope.make("wfstudio:test", "invoice.sent", {"total": 12.5}, id="inv-7")
    try:
        answer = await sink.send(event)
    finally:
        await sink.close()
    [message] = moto_server.client().receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], VisibilityTimeout=0)["Messages"]
    assert answer == {"message_id": message["MessageId"]}
    assert json.loads(message["Body"]) == event
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {"ce-id": "inv-7", "ce-type": "invoice.sent",
                          "ce-source": "wfstudio:test"}
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1))
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        [run] = await wait_for_condition(lambda: _when(completed(service), lambda r: len(r) == 1),
                                         "the sent event's execution", timeout=60)
    assert run.trigger_payload == event


async def test_the_sink_on_a_fifo_queue_groups_and_deduplicates_by_event_id(
        moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue(fifo=True)
    sink = SqsSink("out", moto_server.config(url, message_group_id="orders"))
    first = envelope.make("wfstudio:test", "order.paid", {"n": 1}, id="order-1")
    second = envelope.make("wfstudio:test", "order.paid", {"n": 2}, id="order-2")
    try:
        one = await sink.send(first)
        await sink.send(first)  # a retried send: SQS drops the duplicate
        two = await sink.send(second)
    finally:
        await sink.close()
    assert "sequence_number" in one and "sequence_number" in two
    reply = moto_server.client().receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"])
    bodies = [json.loads(m["Body"]) for m in reply["Messages"]]
    assert [b["id"] for b in bodies] == ["order-1", "order-2"]
    assert {m["Attributes"]["MessageGroupId"] for m in reply["Messages"]} == {"orders"}
    assert two["message_id"] != one["message_id"]


async def test_a_deeply_nested_body_is_taken_as_text(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str]) -> None:
    url = new_queue()
    body = "[" * 50_000 + "]" * 50_000  # valid JSON the parser cannot nest into
    sent = moto_server.client().send_message(QueueUrl=url, MessageBody=body)["MessageId"]
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1))
    async with serving(file, f"sqlite:///{tmp_path / 'store.db'}") as service:
        await wait_for_condition(lambda: drained(moto_server, url), "the message deleted",
                                 timeout=60, interval=0.2)
        info = await source(service)
    assert info.delivered == 1 and info.acknowledged == 1
    found = await asyncio.to_thread(_event_row, tmp_path / "store.db", sent)
    assert found is not None, "no record of the message"


def _event_row(store: Path, event_id: str) -> Any:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT status FROM source_events WHERE event_id = ?",
                          (event_id,)).fetchone()


async def test_the_sink_says_when_its_queue_does_not_exist(moto_server: Moto) -> None:
    config = moto_server.config("unused")
    del config["queue_url"]
    sink = SqsSink("out", {**config, "queue": "no-such-queue"})
    try:
        with pytest.raises(ConnectorError, match="'no-such-queue' does not exist"):
            await sink.send(envelope.make("wfstudio:test", "x.y", {}))
    finally:
        await sink.close()


async def test_a_missing_queue_and_a_refused_endpoint_say_so(
        tmp_path: Path, moto_server: Moto) -> None:
    missing = moto_server.config(f"{moto_server.endpoint}/123456789012/no-such-queue",
                                 wait_time_seconds=1)
    del missing["queue_url"]
    missing["queue"] = "no-such-queue"
    file = pipeline_file(tmp_path, missing)
    async with serving(file, f"sqlite:///{tmp_path / 'a.db'}") as service:
        info = await wait_for_condition(lambda: _when(source(service), lambda i: i.last_error),
                                        "the source's error", timeout=60)
        assert info.state == "failing"
    assert "'no-such-queue' does not exist" in (info.last_error or "")
    closed = f"http://127.0.0.1:{free_port()}"
    file = pipeline_file(tmp_path, moto_server.config(f"{closed}/123456789012/q",
                                                      endpoint_url=closed),
                         name="refused.yaml")
    async with serving(file, f"sqlite:///{tmp_path / 'b.db'}") as service:
        info = await wait_for_condition(lambda: _when(source(service), lambda i: i.last_error),
                                        "the source's error", timeout=90)
    assert f"cannot reach the SQS endpoint {closed}" in (info.last_error or "")


def test_a_config_without_a_queue_is_refused_when_the_file_loads(
        tmp_path: Path, moto_server: Moto) -> None:
    from engine.config.loader import ConfigError, load_file

    config = moto_server.config("unused")
    del config["queue_url"]
    with pytest.raises(ConfigError) as caught:
        load_file(pipeline_file(tmp_path, config))
    assert "config: 'queue' is required" in str(caught.value)


@pytest.mark.postgres
async def test_two_services_sharing_a_queue_run_each_message_once(
        tmp_path: Path, moto_server: Moto, new_queue: Callable[..., str],
        pg_store_url: str) -> None:
    url = new_queue()
    file = pipeline_file(tmp_path, moto_server.config(url, wait_time_seconds=1,
                                                      visibility_timeout=5))
    sqs = moto_server.client()
    sent = []
    for start in range(0, 300, 10):
        reply = sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(10)])
        sent += [m["MessageId"] for m in reply["Successful"]]
    async with serving(file, pg_store_url) as one, serving(file, pg_store_url) as two:
        await wait_for_condition(lambda: _when(completed(one), lambda r: len(r) >= 300),
                                 "300 completed executions", timeout=120, interval=0.2)
        await wait_for_condition(lambda: drained(moto_server, url), "the queue to be empty",
                                 timeout=60, interval=0.2)
        runs = await completed(one)
        infos = [await source(one), await source(two)]
    per_event = Counter(run.trigger_payload["id"] for run in runs)
    assert set(per_event) == set(sent) and set(per_event.values()) == {1}
    assert sum(i.started for i in infos) == 300
