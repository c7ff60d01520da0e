"""The pgoutput decoder on hand-made messages: the edge cases a live server rarely sends
(malformed bytes, values floats cannot hold). The live paths are in test_pg_cdc.py."""

from __future__ import annotations

import struct

import pytest

from engine.connectors.pgoutput import (
    UNCHANGED_TOAST,
    Change,
    DecodeError,
    Decoder,
    Relation,
    convert,
    lsn_text,
    parse_lsn,
)


def _relation(oid: int = 16384) -> bytes:
    columns = [(1, b"id", 23), (0, b"amount", 1700), (0, b"doc", 3802), (0, b"note", 25)]
    body = b"R" + struct.pack("!i", oid) + b"shop\0orders\0" + b"d" + struct.pack("!h", 4)
    for flags, name, oid_ in columns:
        body += bytes([flags]) + name + b"\0" + struct.pack("!ii", oid_, -1)
    return body


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"t" + struct.pack("!i", len(raw)) + raw


def test_a_relation_then_an_update_with_a_key_only_old_tuple() -> None:
    decoder = Decoder()
    relation = decoder.decode(_relation())
    assert isinstance(relation, Relation) and relation.schema == "shop"
    update = (b"U" + struct.pack("!i", 16384) + b"K" + struct.pack("!h", 4) + _text("7")
              + b"nnn" + b"N" + struct.pack("!h", 4) + _text("8")
              + _text("12345678901234567890.12") + _text('{"a": [1, 2]}') + b"u")
    change = decoder.decode(update)
    assert isinstance(change, Change) and change.op == "update"
    assert change.before == {"id": 7} and change.before_is_key_only
    assert change.after == {"id": 8, "amount": "12345678901234567890.12",
                             "doc": {"a": [1, 2]}, "note": UNCHANGED_TOAST}


def test_malformed_bytes_name_the_message_and_the_position() -> None:
    decoder = Decoder()
    with pytest.raises(DecodeError, match="before its Relation message"):
        decoder.decode(b"I" + struct.pack("!i", 99) + b"N" + struct.pack("!h", 0))
    decoder.decode(_relation())
    with pytest.raises(DecodeError, match=r"truncated or malformed 'I' message at byte \d+"):
        decoder.decode(b"I" + struct.pack("!i", 16384) + b"N" + struct.pack("!h", 4) + b"t\0")
    with pytest.raises(DecodeError, match="unknown pgoutput message type 'Z'"):
        decoder.decode(b"Z")
    with pytest.raises(DecodeError, match="a tuple of 2 columns, the relation has 4"):
        decoder.decode(b"I" + struct.pack("!i", 16384) + b"N" + struct.pack("!h", 2) + b"nn")


@pytest.mark.parametrize(("oid", "text", "value"), [
    (1700, "12.50", 12.5), (1700, "13", 13), (1700, "0.1", 0.1), (1700, "NaN", "NaN"),
    (1700, "1e400", "1e400"), (1700, "3.14159265358979323846", "3.14159265358979323846"),
    (20, "-9007199254740993", -9007199254740993), (16, "f", False),
    (701, "Infinity", "Infinity"), (1184, "2026-05-01 10:00:00+02", "2026-05-01T08:00:00Z"),
    (1114, "2026-05-01 10:00:00.5", "2026-05-01T10:00:00.500000"),
    (1114, "infinity", "infinity"), (114, "not json", "not json"),
    (2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
])
def test_values_convert_by_type_and_keep_what_json_cannot_say(oid: int, text: str,
                                                              value: object) -> None:
    assert convert(oid, text) == value


def test_lsn_spelling_round_trips() -> None:
    assert lsn_text(parse_lsn("16/B374D848")) == "16/B374D848"
    assert parse_lsn("0/10") == 16
