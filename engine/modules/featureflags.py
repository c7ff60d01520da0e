"""``featureflags``: flags evaluated locally from the module's config.

A flag is ``true``/``false`` or an object::

    new-checkout:
      enabled: true                 # master switch (default true)
      rules:                        # first rule whose every attribute matches decides
        - match: {country: DE, plan: [pro, enterprise]}   # a list means "any of"
          enabled: true             # default true
          variant: blue             # optional: fixed variant for this rule
      rollout: 25                   # percent of user keys, when no rule matched (default 100)
      variants: {control: 50, blue: 50}   # weights (or a list: equal weights)

The user is a key string, or an object whose ``key`` (or ``id``) is the key and whose other
fields are the attributes rules match (``key`` can be matched too). Rollout and variant
buckets come from SHA-256 of ``flag:key`` (variants hash ``flag:variant:key``), so a user
keeps their answer across executions and processes, and buckets of different flags are
independent. Without a key, a partial rollout is off. An unknown flag is off
(reason ``unknown_flag``), like a remote flag service answering with its default.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from engine.errors import StepError
from engine.steps.base import ModuleType


def bucket(text: str, buckets: int) -> int:
    """A stable bucket in ``[0, buckets)`` for ``text``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return any(_matches(item, actual) for item in expected)
    if actual is None:
        return expected is None
    return bool(expected == actual or str(expected) == str(actual))


class FeatureFlags:
    def __init__(self, name: str, config: Mapping[str, Any]):
        self.name = name
        self.flags: dict[str, dict[str, Any]] = {}
        for flag, spec in (config.get("flags") or {}).items():
            self.flags[str(flag)] = self._normalize(str(flag), spec)

    def _normalize(self, flag: str, spec: Any) -> dict[str, Any]:
        where = f"module {self.name!r} (featureflags), flag {flag!r}"
        if isinstance(spec, bool):
            return {"enabled": spec, "rules": [], "rollout": 100.0, "variants": {}}
        if not isinstance(spec, Mapping):
            raise StepError(f"{where}: expected true/false or an object", type="config")
        rollout = float(spec.get("rollout", 100))
        if not 0 <= rollout <= 100:
            raise StepError(f"{where}: rollout must be between 0 and 100", type="config")
        variants = spec.get("variants") or {}
        if isinstance(variants, list):
            variants = {str(v): 1 for v in variants}
        weights = {str(k): float(w) for k, w in variants.items()}
        if any(w < 0 for w in weights.values()) or (weights and not sum(weights.values())):
            raise StepError(f"{where}: variant weights must be non-negative and not all zero",
                            type="config")
        rules = list(spec.get("rules") or [])
        for index, rule in enumerate(rules):
            if not isinstance(rule, Mapping) or not isinstance(rule.get("match", {}), Mapping):
                raise StepError(f"{where}: rules[{index}] needs a 'match' object", type="config")
        return {"enabled": bool(spec.get("enabled", True)), "rules": rules,
                "rollout": rollout, "variants": weights}

    def evaluate(self, flag: str, user: Any = None) -> dict[str, Any]:
        """``{enabled, variant, reason}``; reason is unknown_flag, disabled, rule or rollout."""
        spec = self.flags.get(flag)
        if spec is None:
            return {"enabled": False, "variant": None, "reason": "unknown_flag"}
        if not spec["enabled"]:
            return {"enabled": False, "variant": None, "reason": "disabled"}
        key, attributes = self._user(user)
        for rule in spec["rules"]:
            match = rule.get("match") or {}
            if all(_matches(want, attributes.get(attr)) for attr, want in match.items()):
                enabled = bool(rule.get("enabled", True))
                variant = rule.get("variant") if enabled else None
                if enabled and variant is None:
                    variant = self._variant(flag, spec, key)
                return {"enabled": enabled, "variant": variant, "reason": "rule"}
        rollout = spec["rollout"]
        if rollout >= 100:
            enabled = True
        elif key is None or rollout <= 0:
            enabled = False
        else:
            enabled = bucket(f"{flag}:{key}", 10_000) < rollout * 100
        variant = self._variant(flag, spec, key) if enabled else None
        return {"enabled": enabled, "variant": variant, "reason": "rollout"}

    @staticmethod
    def _user(user: Any) -> tuple[str | None, dict[str, Any]]:
        if user is None or user == "":
            return None, {}
        if isinstance(user, Mapping):
            attributes = {str(k): v for k, v in user.items()}
            raw = attributes.get("key", attributes.get("id"))
            key = None if raw is None or raw == "" else str(raw)
            attributes.setdefault("key", key)
            return key, attributes
        return str(user), {"key": str(user)}

    @staticmethod
    def _variant(flag: str, spec: dict[str, Any], key: str | None) -> str | None:
        weights: dict[str, float] = spec["variants"]
        if not weights:
            return None
        total = sum(weights.values())
        # Scale to integers so bucketing is exact; 10,000 slots per unit of weight.
        point = bucket(f"{flag}:variant:{key or ''}", int(total * 10_000))
        running = 0.0
        for variant, weight in weights.items():
            running += weight * 10_000
            if point < running:
                return variant
        return list(weights)[-1]


_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["flags"],
    "properties": {
        "flags": {
            "type": "object",
            "description": "Flags by name: true/false, or {enabled, rules, rollout, variants}.",
            "additionalProperties": {
                "oneOf": [
                    {"type": "boolean"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "description": {"type": "string"},
                            "enabled": {"type": "boolean", "default": True,
                                        "description": "Master switch; false = off for all."},
                            "rollout": {"type": "number", "minimum": 0, "maximum": 100,
                                        "default": 100,
                                        "description": "Percent of user keys it is on for "
                                                       "(stable hash) when no rule matched."},
                            "variants": {
                                "description": "Variant weights {name: weight}, or a list of "
                                               "names with equal weights.",
                                "oneOf": [
                                    {"type": "object",
                                     "additionalProperties": {"type": "number", "minimum": 0}},
                                    {"type": "array", "items": {"type": "string"}},
                                ],
                            },
                            "rules": {
                                "type": "array",
                                "description": "First rule whose every match attribute equals "
                                               "the user's (a list = any of) decides.",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["match"],
                                    "properties": {
                                        "match": {"type": "object"},
                                        "enabled": {"type": "boolean", "default": True},
                                        "variant": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                ],
            },
        },
    },
}

MODULE_TYPES: list[ModuleType] = [
    ModuleType(
        name="featureflags",
        factory=FeatureFlags,
        description="Feature flags with attribute rules, percentage rollout and variants.",
        schema=_SCHEMA,
    ),
]
