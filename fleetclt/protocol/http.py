"""One plain HTTP/1.1 exchange on h11, sans-IO: the file path beside the websocket.

TrueNAS moves files over HTTP, not the websocket (docs/protocol.md §16): a GET
of `/_download/...` streams a job's output, a POST to `/_upload` streams a file
into a job. An exchange is one request and one response on its own connection
(`Connection: close`), so a response body may also end with the connection.
Bytes go in and out; events come back. The body goes either way in pieces:
nothing here holds a whole file.
"""
from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Any, cast

import h11


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
    data: bytes


@dataclass(frozen=True)
class BodyEnd:
    """The body is complete: as long as Content-Length said, or its last chunk arrived."""


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

    def receive(self, data: bytes) -> list[ResponseHead | BodyPart | BodyEnd]:
        """Feed what arrived (b"" when the server closed); the events it completes, in order."""
        events: list[ResponseHead | BodyPart | BodyEnd] = []
        try:
            self._http.receive_data(data)
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return events
                if isinstance(event, h11.Response):
                    headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                               for name, value in event.headers}
                    events.append(ResponseHead(event.status_code, headers))
                elif isinstance(event, h11.Data):
                    events.append(BodyPart(bytes(event.data)))
                elif isinstance(event, h11.EndOfMessage):
                    events.append(BodyEnd())
                    return events
                elif isinstance(event, h11.ConnectionClosed):
                    raise HttpFailure("the server closed the connection before the response was complete")
        except h11.RemoteProtocolError as exc:
            raise HttpFailure(_cut_short(str(exc))) from None


def _cut_short(reason: str) -> str:
    """h11's words for a body that ended early, said plainly."""
    if "incomplete" in reason.lower() or "peer closed" in reason.lower():
        return "the connection closed before the whole body arrived"
    return f"bad HTTP response: {reason}"
