"""The client side of the websocket upgrade (RFC 6455 section 4.1), sans-IO, on h11.

Done here rather than by wsproto's WSConnection so that the bytes that follow
the 101 response come back untouched: the transport hands them to its own frame
splitter, and wsproto's frame parser starts empty instead of holding half a
frame that only its private state could reveal.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

import h11

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class Accepted:
    """The server switched to websocket; `trailing` is what it sent after the 101."""

    trailing: bytes


@dataclass(frozen=True)
class Refused:
    """The server answered with an ordinary HTTP response (a redirect on an old host, a 403, ...)."""

    status: int
    location: str


class HandshakeFailure(ValueError):
    """A response that is neither a valid upgrade nor a plain refusal."""


class ClientHandshake:
    """Bytes for the upgrade request out; the server's bytes in; a verdict once it is complete."""

    def __init__(self, netloc: str, target: str) -> None:
        self._netloc, self._target = netloc, target
        self._key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._http = h11.Connection(h11.CLIENT)

    def request(self) -> bytes:
        headers = [("Host", self._netloc), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                   ("Sec-WebSocket-Key", self._key), ("Sec-WebSocket-Version", "13")]
        return self._http.send(h11.Request(method="GET", target=self._target, headers=headers)) or b""

    def receive(self, data: bytes) -> Accepted | Refused | None:
        """Feed what arrived; None until the response head is complete."""
        try:
            self._http.receive_data(data)
            event = self._http.next_event()
        except h11.RemoteProtocolError as exc:
            raise HandshakeFailure(str(exc)) from None
        if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            self._check_upgrade(dict(event.headers))
            return Accepted(self._http.trailing_data[0])
        if isinstance(event, (h11.Response, h11.InformationalResponse)):
            return Refused(event.status_code, dict(event.headers).get(b"location", b"").decode("latin-1"))
        return None

    def _check_upgrade(self, headers: dict[bytes, bytes]) -> None:
        expected = base64.b64encode(hashlib.sha1(self._key.encode("ascii") + _ACCEPT_GUID).digest())
        tokens = {token.strip() for token in headers.get(b"connection", b"").lower().split(b",")}
        if b"upgrade" not in tokens or headers.get(b"upgrade", b"").lower() != b"websocket":
            raise HandshakeFailure("101 response without Upgrade: websocket")
        if headers.get(b"sec-websocket-accept") != expected:
            raise HandshakeFailure("wrong Sec-WebSocket-Accept")
        for name in (b"sec-websocket-extensions", b"sec-websocket-protocol"):
            if headers.get(name):
                raise HandshakeFailure(f"server chose {name.decode()}, which was not offered")
