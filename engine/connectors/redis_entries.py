"""Redis stream entries as CloudEvents and back: the field convention of the Redis Streams
connectors (no Redis client here; ``redis_streams`` does the I/O).

Reading, an entry is either

- **structured**: one field (``cloudevent`` unless the source's ``event_field`` says
  otherwise) holds a CloudEvents JSON object. Attributes it lacks default to: ``id`` the
  entry id, ``source`` the stream's, ``type`` the source's ``type``. Other fields are
  ignored (the sink's flat copies, say).
- **plain**: fields ``id``, ``source``, ``type``, ``subject``, ``time`` set those
  attributes when present; ``data`` holds the data as JSON text; without ``data``, the
  remaining fields (as strings) are the data. ``id`` defaults to the entry id (stable across
  redeliveries, so the intake's dedup works), ``time`` to the entry id's milliseconds.

A malformed entry (over ``max_entry_bytes``, a field that is not UTF-8, JSON that does not
parse, a ``cloudevent`` that is not an object) still becomes a record with the entry id as its id, which the
intake dead-letters (see ``malformed``).

Writing, an event becomes its structured JSON in ``cloudevent`` plus flat ``id``, ``type``,
``source`` (and ``subject``, ``time`` when set) fields for redis-cli and XRANGE readers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

EVENT_FIELD = "cloudevent"
ATTRIBUTE_FIELDS = ("id", "source", "type", "subject", "time")
FLAT_FIELDS = ("id", "type", "source", "subject", "time")
MAX_ENTRY_BYTES = 1_048_576  # an entry larger than this (fields and values) is not parsed


class Malformed(ValueError):
    """An entry that cannot be read as an event; the message says which field and why."""


def entry_event(entry_id: str, fields: dict[bytes, bytes], *, source: str, default_type: str,
                event_field: str = EVENT_FIELD, max_bytes: int = MAX_ENTRY_BYTES) -> dict[str, Any]:
    """The CloudEvents record of one entry (checked by the intake, not here: it checks
    every delivery anyway, and checking twice would double the per-event cost)."""
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size > max_bytes:  # before any decoding or parsing
        return malformed(entry_id, {k: f"<{len(v):,} bytes>".encode() for k, v in fields.items()},
                         f"the entry is {size:,} bytes, over max_entry_bytes ({max_bytes:,}); "
                         "store large payloads elsewhere and put a reference in the entry",
                         source=source, default_type=default_type)
    try:
        text = _decoded(fields)
        structured = text.get(event_field)
        if structured is not None:
            return _structured(entry_id, structured, event_field, source, default_type)
        return _plain(entry_id, text, source, default_type)
    except Malformed as exc:
        return malformed(entry_id, fields, str(exc), source=source, default_type=default_type)


def malformed(entry_id: str, fields: dict[bytes, bytes], reason: str, *, source: str,
              default_type: str) -> dict[str, Any]:
    """A record the intake dead-letters as ``invalid_event``: not an envelope, since its
    ``specversion`` is the reason (the DLQ entry's error quotes the rejected specversion,
    so the reason and the entry id reach whoever reads the DLQ). ``data`` keeps the fields."""
    return {"specversion": f"unreadable stream entry {entry_id}: {reason}", "id": entry_id,
            "source": source, "type": default_type,
            "data": {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                     for k, v in fields.items()}}


def _decoded(fields: dict[bytes, bytes]) -> dict[str, str]:
    text: dict[str, str] = {}
    for key, value in fields.items():
        name = key.decode("utf-8", "replace")
        try:
            text[name] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed(f"field {name!r} is not UTF-8 text (byte {exc.start}); write "
                            "text (JSON for 'data' and 'cloudevent')") from None
    return text


def _structured(entry_id: str, text: str, field: str, source: str,
                default_type: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise Malformed(f"field {field!r} is not JSON ({exc}); write the CloudEvents "
                        "structured JSON object there") from None
    if not isinstance(event, dict):
        raise Malformed(f"field {field!r} holds a JSON {type(event).__name__}, not a "
                        "CloudEvents object")
    event.setdefault("id", entry_id)
    event.setdefault("source", source)
    event.setdefault("type", default_type)
    return event


def _plain(entry_id: str, text: dict[str, str], source: str, default_type: str) -> dict[str, Any]:
    event: dict[str, Any] = {"specversion": "1.0", "id": text.get("id") or entry_id,
                             "source": text.get("source") or source,
                             "type": text.get("type") or default_type,
                             "time": text.get("time") or entry_time(entry_id),
                             "datacontenttype": "application/json"}
    if text.get("subject"):
        event["subject"] = text["subject"]
    if "data" in text:
        try:
            event["data"] = json.loads(text["data"])
        except ValueError as exc:
            raise Malformed(f"field 'data' is not JSON text ({exc}); write JSON, or leave "
                            "'data' out to take the fields themselves as the data") from None
    else:
        event["data"] = {k: v for k, v in text.items() if k not in ATTRIBUTE_FIELDS}
    return event


def entry_time(entry_id: str) -> str:
    """The RFC 3339 time of an entry id's milliseconds (when Redis added it)."""
    millis = int(entry_id.split("-", 1)[0])
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_fields(event: dict[str, Any]) -> dict[str, str]:
    """The fields the sink XADDs for ``event``: the structured JSON plus flat attributes."""
    fields = {EVENT_FIELD: json.dumps(event, separators=(",", ":"), default=str)}
    for name in FLAT_FIELDS:
        value = event.get(name)
        if value is not None:
            fields[name] = str(value)
    return fields
