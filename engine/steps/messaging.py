"""Cache, broker, dead-letter and feature-flag step types.

Each talks to a module by name (``cache``, ``broker``, ``module``) and uses only its
coroutine methods, so a plugin module with the same methods (e.g. a Redis cache) works too.
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from typing import Any

from engine.durations import parse_duration
from engine.errors import StepError
from engine.steps.base import StepContext, StepResult, StepType

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
FLAGS_MODULE = "featureflags"  # the module step.feature_flag uses when ``module`` is not set


def _module(ctx: StepContext, config: dict[str, Any], key: str, kind: str,
            methods: tuple[str, ...], default: str | None = None) -> Any:
    name = config.get(key) or default
    if not name:
        raise StepError(f"step {ctx.step.name!r}: {key!r} must name a {kind} module",
                        type="config")
    module = ctx.module(str(name))
    if not all(callable(getattr(module, m, None)) for m in methods):
        raise StepError(f"step {ctx.step.name!r}: module {name!r} is not a {kind} module",
                        type="config")
    return module


def _key(ctx: StepContext, config: dict[str, Any]) -> str:
    key = config.get("key")
    if key is None or key == "":
        raise StepError(f"step {ctx.step.name!r}: the cache key is empty", type="config")
    return key if isinstance(key, str) else str(key)


# -- cache --------------------------------------------------------------------------------

async def run_cache_get(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    cache = _module(ctx, config, "cache", "cache", ("get",))
    hit, value = await cache.get(_key(ctx, config))
    return {"value": value if hit else config.get("default"), "hit": hit}


async def run_cache_set(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    cache = _module(ctx, config, "cache", "cache", ("set",))
    ttl = None
    if config.get("ttl") is not None:
        try:
            ttl = parse_duration(config["ttl"])
        except ValueError as exc:
            raise StepError(f"step {ctx.step.name!r}: ttl: {exc}", type="config") from None
    await cache.set(_key(ctx, config), config.get("value"), ttl)
    return {"cached": True}


async def run_cache_delete(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    cache = _module(ctx, config, "cache", "cache", ("delete",))
    return {"deleted": bool(await cache.delete(_key(ctx, config)))}


# -- broker and DLQ ------------------------------------------------------------------------

def cloudevent(payload: Any, *, type: str, source: str,
               subject: str | None = None) -> dict[str, Any]:
    """A CloudEvents 1.0 envelope (JSON format) around ``payload``."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": payload,
    }
    if subject:
        event["subject"] = subject
    return event


async def run_publish(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    broker = _module(ctx, config, "broker", "broker", ("publish",))
    topic = config.get("topic")
    if not topic:
        raise StepError(f"step {ctx.step.name!r}: 'topic' is empty", type="config")
    payload = config.get("payload")
    envelope = config.get("cloudevent")
    event_id: str | None = None
    if envelope:
        if not envelope.get("type") or not envelope.get("source"):
            raise StepError(f"step {ctx.step.name!r}: cloudevent needs 'type' and 'source'",
                            type="config")
        payload = cloudevent(payload, type=str(envelope["type"]), source=str(envelope["source"]),
                             subject=envelope.get("subject"))
        event_id = payload["id"]
    message_id = await broker.publish(str(topic), payload)
    return {"published": True, "topic": str(topic), "id": event_id or str(message_id)}


async def run_dlq_send(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    payload = config["payload"] if "payload" in config else ctx.vars.get("trigger")
    error = config.get("error") or f"sent to the dead-letter queue by step {ctx.step.name!r}"
    dlq_id = await ctx.send_to_dlq(payload, str(error))
    return {"dlq_id": dlq_id}


# -- feature flags --------------------------------------------------------------------------

async def _evaluate(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    flags = _module(ctx, config, "module", "featureflags", ("evaluate",), default=FLAGS_MODULE)
    flag = config.get("flag")
    if not flag:
        raise StepError(f"step {ctx.step.name!r}: 'flag' is empty", type="config")
    result = flags.evaluate(str(flag), config.get("user"))
    if inspect.isawaitable(result):  # a remote flag service may answer asynchronously
        result = await result
    if result.get("reason") == "unknown_flag":
        ctx.log("warn", f"feature flag {flag!r} is not defined; treating it as off")
    return {"enabled": bool(result.get("enabled")), "variant": result.get("variant"),
            "reason": result.get("reason")}


async def run_feature_flag(ctx: StepContext, config: dict[str, Any]) -> dict[str, Any]:
    return await _evaluate(ctx, config)


async def run_ff_gate(ctx: StepContext, config: dict[str, Any]) -> StepResult:
    outcome = await _evaluate(ctx, config)
    target = config.get("on_enabled") if outcome["enabled"] else config.get("on_disabled")
    return StepResult(output=outcome, jump=str(target) if target else None,
                      matched_value=outcome["enabled"])


# -- schemas and registration --------------------------------------------------------------

def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, "type": "object", "additionalProperties": False,
            "required": required, "properties": properties}


_DURATION = {"type": ["string", "number"],
             "description": "Time to live: 250ms, 5s, 2m, 1h, 1d or seconds (default: the "
                            "cache's default, else no expiry)."}
_CACHE = {"type": "string", "description": "Name of a cache module (cache.memory …)."}
_KEY = {"type": "string", "description": "Cache key (templates allowed)."}
_FLAG_PROPS: dict[str, Any] = {
    "module": {"type": "string", "default": FLAGS_MODULE,
               "description": "Name of the featureflags module."},
    "flag": {"type": "string", "description": "Flag name."},
    "user": {"type": ["string", "number", "object"],
             "description": "User key, or an object with key (or id) and attributes rules "
                            "match."},
}

STEP_TYPES: list[StepType] = [
    StepType(
        name="step.cache_get",
        run=run_cache_get,
        description="Read a value from a cache module.",
        category="cache",
        schema=_schema({"cache": _CACHE, "key": _KEY,
                        "default": {"description": "Value to return on a miss (default null)."}},
                       ["cache", "key"]),
        output="{value, hit}: value is the default (null) on a miss or after expiry.",
        module_refs=frozenset({"cache"}),
        example={"cache": "cache", "key": "user:{{ .user_id }}"},
    ),
    StepType(
        name="step.cache_set",
        run=run_cache_set,
        description="Store a value in a cache module, optionally with a TTL.",
        category="cache",
        schema=_schema({"cache": _CACHE, "key": _KEY,
                        "value": {"description": "Value to store (any JSON)."},
                        "ttl": _DURATION},
                       ["cache", "key", "value"]),
        output="{cached: true}",
        module_refs=frozenset({"cache"}),
        example={"cache": "cache", "key": "user:{{ .user_id }}", "value": "{{ .steps.load.row }}",
                 "ttl": "5m"},
    ),
    StepType(
        name="step.cache_delete",
        run=run_cache_delete,
        description="Remove a key from a cache module.",
        category="cache",
        schema=_schema({"cache": _CACHE, "key": _KEY}, ["cache", "key"]),
        output="{deleted}: true if a live entry was removed.",
        module_refs=frozenset({"cache"}),
        example={"cache": "cache", "key": "user:{{ .user_id }}"},
    ),
    StepType(
        name="step.publish",
        run=run_publish,
        description="Publish a message to a broker topic, optionally as a CloudEvent.",
        category="messaging",
        schema=_schema({
            "broker": {"type": "string", "description": "Name of a broker module."},
            "topic": {"type": "string", "description": "Topic to publish to."},
            "payload": {"description": "The message (any JSON; templates allowed)."},
            "cloudevent": {
                "type": "object", "additionalProperties": False, "required": ["type", "source"],
                "description": "Wrap the payload in a CloudEvents 1.0 envelope (id, time, "
                               "specversion are generated).",
                "properties": {
                    "type": {"type": "string", "description": "Event type, e.g. "
                                                              "com.example.order.created."},
                    "source": {"type": "string", "description": "Event source URI, e.g. "
                                                                "/orders."},
                    "subject": {"type": "string", "description": "Optional subject."},
                },
            },
        }, ["broker", "topic", "payload"]),
        output="{published: true, topic, id}: id is the CloudEvent id, else the broker's "
               "message id.",
        module_refs=frozenset({"broker"}),
        example={"broker": "events", "topic": "orders.created", "payload": {"id": "{{ .id }}"},
                 "cloudevent": {"type": "com.example.order.created", "source": "/orders"}},
    ),
    StepType(
        name="step.dlq_send",
        run=run_dlq_send,
        description="Write an entry to the dead-letter queue for this execution.",
        category="messaging",
        schema=_schema({
            "payload": {"description": "What to keep for a retry (default: the trigger "
                                       "payload)."},
            "error": {"type": "string", "description": "Why it was dead-lettered."},
        }, []),
        output="{dlq_id}",
        example={"payload": "{{ .trigger }}", "error": "customer {{ .customer_id }} not found"},
    ),
    StepType(
        name="step.feature_flag",
        run=run_feature_flag,
        description="Evaluate a feature flag for a user.",
        category="flags",
        schema=_schema(dict(_FLAG_PROPS), ["flag"]),
        output="{enabled, variant, reason}: reason is rule, rollout, disabled or unknown_flag.",
        module_refs=frozenset({"module"}),
        example={"flag": "new-checkout", "user": "{{ .user_id }}"},
    ),
    StepType(
        name="step.ff_gate",
        run=run_ff_gate,
        description="Evaluate a feature flag and jump to one step when it is on, another when "
                    "off.",
        category="flags",
        schema=_schema({
            **_FLAG_PROPS,
            "on_enabled": {"type": "string", "description": "Step to jump to when the flag is "
                                                            "on (default: the next step)."},
            "on_disabled": {"type": "string", "description": "Step to jump to when the flag is "
                                                             "off (default: the next step)."},
        }, ["flag"]),
        output="{enabled, variant, reason}; jumps to on_enabled / on_disabled.",
        step_refs=frozenset({"on_enabled", "on_disabled"}),
        module_refs=frozenset({"module"}),
        example={"flag": "new-checkout", "user": "{{ .user_id }}", "on_enabled": "new-flow",
                 "on_disabled": "old-flow"},
    ),
]
