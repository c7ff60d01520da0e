"""A decoder for PostgreSQL's ``pgoutput`` logical replication messages (protocol 1).

The bytes are what ``pg_logical_slot_peek_binary_changes(..., 'proto_version', '1', ...)``
returns per row. Tuple values arrive in text format; they are turned into JSON-able values
by the column's type OID (the Relation message carries them) for the common types, and
kept as text otherwise, so nothing is lost. Layout: "Logical Replication Message Formats"
in the PostgreSQL docs.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # pgoutput timestamps count from here, in µs


class DecodeError(ValueError):
    """Bytes that are not a pgoutput protocol 1 message; the message says where."""


class Unchanged:
    """A TOASTed value the update did not touch: the server did not send it."""

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST = Unchanged()


@dataclass
class Column:
    name: str
    type_oid: int
    key: bool  # part of the replica identity (the primary key by default)


@dataclass
class Relation:
    oid: int
    schema: str
    table: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: list[Column]


@dataclass
class Begin:
    final_lsn: int  # the commit record's LSN
    commit_time: datetime
    xid: int


@dataclass
class Commit:
    commit_lsn: int
    end_lsn: int  # where the next transaction may start: the point to confirm
    commit_time: datetime


@dataclass
class Change:
    op: str  # insert | update | delete
    relation: Relation
    before: dict[str, Any] | None  # old key (K) or whole old row (O, REPLICA IDENTITY FULL)
    after: dict[str, Any] | None
    before_is_key_only: bool = False


@dataclass
class Truncate:
    relations: list[Relation]
    cascade: bool
    restart_identity: bool


@dataclass
class Message:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass
class Other:
    """A message this source has no use for (Origin, Type)."""

    kind: str


Decoded = Begin | Commit | Relation | Change | Truncate | Message | Other


@dataclass
class Decoder:
    """Decodes one slot's messages; remembers the relations it was told about."""

    relations: dict[int, Relation] = field(default_factory=dict)

    def decode(self, data: bytes) -> Decoded:
        if not data:
            raise DecodeError("an empty pgoutput message")
        reader = _Reader(data)
        kind = chr(reader.byte())
        try:
            if kind == "B":
                return Begin(reader.int64(), _timestamp(reader.int64()), reader.int32())
            if kind == "C":
                reader.byte()  # flags: unused
                return Commit(reader.int64(), reader.int64(), _timestamp(reader.int64()))
            if kind == "R":
                return self._relation(reader)
            if kind in "IUD":
                return self._change(kind, reader)
            if kind == "T":
                count = reader.int32()
                options = reader.byte()
                relations = [self._known(reader.int32()) for _ in range(count)]
                return Truncate(relations, bool(options & 1), bool(options & 2))
            if kind == "M":
                flags = reader.byte()
                lsn = reader.int64()
                prefix = reader.string()
                return Message(bool(flags & 1), lsn, prefix, reader.take(reader.int32()))
            if kind in "OY":
                return Other(kind)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise DecodeError(f"a truncated or malformed {kind!r} message at byte "
                              f"{reader.pos}: {exc}") from None
        raise DecodeError(f"unknown pgoutput message type {kind!r} (protocol 1 expected)")

    def _relation(self, reader: _Reader) -> Relation:
        oid = reader.int32()
        schema = reader.string() or "pg_catalog"  # the protocol sends "" for pg_catalog
        table = reader.string()
        identity = chr(reader.byte())
        columns = []
        for _ in range(reader.int16()):
            flags = reader.byte()
            name = reader.string()
            type_oid = reader.int32()
            reader.int32()  # atttypmod
            columns.append(Column(name, type_oid, bool(flags & 1)))
        relation = Relation(oid, schema, table, identity, columns)
        self.relations[oid] = relation
        return relation

    def _known(self, oid: int) -> Relation:
        relation = self.relations.get(oid)
        if relation is None:
            raise DecodeError(f"a change to relation {oid} before its Relation message")
        return relation

    def _change(self, kind: str, reader: _Reader) -> Change:
        relation = self._known(reader.int32())
        before: dict[str, Any] | None = None
        after: dict[str, Any] | None = None
        key_only = False
        marker = chr(reader.byte())
        if kind in "UD" and marker in "KO":
            key_only = marker == "K"
            before = self._tuple(relation, reader, key_only)
            if kind == "U":
                marker = chr(reader.byte())
        if kind in "IU":
            if marker != "N":
                raise DecodeError(f"expected the new tuple ('N') in a {kind!r} message, "
                                  f"got {marker!r}")
            after = self._tuple(relation, reader, False)
        op = {"I": "insert", "U": "update", "D": "delete"}[kind]
        return Change(op, relation, before, after, key_only)

    def _tuple(self, relation: Relation, reader: _Reader, key_only: bool) -> dict[str, Any]:
        count = reader.int16()
        if count != len(relation.columns):
            raise DecodeError(f"{relation.schema}.{relation.table}: a tuple of {count} "
                              f"columns, the relation has {len(relation.columns)}")
        values: dict[str, Any] = {}
        for column in relation.columns:
            flag = chr(reader.byte())
            if flag == "n":
                value: Any = None
            elif flag == "u":
                value = UNCHANGED_TOAST
            elif flag == "t":
                value = convert(column.type_oid, reader.take(reader.int32()).decode("utf-8"))
            else:
                raise DecodeError(f"{relation.schema}.{relation.table}.{column.name}: "
                                  f"value kind {flag!r} (only text format is asked for)")
            # A key-only old tuple (K) sends nulls for the columns outside the key.
            if not key_only or column.key:
                values[column.name] = value
        return values


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise IndexError(f"{n} bytes wanted, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return int(struct.unpack("!h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("!q", self.take(8))[0])

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return text


def _timestamp(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


def lsn_text(lsn: int) -> str:
    """PostgreSQL's spelling of an LSN: ``16/B374D848``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


# ---------------------------------------------------------------- text values -> JSON

def _bool(text: str) -> bool:
    return text == "t"


def _numeric(text: str) -> Any:
    """Integral values as int; others as float only when the float says exactly the same
    number, else the text (money amounts must not drift)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text  # NaN, Infinity: JSON has no spelling for them
    if number == number.to_integral_value() and "e" not in text.lower():
        return int(number)
    as_float = float(text)
    return as_float if Decimal(repr(as_float)) == number else text


def _float(text: str) -> Any:
    value = float(text)
    return value if value == value and value not in (float("inf"), float("-inf")) else text


def _timestamptz(text: str) -> str:
    """``2024-05-01 10:00:00.5+00`` (DateStyle ISO, TimeZone UTC) as RFC 3339."""
    moment = datetime.fromisoformat(_iso_offset(text))
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_offset(text: str) -> str:
    sign = max(text.rfind("+"), text.rfind("-", 10))
    if sign > 10 and len(text) - sign == 3:  # "+02" -> "+02:00" for fromisoformat
        return text + ":00"
    return text


def _timestamp_text(text: str) -> str:
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return text  # infinity, BC dates: kept as PostgreSQL wrote them


def _guarded(convert_one: Callable[[str], Any]) -> Callable[[str], Any]:
    def run(text: str) -> Any:
        try:
            return convert_one(text)
        except ValueError:
            return text
    return run


CONVERTERS: dict[int, Callable[[str], Any]] = {
    16: _bool,                                   # bool
    20: int, 21: int, 23: int, 26: int,          # int8, int2, int4, oid
    700: _float, 701: _float,                    # float4, float8
    1700: _numeric,                              # numeric
    114: json.loads, 3802: json.loads,           # json, jsonb
    1114: _timestamp_text,                       # timestamp
    1184: _timestamptz,                          # timestamptz
}


def convert(type_oid: int, text: str) -> Any:
    """A column's text value as JSON: numbers, booleans, JSON documents and timestamps by
    type; text, uuid, dates and every other type as the text PostgreSQL sent."""
    converter = CONVERTERS.get(type_oid)
    return _guarded(converter)(text) if converter is not None else text
