"""Execution ids: 32 hex digits whose short prefix tells runs apart (the studio shows it)."""

from __future__ import annotations

import re
import uuid

from engine.store.ids import new_execution_id


def test_an_id_is_32_lowercase_hex_digits() -> None:
    made = new_execution_id()
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert uuid.UUID(made).version == 4


def test_runs_made_together_have_different_short_ids() -> None:
    ids = [new_execution_id() for _ in range(200)]
    assert len({i[:8] for i in ids}) == len(ids)  # 200 among 2^32: a clash is ~5e-6 likely
