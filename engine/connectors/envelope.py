"""CloudEvents 1.0 envelopes, as the JSON-able dicts an execution's trigger records.

Built and checked with the ``cloudevents`` package (required attributes, their types, the
extension names), then kept as a plain dict: that is what the store records, jq reads
(``.trigger.data``) and sinks send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent

ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype",
              "dataschema")


class InvalidEnvelope(ValueError):
    """Not a CloudEvents 1.0 envelope; the message names the attribute."""


def make(source: str, type: str, data: Any = None, *, id: str | None = None,
         subject: str | None = None, time: datetime | str | None = None,
         extensions: dict[str, Any] | None = None,
         datacontenttype: str | None = "application/json") -> dict[str, Any]:
    """A checked envelope; ``id`` defaults to a new UUID and ``time`` to now."""
    attributes: dict[str, Any] = {"source": source, "type": type}
    if id is not None:
        attributes["id"] = str(id)
    if subject is not None:
        attributes["subject"] = str(subject)
    if isinstance(time, str):
        time = _parse_time(time)
    if time is not None:
        attributes["time"] = time
    if datacontenttype is not None:
        attributes["datacontenttype"] = datacontenttype
    attributes.update(extensions or {})
    try:
        event = CloudEvent(attributes, None)
    except BaseCloudEventException as exc:
        raise InvalidEnvelope(f"not a CloudEvents 1.0 event: {exc}") from None
    return as_record(event, data)


def as_record(event: CloudEvent, data: Any = None) -> dict[str, Any]:
    """The envelope of ``event`` as a dict (``time`` as RFC 3339 text), carrying ``data``."""
    record: dict[str, Any] = {}
    for name, value in event.get_attributes().items():
        record[name] = value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) \
            else value
    record["data"] = data if data is not None else _jsonable(event.get_data())
    return record


def from_record(record: Any) -> dict[str, Any]:
    """Check a dict claimed to be an envelope (e.g. a structured-mode body, a stored
    message); returns it normalised. Raises ``InvalidEnvelope``."""
    if not isinstance(record, dict):
        raise InvalidEnvelope("a CloudEvents envelope must be a JSON object")
    if record.get("specversion") != "1.0":
        raise InvalidEnvelope(f"specversion must be '1.0', got {record.get('specversion')!r}")
    attributes = {k: v for k, v in record.items() if k not in ("data", "data_base64")}
    if isinstance(attributes.get("time"), str):
        attributes["time"] = _parse_time(attributes["time"])
    try:
        event = CloudEvent(attributes, None)
    except BaseCloudEventException as exc:
        raise InvalidEnvelope(f"not a CloudEvents 1.0 event: {exc}") from None
    return as_record(event, record.get("data"))


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEnvelope(f"time {text!r} is not an RFC 3339 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jsonable(data: Any) -> Any:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            return base64.b64encode(data).decode("ascii")
    return data
