"""Cache, broker, DLQ and feature-flag step types through the real engine."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.api import Engine
from engine.store import models

MODULES = """\
modules:
  - {name: cache, type: cache.memory, config: {max_entries: 100}}
  - {name: events, type: broker.memory, config: {history: 10}}
  - name: featureflags
    type: featureflags
    config:
      flags:
        new-checkout:
          rules:
            - {match: {country: DE}, variant: blue}
            - {match: {plan: free}, enabled: false}
          rollout: 0
        everyone: true
        nobody: {enabled: false}
"""


def file(pipelines: str) -> str:
    return MODULES + "pipelines:\n" + pipelines


def one(steps_yaml: str, name: str = "p") -> str:
    return file(f"  {name}:\n    steps:\n{steps_yaml}")


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/s.db"


# ---------------------------------------------------------------- cache


async def test_cache_set_get_delete_across_executions(tmp_path: Path) -> None:
    text = file("""\
  put:
    steps:
      - name: put
        type: step.cache_set
        config: {cache: cache, key: "user:{{ .id }}", value: "{{ {name: .name, tags: [1, 2]} }}"}
  get:
    steps:
      - name: get
        type: step.cache_get
        config: {cache: cache, key: "user:{{ .id }}", default: {name: unknown}}
  forget:
    steps:
      - name: forget
        type: step.cache_delete
        config: {cache: cache, key: "user:{{ .id }}"}
""")
    async with Engine.open(text, store=store_url(tmp_path)) as engine:
        miss = await engine.run("get", {"id": 1})
        assert miss.status == "completed", miss.error
        assert miss.output["hit"] is False and miss.output["value"] == {"name": "unknown"}

        put = await engine.run("put", {"id": 1, "name": "Ada"})
        assert put.status == "completed", put.error
        assert put.output["cached"] is True

        hit = await engine.run("get", {"id": 1})
        assert hit.output["hit"] is True
        assert hit.output["value"] == {"name": "Ada", "tags": [1, 2]}

        gone = await engine.run("forget", {"id": 1})
        assert gone.output["deleted"] is True
        again = await engine.run("forget", {"id": 1})
        assert again.output["deleted"] is False
        assert (await engine.run("get", {"id": 1})).output["hit"] is False


async def test_cache_ttl_expires(tmp_path: Path) -> None:
    text = file("""\
  put:
    steps:
      - name: put
        type: step.cache_set
        config: {cache: cache, key: k, value: 1, ttl: 50ms}
  get:
    steps:
      - name: get
        type: step.cache_get
        config: {cache: cache, key: k}
""")
    async with Engine.open(text, store=store_url(tmp_path)) as engine:
        await engine.run("put", {})
        await asyncio.sleep(0.2)  # well past the TTL
        ex = await engine.run("get", {})
        assert ex.status == "completed", ex.error
        assert ex.output == {"value": None, "hit": False}


async def test_cache_bad_ttl_fails_clearly(tmp_path: Path) -> None:
    async with Engine.open(one("""\
      - name: put
        type: step.cache_set
        config: {cache: cache, key: k, value: 1, ttl: "{{ .ttl }}"}
"""), store=store_url(tmp_path)) as engine:
        ex = await engine.run("p", {"ttl": "soon"})
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "config"
    assert "ttl" in ex.error["message"] and "invalid duration" in ex.error["message"]


# ---------------------------------------------------------------- publish


async def test_publish_plain_and_as_cloudevent(tmp_path: Path) -> None:
    async with Engine.open(one("""\
      - name: plain
        type: step.publish
        config: {broker: events, topic: orders.created, payload: {id: "{{ .id }}"}}
      - name: ce
        type: step.publish
        config:
          broker: events
          topic: orders.created
          payload: {id: "{{ .trigger.id }}", total: "{{ .total }}"}
          cloudevent: {type: com.example.order.created, source: /orders,
                       subject: "{{ .trigger.id }}"}
      - name: out
        type: step.set
        config: {values: {plain: "{{ .steps.plain }}", ce: "{{ .steps.ce }}"}}
"""), store=store_url(tmp_path)) as engine:
        ex = await engine.run("p", {"id": "o-1", "total": 12.5})
        messages = engine.modules["events"].messages("orders.created")
    assert ex.status == "completed", ex.error
    plain, ce = ex.output["plain"], ex.output["ce"]
    assert plain["published"] is True and plain["topic"] == "orders.created"
    assert messages[0]["id"] == plain["id"]
    assert messages[0]["payload"] == {"id": "o-1"}

    envelope = messages[1]["payload"]
    assert envelope["specversion"] == "1.0"
    assert envelope["id"] == ce["id"]
    assert envelope["type"] == "com.example.order.created"
    assert envelope["source"] == "/orders"
    assert envelope["subject"] == "o-1"
    assert envelope["datacontenttype"] == "application/json"
    assert envelope["data"] == {"id": "o-1", "total": 12.5}
    when = dt.datetime.fromisoformat(envelope["time"].replace("Z", "+00:00"))
    assert when.tzinfo is not None


async def test_publish_reaches_a_subscriber(tmp_path: Path) -> None:
    received: list[Any] = []
    async with Engine.open(one("""\
      - name: pub
        type: step.publish
        config: {broker: events, topic: audit, payload: "{{ .n }}"}
"""), store=store_url(tmp_path)) as engine:
        broker = engine.modules["events"]
        broker.subscribe("audit", lambda message: received.append(message["payload"]))
        for n in range(3):
            await engine.run("p", {"n": n})
        await broker.drain()
    assert received == [0, 1, 2]


# ---------------------------------------------------------------- DLQ


async def test_dlq_send_writes_an_entry(tmp_path: Path) -> None:
    async with Engine.open(one("""\
      - name: park
        type: step.dlq_send
        config: {payload: {order: "{{ .id }}"}, error: "customer {{ .customer }} unknown"}
      - name: park-trigger
        type: step.dlq_send
        config: {}
"""), store=store_url(tmp_path)) as engine:
        ex = await engine.run("p", {"id": 5, "customer": "c-9"})
        assert ex.status == "completed", ex.error
        assert engine.store is not None
        with engine.store.read() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(models.dlq_entries))}
    assert len(rows) == 2
    by_step = {r.step: r for r in rows.values()}
    assert by_step["park"].payload == {"order": 5}
    assert by_step["park"].error == "customer c-9 unknown"
    assert by_step["park"].execution_id == ex.id
    assert by_step["park-trigger"].payload == {"id": 5, "customer": "c-9"}
    assert "park-trigger" in by_step["park-trigger"].error
    assert ex.output["dlq_id"] == by_step["park-trigger"].id


# ---------------------------------------------------------------- feature flags


def flag(ex: Any) -> dict[str, Any]:
    """The flag step's own output keys out of the execution's merged output."""
    assert ex.status == "completed", ex.error
    return {k: ex.output[k] for k in ("enabled", "variant", "reason")}


async def test_feature_flag_rules_and_unknown_flags(tmp_path: Path) -> None:
    async with Engine.open(file("""\
  p:
    steps:
      - name: flag
        type: step.feature_flag
        config: {flag: "{{ .flag }}", user: "{{ .user }}"}
"""), store=store_url(tmp_path)) as engine:
        de = await engine.run("p", {"flag": "new-checkout",
                                    "user": {"key": "u1", "country": "DE"}})
        free = await engine.run("p", {"flag": "new-checkout", "user": {"id": 7, "plan": "free"}})
        other = await engine.run("p", {"flag": "new-checkout", "user": "u2"})
        on = await engine.run("p", {"flag": "everyone", "user": "u2"})
        off = await engine.run("p", {"flag": "nobody", "user": "u2"})
        unknown = await engine.run("p", {"flag": "typo", "user": "u2"})
        logs = [e.data for e in await engine.events(unknown.id) if e.type == "log"]
    assert flag(de) == {"enabled": True, "variant": "blue", "reason": "rule"}
    assert flag(free) == {"enabled": False, "variant": None, "reason": "rule"}
    assert flag(other) == {"enabled": False, "variant": None, "reason": "rollout"}
    assert flag(on) == {"enabled": True, "variant": None, "reason": "rollout"}
    assert flag(off) == {"enabled": False, "variant": None, "reason": "disabled"}
    assert flag(unknown) == {"enabled": False, "variant": None, "reason": "unknown_flag"}
    assert any("typo" in log["message"] and log["level"] == "warn" for log in logs)


GATE = """\
      - name: gate
        type: step.ff_gate
        config: {flag: new-checkout, user: "{{ .user }}", on_enabled: new-flow,
                 on_disabled: old-flow}
      - name: old-flow
        type: step.json_response
        config: {body: {flow: old}}
      - name: new-flow
        type: step.json_response
        config: {body: {flow: new}}
"""


async def test_ff_gate_jumps(tmp_path: Path) -> None:
    async with Engine.open(one(GATE), store=store_url(tmp_path)) as engine:
        new = await engine.run("p", {"user": {"key": "u1", "country": "DE"}})
        old = await engine.run("p", {"user": {"key": "u1", "country": "FR"}})
        routed = [e.data for e in await engine.events(new.id) if e.type == "step.routed"]
    assert new.status == "completed", new.error
    assert new.output == {"status": 200, "body": {"flow": "new"}}
    assert old.output == {"status": 200, "body": {"flow": "old"}}
    assert routed and routed[0]["next_step"] == "new-flow" and routed[0]["matched_value"] is True


async def test_ff_gate_without_a_target_continues(tmp_path: Path) -> None:
    async with Engine.open(one("""\
      - name: gate
        type: step.ff_gate
        config: {flag: nobody, user: u1, on_enabled: later}
      - name: next
        type: step.set
        config: {values: {continued: true}}
      - name: later
        type: step.set
        config: {values: {later: true}}
"""), store=store_url(tmp_path)) as engine:
        ex = await engine.run("p", {})
    assert ex.status == "completed", ex.error
    assert ex.output["continued"] is True and ex.output["enabled"] is False


async def test_feature_flag_with_a_named_module(tmp_path: Path) -> None:
    text = """\
modules:
  - {name: flags, type: featureflags, config: {flags: {beta: true}}}
pipelines:
  p:
    steps:
      - name: f
        type: step.feature_flag
        config: {module: flags, flag: beta, user: u1}
"""
    async with Engine.open(text, store=store_url(tmp_path)) as engine:
        ex = await engine.run("p", {})
    assert ex.status == "completed", ex.error
    assert ex.output["enabled"] is True
