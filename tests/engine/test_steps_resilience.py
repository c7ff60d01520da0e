"""Rate limiting and circuit breaking across executions, through the real engine and store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.api import Engine
from tests.waiting import wait_for_condition

RATE = """\
pipelines:
  p:
    steps:
      - name: limit
        type: step.rate_limit
        config: {requests_per_minute: %s, burst: %s, key: "{{ .user }}"}
      - name: work
        type: step.set
        config: {values: {served: "{{ .user }}"}}
"""


async def test_rate_limit_buckets_persist_across_executions_per_key(tmp_path: Path) -> None:
    async with Engine.open(RATE % (1, 2), store=f"sqlite:///{tmp_path}/s.db") as engine:
        first = await engine.run("p", {"user": "ann"})
        second = await engine.run("p", {"user": "ann"})
        third = await engine.run("p", {"user": "ann"})
        other = await engine.run("p", {"user": "bob"})
        timeline = await engine.timeline(third.id)
        exceeded = await engine.events(third.id, types=["rate_limit.exceeded"])
        before = await engine.events(second.id, types=["rate_limit.exceeded"])
    assert first.status == "completed" and first.output["allowed"] is True
    assert first.output["remaining"] == 1
    assert second.status == "completed" and second.output["remaining"] == 0
    assert third.status == "failed"
    assert third.error["type"] == "rate_limited" and third.error["status"] == 429
    assert third.error["message"].startswith(
        "rate limit exceeded for key 'ann': 1 requests per minute, burst 2; retry in ")
    assert [(r.step, r.status) for r in timeline] == [("limit", "failed")]  # work never ran
    assert other.status == "completed" and other.output["served"] == "bob"
    assert before == []  # the transition is an event, recorded where it happened
    assert [(e.data["path"], e.data["key"]) for e in exceeded] == [("limit", "ann")]


async def test_rate_limit_default_burst_is_the_per_minute_rate(tmp_path: Path) -> None:
    yaml_text = """\
pipelines:
  p:
    steps:
      - name: limit
        type: step.rate_limit
        config: {requests_per_minute: 3}
"""
    async with Engine.open(yaml_text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        # 3 calls pass at once; refilling one token every 20 s (far longer than four runs
        # take, even on a loaded machine), the 4th is refused.
        statuses = [(await engine.run("p", {})).status for _ in range(4)]
    assert statuses == ["completed"] * 3 + ["failed"]


async def test_rate_limit_refills_over_time(tmp_path: Path) -> None:
    async with Engine.open(RATE % (60, 1), store=f"sqlite:///{tmp_path}/s.db") as engine:
        assert (await engine.run("p", {"user": "u"})).status == "completed"
        assert (await engine.run("p", {"user": "u"})).status == "failed"  # within the second

        async def served() -> bool:
            return (await engine.run("p", {"user": "u"})).status == "completed"

        await wait_for_condition(served, "a token to come back (one a second)", interval=0.25)


async def test_rate_limit_is_per_engine_step(tmp_path: Path) -> None:
    async with Engine.open(RATE % (1, 1), store=f"sqlite:///{tmp_path}/a.db") as engine:
        assert (await engine.run("p", {"user": "x"})).status == "completed"
        assert (await engine.run("p", {"user": "x"})).status == "failed"
    async with Engine.open(RATE % (1, 1), store=f"sqlite:///{tmp_path}/b.db") as engine:
        assert (await engine.run("p", {"user": "x"})).status == "completed"


BREAKER = """\
pipelines:
  p:
    steps:
      - name: guard
        type: step.circuit_breaker
        config:
          failure_threshold: 2
          reset_timeout: 2s  # far longer than the runs that must see it open
          steps:
            - name: call
              type: step.fail
              if: "{{ .fail }}"
              config: {message: upstream down}
            - name: ok
              type: step.set
              config: {values: {served: upstream}}
%s
"""
FALLBACK = """\
          fallback:
            - name: cached
              type: step.set
              config: {values: {served: cache}}
"""


async def _warnings(engine: Engine, execution_id: str) -> list[str]:
    return [e.data["message"] for e in await engine.events(execution_id, types=["log"])
            if e.data["level"] == "warn"]


async def test_circuit_breaker_opens_refuses_and_recovers(tmp_path: Path) -> None:
    async with Engine.open(BREAKER % "", store=f"sqlite:///{tmp_path}/s.db") as engine:
        ok = await engine.run("p", {"fail": False})
        assert ok.status == "completed", ok.error
        assert ok.output["served"] == "upstream"
        assert ok.output["circuit_open"] is False and ok.output["fallback_used"] is False

        one = await engine.run("p", {"fail": True})
        assert one.status == "failed"
        assert one.error["message"] == "guard/call: upstream down"
        assert await _warnings(engine, one.id) == []

        two = await engine.run("p", {"fail": True})
        assert two.status == "failed"
        assert await _warnings(engine, two.id) == [
            "circuit breaker guard: closed -> open (2 consecutive failures, threshold 2; "
            "last: guard/call: upstream down)"]

        refused = await engine.run("p", {"fail": False})  # would succeed, but is not tried
        assert refused.status == "failed"
        assert refused.error["type"] == "circuit_open" and refused.error["status"] == 503
        assert refused.error["message"].startswith(
            "circuit open for guard after 2 consecutive failures; calls are refused for another")
        assert [r.path for r in await engine.timeline(refused.id)] == ["guard"]

        await asyncio.sleep(2.05)  # the reset timeout elapses: waiting on the clock is the point
        healed = await engine.run("p", {"fail": False})
        assert healed.status == "completed", healed.error
        assert healed.output["circuit_open"] is False
        assert await _warnings(engine, healed.id) == [
            "circuit breaker guard: open -> half_open (reset_timeout 2s elapsed; trying once)",
            "circuit breaker guard: half_open -> closed (trial call succeeded)"]
        changes = await engine.events(healed.id, types=["circuit.state_changed"])
        assert [(e.data["from"], e.data["to"]) for e in changes] == [
            ("open", "half_open"), ("half_open", "closed")]
        opened = await engine.events(two.id, types=["circuit.state_changed"])
        assert [(e.data["path"], e.data["to"]) for e in opened] == [("guard", "open")]

        # Closed again, with the failure count reset: one failure does not open it.
        again = await engine.run("p", {"fail": True})
        assert again.error["message"] == "guard/call: upstream down"
        assert (await engine.run("p", {"fail": False})).status == "completed"


async def test_circuit_breaker_failed_trial_reopens(tmp_path: Path) -> None:
    async with Engine.open(BREAKER % "", store=f"sqlite:///{tmp_path}/s.db") as engine:
        for _ in range(2):
            await engine.run("p", {"fail": True})
        await asyncio.sleep(2.05)  # the reset timeout elapses: waiting on the clock is the point
        trial = await engine.run("p", {"fail": True})
        assert trial.status == "failed"
        assert trial.error["message"] == "guard/call: upstream down"
        assert await _warnings(engine, trial.id) == [
            "circuit breaker guard: open -> half_open (reset_timeout 2s elapsed; trying once)",
            "circuit breaker guard: half_open -> open (trial call failed: guard/call: upstream "
            "down)"]
        after = await engine.run("p", {"fail": False})
        assert after.status == "failed" and after.error["type"] == "circuit_open"


async def test_circuit_breaker_fallback(tmp_path: Path) -> None:
    async with Engine.open(BREAKER % FALLBACK, store=f"sqlite:///{tmp_path}/s.db") as engine:
        first = await engine.run("p", {"fail": True})
        assert first.status == "completed", first.error
        # A failure below the threshold: the fallback answers, the circuit is still closed.
        assert first.output["served"] == "cache"
        assert first.output["circuit_open"] is False and first.output["fallback_used"] is True

        second = await engine.run("p", {"fail": True})
        assert second.output["served"] == "cache" and second.output["circuit_open"] is True

        refused = await engine.run("p", {"fail": False})
        assert refused.status == "completed", refused.error
        assert refused.output["served"] == "cache"
        assert refused.output["circuit_open"] is True and refused.output["fallback_used"] is True
        assert [r.path for r in await engine.timeline(refused.id)] == ["guard", "guard/cached"]


async def test_rate_limit_rejects_a_bad_templated_rate(tmp_path: Path) -> None:
    yaml_text = """\
pipelines:
  p:
    steps:
      - name: limit
        type: step.rate_limit
        config: {requests_per_minute: "{{ .rpm }}"}
"""
    async with Engine.open(yaml_text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("p", {"rpm": "many"})
    assert ex.status == "failed"
    assert ex.error["message"] == (
        "step.rate_limit: requests_per_minute must be a positive number, got 'many'")
    assert ex.error["type"] == "config"
