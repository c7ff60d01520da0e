"""step.emit through a pipeline: the envelope it builds, the sink.webhook it sends through
(a real loopback receiver that fails twice first), and the errors a pipeline sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api import Engine
from engine.config.loader import load_text
from engine.connectors import signatures
from engine.errors import ConfigError
from tests.connectors.test_webhook_sink import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def pipeline(url: str, *, attempts: int = 5, dlq: bool = False) -> str:
    return f"""
connectors:
  - name: notify
    type: sink.webhook
    config: {{url: "{url}", secret: emit-secret, scheme: stripe, backoff: 0.01,
              max_attempts: {attempts}}}
  - name: other
    type: sink.webhook
    config: {{url: "{url}"}}
pipelines:
  ship:
    dlq: {str(dlq).lower()}
    trigger: {{type: manual}}
    steps:
      - name: total
        type: step.set
        config: {{values: {{total: "{{{{ .trigger.qty * 3 }}}}"}}}}
      - name: tell
        type: step.emit
        config:
          connector: notify
          type: order.shipped
          subject: "{{{{ .trigger.order }}}}"
          data: {{order: "{{{{ .trigger.order }}}}", total: "{{{{ .total }}}}"}}
  wrong:
    trigger: {{type: manual}}
    steps:
      - name: tell
        type: step.emit
        config: {{connector: "{{{{ .trigger.sink }}}}", type: x.y}}
"""


async def test_emit_sends_the_event_through_the_webhook_sink(receiver: Receiver,
                                                             tmp_path: Path) -> None:
    receiver.script = [502, 503]  # fails twice, then takes it
    async with Engine.open(pipeline(receiver.url), store=f"sqlite:///{tmp_path / 's.db'}") as engine:
        run = await engine.run("ship", {"order": "o-1", "qty": 2})
        assert run.ok, run.error
        events = await engine.events(run.id, types=["step.completed"])
        [told] = [e.data for e in events if e.data.get("step") == "tell"]
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    event = json.loads(body)
    assert event["type"] == "order.shipped" and event["subject"] == "o-1"
    assert event["source"] == "wfstudio://ship" and event["data"] == {"order": "o-1", "total": 6}
    assert event["wfexecution"] == run.id
    signatures.verify(signatures.precheck("stripe", headers), ["emit-secret"], body)
    assert told["output"] == {"id": event["id"], "status": 200, "attempts": 3}
    assert run.output["attempts"] == 3  # merged into the pipeline's current value


async def test_a_sink_that_gives_up_fails_the_step_and_dead_letters(receiver: Receiver,
                                                                   tmp_path: Path) -> None:
    receiver.script = [500] * 10
    text = pipeline(receiver.url, attempts=2, dlq=True)
    async with Engine.open(text, store=f"sqlite:///{tmp_path / 's.db'}") as engine:
        run = await engine.run("ship", {"order": "o-2", "qty": 1})
        assert run.status == "failed"
        assert run.error is not None and run.error["type"] == "connector"
        assert "in 2 attempts" in run.error["message"]
        assert engine.store is not None
        with engine.store.read() as conn:
            entries = conn.exec_driver_sql("SELECT execution_id FROM dlq_entries "
                                           "WHERE pipeline = 'ship'").all()
        assert [e[0] for e in entries] == [run.id]
    assert len(receiver.requests) == 2


async def test_an_unknown_sink_is_a_clear_step_error(receiver: Receiver, tmp_path: Path) -> None:
    async with Engine.open(pipeline(receiver.url), store=None) as engine:
        run = await engine.run("wrong", {"sink": "nowhere"})  # named at run time
        assert run.status == "failed" and run.error is not None
        message = run.error["message"]
        assert "'nowhere'" in message and "sinks: notify, other" in message
    assert receiver.requests == []


async def test_sinks_are_made_once_per_definition_and_closed_with_the_engine(
        receiver: Receiver) -> None:
    engine = await Engine.open(pipeline(receiver.url), store=None)
    try:
        for order in ("a", "b"):
            assert (await engine.run("ship", {"order": order, "qty": 1})).ok
        sink = engine.sinks["notify"]
        assert list(engine.sinks) == ["notify"] and sink._client is not None
    finally:
        await engine.close()
    assert engine.sinks == {} and sink._client is None


def test_the_validator_checks_that_connector_names_a_sink(tmp_path: Path) -> None:
    text = pipeline("http://127.0.0.1:9/x").replace("connector: notify", "connector: notifi")
    with pytest.raises(ConfigError) as raised:
        load_text(text)
    message = str(raised.value)
    assert "config.connector: no sink named 'notifi'" in message and "'notify'" in message
