"""Execution ids: 32 lowercase hex digits of a random UUID (uuid4).

Time-ordered ids (UUIDv7) were measured faster for the store: a run's rows then land at the
end of the executions and (execution_id, seq) indexes instead of on a random page of each
(the engine at 32 runs in flight: ~1,900-2,300 -> ~3,500-3,700 runs/s). They are not used
because an id's first digits would be the clock: the short ids the studio and the CLI show,
and the id prefixes users search by, would be the same for every run made within a minute.
Keeping that speed needs short ids taken from the random part first (docs/benchmarks.md).
"""

from __future__ import annotations

import uuid


def new_execution_id() -> str:
    """A new execution id: 32 random hex digits, whose first 8 tell runs apart."""
    return uuid.uuid4().hex
