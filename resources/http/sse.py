"""Server-Sent Events: an incremental `text/event-stream` parser and the body reader it needs."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

import requests

_SSE_LINE = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str = ""  # the stream's last event id once this event arrived (what to resume from)


class SseParser:
    """An incremental `text/event-stream` parser, as the WHATWG HTML standard (9.2.6) reads streams.

    Lines end in CRLF, LF or CR (a CR at the end of a chunk waits for the next one); `data:` lines
    join with newlines; comments (`:`) are counted and skipped; `id:` persists across events;
    `retry:` takes digits only; an event without a final blank line is dropped.
    """

    def __init__(self, last_event_id: str = "") -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._pending + self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        out: list[SseEvent] = []
        position = 0
        for match in _SSE_LINE.finditer(text):
            if match.group() == "\r" and match.end() == len(text):
                break  # maybe the first half of a CRLF split across chunks
            self._line(text[position : match.start()], out)
            position = match.end()
        self._pending = text[position:]
        return out

    def _line(self, line: str, out: list[SseEvent]) -> None:
        if not line:
            if self._data:
                out.append(SseEvent("\n".join(self._data), self._event or "message", self.last_event_id))
            self._data, self._event = [], ""
            return
        if line.startswith(":"):
            self.comments += 1
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            self.retry_ms = int(value)


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: per HTTP chunk when chunked, else whatever one read returns."""
    if getattr(response.raw, "chunked", False):
        yield from response.iter_content(chunk_size=None)
        return
    while chunk := response.raw.read1(65536):
        yield chunk
