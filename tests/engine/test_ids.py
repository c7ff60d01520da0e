"""Execution ids: the shape users know (32 hex digits), time-ordered so the store appends."""

from __future__ import annotations

import re
import time
import uuid

from engine.store.ids import new_execution_id


def test_an_id_is_32_lowercase_hex_digits_and_a_uuid_v7() -> None:
    made = new_execution_id()
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    parsed = uuid.UUID(made)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs(int(made[:12], 16) / 1000 - time.time()) < 60  # its milliseconds are now


def test_ids_are_unique_and_later_ones_sort_later() -> None:
    ids = [new_execution_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    first = new_execution_id()
    deadline = time.monotonic() + 30
    while (later := new_execution_id())[:12] == first[:12]:  # the next millisecond
        assert time.monotonic() < deadline
    assert later > first
