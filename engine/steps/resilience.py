"""Resilience step types: rate_limit (token bucket) and circuit_breaker.

Their state lives in ``ctx.shared_state(kind)``: process-wide, per (pipeline, step), kept
across executions. The engine runs steps on one event loop, and neither type awaits
between reading and writing its state, so no lock is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from engine.durations import parse_duration
from engine.errors import StepError
from engine.service.models import EventType
from engine.steps.base import StepContext, StepType, SubRun
from engine.steps.data import STEP_LIST_SCHEMA, canonical_json, config_schema, int_option

_MAX_BUCKETS = 10_000  # beyond this, full (idle) buckets are dropped


# ---------------------------------------------------------------- step.rate_limit


def _bucket_key(value: Any) -> str:
    """No key: one bucket for every call; non-text keys are compared as canonical JSON."""
    if value is None:
        return "global"
    return value if isinstance(value, str) else canonical_json(value)


async def run_rate_limit(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    value = config.get("requests_per_minute")
    rate = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    if rate <= 0:
        raise StepError(f"step.rate_limit: requests_per_minute must be a positive number, got "
                        f"{value!r}", type="config")
    burst = float(int_option(config, "burst", max(1, math.ceil(rate)), 1))
    key = _bucket_key(config.get("key"))
    per_second = rate / 60.0
    buckets = ctx.shared_state("rate_limit")
    now = time.monotonic()
    if len(buckets) > _MAX_BUCKETS:
        for stale in [k for k, b in buckets.items()
                      if b["tokens"] + (now - b["updated"]) * per_second >= burst]:
            del buckets[stale]
    bucket = buckets.setdefault(key, {"tokens": burst, "updated": now})
    tokens = min(burst, bucket["tokens"] + (now - bucket["updated"]) * per_second)
    bucket["updated"] = now
    if tokens < 1.0:
        bucket["tokens"] = tokens
        retry_after = (1.0 - tokens) / per_second
        if not bucket.get("limited"):  # record the transition, not every rejected call
            bucket["limited"] = True
            ctx.event(EventType.RATE_LIMIT_EXCEEDED, {"key": key, "retry_after_s": round(retry_after, 3)})
        raise StepError(
            f"rate limit exceeded for key {key!r}: {rate:g} requests per minute, burst {burst:g}; "
            f"retry in {retry_after:.1f}s", type="rate_limited", status=429,
            details={"key": key, "retry_after_s": round(retry_after, 3)})
    bucket["tokens"] = tokens - 1.0
    if bucket.pop("limited", False):
        ctx.event(EventType.RATE_LIMIT_RECOVERED, {"key": key})
    return {"allowed": True, "remaining": int(bucket["tokens"])}


# ---------------------------------------------------------------- step.circuit_breaker

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def _transition(ctx: StepContext, state: dict[str, Any], to: str, why: str) -> None:
    ctx.log("warn", f"circuit breaker {ctx.path}: {state['state']} -> {to} ({why})")
    ctx.event(EventType.CIRCUIT_STATE_CHANGED, {"from": state["state"], "to": to, "reason": why,
                                                 "failures": state["failures"]})
    state["state"] = to
    if to == OPEN:
        state["opened_at"] = time.monotonic()
    if to == CLOSED:
        state["failures"] = 0


def _as_output(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else {"result": value}


async def _fallback_or_raise(ctx: StepContext, state: dict[str, Any],
                             error: StepError) -> dict[str, Any]:
    if not ctx.step.substeps.get("fallback"):
        raise error
    sub: SubRun = await ctx.run_substeps("fallback")
    return {**_as_output(sub.last_output), "circuit_open": state["state"] != CLOSED,
            "fallback_used": True}


async def run_circuit_breaker(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    threshold = int_option(config, "failure_threshold", 5, 1)
    try:
        reset_after = parse_duration(config.get("reset_timeout", "30s"))
    except ValueError as exc:
        raise StepError(f"step.circuit_breaker: reset_timeout: {exc}", type="config") from None
    state = ctx.shared_state("circuit_breaker")
    state.setdefault("state", CLOSED)
    state.setdefault("failures", 0)
    state.setdefault("probing", False)

    now = time.monotonic()
    if state["state"] == OPEN and now - state["opened_at"] >= reset_after:
        _transition(ctx, state, HALF_OPEN, f"reset_timeout {reset_after:g}s elapsed; trying once")
    # While one half-open probe is in flight every other call is treated as open.
    if state["state"] == OPEN or (state["state"] == HALF_OPEN and state["probing"]):
        wait = max(reset_after - (now - state.get("opened_at", now)), 0.0)
        return await _fallback_or_raise(ctx, state, StepError(
            f"circuit open for {ctx.path} after {state['failures']} consecutive failures; "
            f"calls are refused for another {wait:.1f}s", type="circuit_open", status=503,
            details={"failures": state["failures"], "retry_after_s": round(wait, 3)}))

    probing = state["state"] == HALF_OPEN
    state["probing"] = probing
    try:
        sub = await ctx.run_substeps("steps")
    except Exception as exc:
        state["failures"] += 1
        message = exc.message if isinstance(exc, StepError) else str(exc)
        if probing:
            _transition(ctx, state, OPEN, f"trial call failed: {message}")
        elif state["failures"] >= threshold:
            _transition(ctx, state, OPEN, f"{state['failures']} consecutive failures, "
                        f"threshold {threshold}; last: {message}")
        error = exc if isinstance(exc, StepError) else StepError(message)
        return await _fallback_or_raise(ctx, state, error)
    finally:
        if probing:
            state["probing"] = False
    if probing:
        _transition(ctx, state, CLOSED, "trial call succeeded")
    state["failures"] = 0
    return {**_as_output(sub.last_output), "circuit_open": False, "fallback_used": False}


# ---------------------------------------------------------------- metadata

STEP_TYPES: list[StepType] = [
    StepType(
        name="step.rate_limit",
        run=run_rate_limit,
        description="Admit a call if its key's token bucket has a token, else fail with 429.",
        category="resilience",
        schema=config_schema({
            "requests_per_minute": {"type": "number", "exclusiveMinimum": 0,
                                    "description": "Sustained rate: tokens added per minute."},
            "burst": {"type": "integer", "minimum": 1,
                      "description": "Bucket size: calls allowed at once after a quiet period "
                      "(default: requests_per_minute, rounded up)."},
            "key": {"description": "Who is limited, e.g. '{{ .trigger.headers.x-api-key }}'; "
                    "each key has its own bucket (default: one bucket for every call)."},
        }, required=["requests_per_minute"]),
        output="{allowed: true, remaining}; when the bucket is empty the step fails with type "
               "rate_limited, status 429 and details.retry_after_s. Buckets persist across "
               "executions of the same pipeline step.",
        example={"requests_per_minute": 60, "burst": 10, "key": "{{ .customer_id }}"},
    ),
    StepType(
        name="step.circuit_breaker",
        run=run_circuit_breaker,
        description="Wrap steps in a circuit breaker that opens after repeated failures.",
        category="resilience",
        schema=config_schema({
            "steps": {**STEP_LIST_SCHEMA, "minItems": 1, "description": "The protected steps."},
            "fallback": {**STEP_LIST_SCHEMA, "description": "Steps run instead when the "
                         "circuit is open or the protected steps fail; without them those "
                         "cases fail the step."},
            "failure_threshold": {"type": "integer", "minimum": 1, "default": 5,
                                  "description": "Consecutive failures that open the circuit."},
            "reset_timeout": {"type": ["string", "number"], "default": "30s",
                              "description": "How long the circuit stays open before one "
                              "trial call (half-open) is let through."},
        }, required=["steps"]),
        output="The protected steps' last output (or the fallback's) plus `circuit_open` (the "
               "breaker is not closed) and `fallback_used`. An open circuit without fallback "
               "fails with type circuit_open, status 503. State persists across executions.",
        substep_keys={"steps": "list", "fallback": "list"},
        example={"failure_threshold": 3, "reset_timeout": "30s", "steps": [
            {"name": "call", "type": "step.http_call", "config": {"url": "{{ .service_url }}"}}],
            "fallback": [{"name": "cached", "type": "step.set",
                          "config": {"values": {"source": "fallback"}}}]},
    ),
]
