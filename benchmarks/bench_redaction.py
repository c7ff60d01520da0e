"""Redaction benchmark: what ``record: full`` costs a run per value it records.

    python benchmarks/bench_redaction.py [--seconds S]

µs per ``redact(value, "full")`` (engine/redaction.py: from 1 KB of JSON up, a value whose
orjson encoding shows no credential has only its dicts walked, for secret-looking keys)
against redact() as it was (the exact walk, ``_bounded_walk(value, mask_credentials)``,
which visits and masks every string), in the same process, turns alternating, for: the
107 KB webhook of
benchmarks/payloads.py (16 seeds, cycled), a 1 KB one, a step's tiny input, and the 107 KB
webhook with a secret key in its last line item (found late: only the dicts on its path are
copied), and with a bearer token in a string (the worst case: the proof fails, the exact
walk runs after it). ``record: redacted`` (its masks skip a string none of them could match) against
its own exact walk; ``metadata`` for scale. Every result is checked equal to the baseline's
first. Timing is CPU time (``time.process_time``), best round of a
turn, so that other load on a shared machine disturbs it less; ranges are over the turns.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from payloads import KB, webhook

from engine.redaction import _bounded_walk, _mask_until_stable, mask_credentials, redact

POOL = 16
TURNS = 4


def per_call(values: list[Any], fn: Callable[[Any], Any], seconds: float) -> float:
    """µs per call over ``values`` (cycled), best of 5 rounds of about ``seconds`` / 5."""
    calls = len(values)
    while True:
        start = time.process_time()
        for i in range(calls):
            fn(values[i % len(values)])
        if time.process_time() - start > seconds / 25:
            break
        calls *= 2
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for i in range(calls):
            fn(values[i % len(values)])
        best = min(best, (time.process_time() - start) / calls)
    return best * 1e6


def redact_before(value: Any, level: str) -> Any:
    """redact() as it was: the same dispatch, then the exact walk."""
    if level == "redacted":
        return _bounded_walk(value, _mask_until_stable)  # every pass on every string
    if level == "full":
        return _bounded_walk(value, mask_credentials)
    raise ValueError(level)


def exact_walk(value: Any) -> Any:
    return redact_before(value, "full")


def full(value: Any) -> Any:
    return redact(value, "full")


def redacted_before(value: Any) -> Any:
    return redact_before(value, "redacted")


def redacted(value: Any) -> Any:
    return redact(value, "redacted")


def with_secret(seed: int) -> dict[str, Any]:
    payload = webhook(107 * KB, seed)
    payload["data"]["order"]["line_items"][-1]["variant"]["options"]["api_key"] = "k-123"
    return payload


def with_credential(seed: int) -> dict[str, Any]:
    payload = webhook(107 * KB, seed)
    payload["data"]["order"]["line_items"][-1]["title"] = "Authorization: Bearer k123456789"
    return payload


def span(figures: list[float]) -> str:
    low, high = min(figures), max(figures)
    return f"{low:,.1f}" if high < low * 1.05 else f"{low:,.1f}-{high:,.1f}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.4, help="time per turn and figure")
    args = parser.parse_args()
    cases = {
        "107 KB webhook": [webhook(107 * KB, seed) for seed in range(POOL)],
        "1 KB webhook": [webhook(KB, seed) for seed in range(POOL)],
        "step input {values: {x: 1}}": [{"values": {"x": i}} for i in range(POOL)],
        "107 KB webhook + secret key": [with_secret(seed) for seed in range(4)],
        "107 KB webhook + bearer token": [with_credential(seed) for seed in range(4)],
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"redaction: CPU µs per redact(value, level) (load average {load:.1f}); "
          f"baseline: the exact walk, same run, {TURNS} alternating turns\n")
    print(f"  {'record: level, value':<40} {'now µs':>14} {'before µs':>16} {'x':>6}")
    rows = [("full", label, values, full, exact_walk) for label, values in cases.items()]
    rows += [("redacted", label, cases[label], redacted, redacted_before)
             for label in ("107 KB webhook", "1 KB webhook", "step input {values: {x: 1}}")]
    for level, label, values, now_fn, before_fn in rows:
        for value in values:
            assert repr(now_fn(value)) == repr(before_fn(value))
        new: list[float] = []
        old: list[float] = []
        for _ in range(TURNS):
            old.append(per_call(values, before_fn, args.seconds))
            new.append(per_call(values, now_fn, args.seconds))
        ratio = min(old) / min(new)
        print(f"  {level + ', ' + label:<40} {span(new):>14} {span(old):>16} {ratio:6.1f}")
    big = cases["107 KB webhook"]
    got = [per_call(big, lambda v: redact(v, "metadata"), args.seconds) for _ in range(2)]
    print(f"  {'metadata, 107 KB webhook':<40} {span(got):>14}   (unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
