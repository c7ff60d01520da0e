"""A Server-Sent Events parser (the WHATWG "event stream interpretation"), fed line by line.

Kept apart from the HTTP client so it can be tested on plain text: httpx gives the lines
(``Response.aiter_lines`` already splits on CR, LF and CRLF), this turns them into messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseMessage:
    event: str  # "message" when the server named none
    data: str
    id: str | None  # the stream's last event id when this message was dispatched
    retry_ms: int | None = None  # the reconnection delay the server asked for, if any
    has_id: bool = False  # whether this message itself carried an ``id`` line


class SseParser:
    """Accumulates fields until a blank line, then hands out one message.

    Comment lines (``:`` first, e.g. heartbeats) and unknown fields are ignored; a message
    without any ``data`` line is not dispatched (as the spec says), but its ``id`` still
    becomes the last event id.
    """

    def __init__(self, last_id: str | None = None):
        self.last_id = last_id
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._has_id = False

    def feed(self, line: str) -> SseMessage | None:
        """One line without its terminator; returns a message when ``line`` ends one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self.last_id = value or None
            self._has_id = True
        elif field == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        event, data, has_data = self._event or "message", "\n".join(self._data), self._has_data
        has_id = self._has_id
        self._event, self._data, self._has_data, self._has_id = "", [], False, False
        if not has_data:
            return None
        return SseMessage(event=event, data=data, id=self.last_id, retry_ms=self.retry_ms,
                          has_id=has_id)


async def parse_sse(lines: AsyncIterable[str], parser: SseParser | None = None
                    ) -> AsyncIterator[SseMessage]:
    """Messages from a stream of lines; a message cut off by the end of the stream is dropped."""
    parser = parser or SseParser()
    async for line in lines:
        message = parser.feed(line.rstrip("\r\n"))
        if message is not None:
            yield message
