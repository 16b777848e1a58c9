"""One plain HTTP/1.1 exchange on h11, sans-IO: the file path beside the websocket.

TrueNAS moves files over HTTP, not the websocket (docs/protocol.md §16): a GET
of `/_download/...` streams a job's output, a POST to `/_upload` streams a file
into a job. An exchange is one request and one response on its own connection
(`Connection: close`), so a response body may also end with the connection.
Bytes go in and out; events come back. The body goes either way in pieces:
nothing here holds a whole file. h11 reads the response head; the body's
framing (Content-Length, chunked, or up to the close) is undone here without
copying: a body part is a view of the bytes fed in (docs/performance.md §7).
"""
from __future__ import annotations

import re
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Any, cast

import h11

MAX_LINE = 16 * 1024  # a chunk header or trailer line, as h11 bounds an incomplete event
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")  # h11's chunk_header
_LINE_END = re.compile(rb"\n")
_CRLF = b"\r\n"
_CUT_SHORT = "the connection closed before the whole body arrived"


@dataclass(frozen=True)
class ResponseHead:
    """The status line and headers (names lowercased) of the response."""

    status: int
    headers: dict[str, str]

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length", "")
        return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class BodyPart:
    """Part of the body: a view of the bytes given to `receive`, valid as long as they are."""

    data: memoryview


@dataclass(frozen=True)
class BodyEnd:
    """The body is complete: as long as Content-Length said, or its last chunk arrived."""


ResponseEvent = ResponseHead | BodyPart | BodyEnd


class HttpFailure(ValueError):
    """The server broke HTTP: a malformed response, or a body cut short."""


class HttpExchange:
    """Request bytes out (`request`, then `body` pieces and `end` for an upload); response events in."""

    def __init__(self, method: str, netloc: str, target: str,
                 headers: Sequence[tuple[str, str]] = (), content_length: int | None = None) -> None:
        self._http = h11.Connection(h11.CLIENT)
        self._head = [("Host", netloc), ("Connection", "close"), *headers]
        if content_length is not None:
            self._head.append(("Content-Length", str(content_length)))
        self._method, self._target = method, target
        self._body: _BodyReader | None = None

    def request(self) -> bytes:
        """The request line and headers; a GET is complete with them."""
        data = self._http.send(h11.Request(method=self._method, target=self._target, headers=self._head)) or b""
        if self._method == "GET":
            data += self.end()
        return data

    def body(self, data: bytes) -> bytes:
        """One piece of an upload's body, framed (h11 refuses more than Content-Length announced)."""
        return b"".join(self.body_passthrough(data))

    def body_passthrough(self, data: Sized) -> list[Any]:
        """One piece of an upload's body as h11 frames it, `data` passed through as the same object.

        `data` need not be bytes: anything with a length (a stand-in for a file's
        content, protocol/multipart.py FileContent) is counted against Content-Length
        and handed back in the list for the caller to send its bytes in its place.
        """
        try:
            return self._http.send_with_data_passthrough(h11.Data(data=cast(bytes, data))) or []
        except h11.LocalProtocolError as exc:
            raise HttpFailure(f"request body: {exc}") from None

    def end(self) -> bytes:
        """The end of the request (h11 refuses one shorter than Content-Length announced)."""
        try:
            return self._http.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise HttpFailure(f"request body: {exc}") from None

    def receive(self, data: bytes | bytearray | memoryview) -> list[ResponseEvent]:
        """Feed what arrived (b"" when the server closed); the events it completes, in order.

        Body parts are views of `data`: a caller that reuses its buffer consumes them first.
        """
        if self._body is not None:
            return self._body.feed(data)
        events: list[ResponseEvent] = []
        try:
            self._http.receive_data(bytes(data))
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return events
                if isinstance(event, h11.Response):
                    head = ResponseHead(event.status_code, {name.decode("latin-1").lower(): value.decode("latin-1")
                                                            for name, value in event.headers})
                    events.append(head)
                    self._body = _BodyReader.framing(head)
                    rest, _ = self._http.trailing_data  # what came after the head: the body's start
                    return events + self._body.take(memoryview(rest))
                if isinstance(event, h11.ConnectionClosed):
                    raise HttpFailure("the server closed the connection before the response was complete")
        except h11.RemoteProtocolError as exc:
            raise HttpFailure(_cut_short(str(exc))) from None


class _BodyReader:
    """A response body's framing undone as h11 would (RFC 9112 §6.3, §7.1), without copying it out.

    h11 copies every byte three times on the way in (into its buffer, out of it,
    into the event): for a download, more CPU than reading the socket. h11 has
    read the head, so its headers are valid: Transfer-Encoding can only be
    chunked, Content-Length only digits. A chunked body is decoded in place, as
    picohttpparser's phr_decode_chunked does: the data of the chunks in one read
    is moved together over their framing, so a read yields one part, however
    many chunks it held.
    """

    def __init__(self, chunked: bool, length: int | None) -> None:
        self.done = False
        self._chunked = chunked
        self._left = length  # of the body (None: up to the close), or of the current chunk
        self._line = bytearray()  # a chunk header, footer or trailer line not yet whole
        self._state = "size"  # chunked: size, data, footer, trailer

    @classmethod
    def framing(cls, head: ResponseHead) -> _BodyReader:
        if head.status in (204, 304):  # no body, whatever the headers say
            return cls(False, 0)
        if "transfer-encoding" in head.headers:
            return cls(True, 0)
        return cls(False, head.content_length)

    def feed(self, data: bytes | bytearray | memoryview) -> list[ResponseEvent]:
        """The body part and the end in `data` (chunked, decoded in it); b"" is the connection's close."""
        if self.done:
            return []
        if len(data):
            return self.take(memoryview(data))
        if self._chunked or self._left is not None:
            raise HttpFailure(_CUT_SHORT)
        self.done = True  # no length given: the body ends with the connection
        return [BodyEnd()]

    def take(self, view: memoryview) -> list[ResponseEvent]:
        if self._chunked:
            part = self._decode(view if not view.readonly else memoryview(bytearray(view)))
        elif self._left is None:
            part = view
        else:
            part = view[:self._left]
            self._left -= len(part)
            self.done = self._left == 0
        events: list[ResponseEvent] = [BodyPart(part)] if len(part) else []
        return events + [BodyEnd()] if self.done else events

    def _decode(self, view: memoryview) -> memoryview:
        """The chunk data in `view`, moved to follow each other from where the first began."""
        pos, size, start, out = 0, len(view), -1, 0
        while pos < size and not self.done:
            if self._state == "data":
                count = min(cast(int, self._left), size - pos)
                if start < 0:
                    start = out = pos
                elif out != pos:
                    view[out:out + count] = view[pos:pos + count]  # memoryview copies overlaps safely
                pos, out = pos + count, out + count
                self._left = cast(int, self._left) - count
                if self._left == 0:
                    self._state = "footer"
            elif self._state == "footer":  # the CRLF after a chunk's data, compared as it comes
                piece = view[pos:pos + 2 - len(self._line)]
                self._line += piece
                pos += len(piece)
                if self._line != _CRLF[:len(self._line)]:
                    raise HttpFailure(f"bad HTTP response: malformed chunk footer: {bytes(self._line)!r}")
                if len(self._line) == 2:
                    self._line.clear()
                    self._state = "size"
            else:
                pos = self._read_line(view, pos)
        return view[start:out] if start >= 0 else view[:0]

    def _read_line(self, view: memoryview, pos: int) -> int:
        """Take what `view` holds of a chunk header or trailer line from `pos`; act on it once whole."""
        found = _LINE_END.search(view, pos)
        end = len(view) if found is None else found.end()
        self._line += view[pos:end]
        if len(self._line) > MAX_LINE:
            raise HttpFailure(f"bad HTTP response: a chunk line longer than {MAX_LINE} bytes")
        if found is not None:
            line = bytes(self._line)
            self._line.clear()
            self._end_of_line(line)
        return end

    def _end_of_line(self, line: bytes) -> None:
        if self._state == "trailer":  # trailer fields are read past; a blank line ends the body
            self.done = line in (_CRLF, b"\n")
            return
        header = _CHUNK_HEADER.fullmatch(line)
        if header is None:
            raise HttpFailure(f"bad HTTP response: illegal chunk header: {line!r}")
        self._left = int(header[1], 16)
        self._state = "data" if self._left else "trailer"


def _cut_short(reason: str) -> str:
    """h11's words for a body that ended early, said plainly."""
    if "incomplete" in reason.lower() or "peer closed" in reason.lower():
        return _CUT_SHORT
    return f"bad HTTP response: {reason}"
