"""A small, independent websocket test client (wsproto over gevent sockets).

Deliberately not fleetclt's own client: simulator tests must not share code
with what they will later be used to test.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket as pysocket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import socket, ssl
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.events import Message as WsMessage

TIMEOUT = 10.0


@dataclass
class Closed:
    code: int | None
    reason: str


class Rejected(Exception):
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.headers = status, headers


class WsClient:
    """One websocket; `call` matches replies by id and buffers everything else."""

    _ids = itertools.count(1)

    def __init__(self, url: str, timeout: float = TIMEOUT, ssl_context: ssl.SSLContext | None = None,
                 unix_path: str | None = None) -> None:
        parts = urlsplit(url)
        with gevent.Timeout(timeout):
            if unix_path:
                self.sock = socket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
                self.sock.connect(unix_path)
            else:
                self.sock = socket.create_connection((parts.hostname, parts.port))
            if parts.scheme == "wss":
                self.sock = (ssl_context or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)).wrap_socket(
                    self.sock, server_hostname=parts.hostname)
            self.ws = WSConnection(ConnectionType.CLIENT)
            self.inbox: deque[Any] = deque()
            self.closed: Closed | None = None
            self._partial = ""
            self._write(self.ws.send(Request(host=parts.netloc or "localhost", target=parts.path or "/")))
            self._handshake()

    def _handshake(self) -> None:
        accepted = False
        while not accepted:
            for event in self._events():
                if isinstance(event, RejectConnection):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    raise Rejected(event.status_code, headers)
                if accepted:
                    self._on_event(event)  # frames that came in the same read as the 101
                accepted = accepted or isinstance(event, AcceptConnection)

    def _write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _events(self) -> list[Any]:
        data = self.sock.recv(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    def send(self, message: Any) -> Any:
        """Send a dict (as JSON) or raw text; returns the id of a dict request."""
        text = message if isinstance(message, str) else json.dumps(message)
        self._write(self.ws.send(TextMessage(data=text)))
        return message.get("id") if isinstance(message, dict) else None

    def send_bytes(self, data: bytes) -> None:
        self._write(self.ws.send(BytesMessage(data=data)))

    def send_raw_text_frame(self, payload: bytes, fin: bool = True) -> None:
        """A text frame built by hand, so its payload may be invalid UTF-8 (wsproto takes only str)."""
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self._write(bytes([(0x80 if fin else 0) | 0x1, 0x80 | len(payload)]) + mask + masked)

    def request(self, method: str, *params: Any) -> int:
        msg_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": list(params)})
        return msg_id

    def recv(self, timeout: float = TIMEOUT) -> Any:
        """Next message (a dict) or a Closed marker."""
        with gevent.Timeout(timeout):
            while not self.inbox:
                if self.closed:
                    return self.closed
                self._pump()
        return self.inbox.popleft()

    def _pump(self) -> None:
        try:
            events = self._events()
        except OSError:
            events = []
            self.closed = self.closed or Closed(None, "socket error")
        for event in events:
            self._on_event(event)
        if self.ws.state.name == "CLOSED" and not self.closed:
            self.closed = Closed(None, "no close frame")

    def _on_event(self, event: Any) -> None:
        if isinstance(event, TextMessage):
            self._partial += event.data
            if event.message_finished:
                self.inbox.append(json.loads(self._partial))
                self._partial = ""
        elif isinstance(event, CloseConnection):
            self.closed = Closed(event.code, event.reason)
            with contextlib.suppress(Exception):
                self._write(self.ws.send(event.response()))
        elif isinstance(event, Ping):
            self._write(self.ws.send(event.response()))
        elif isinstance(event, (WsMessage, RejectData)):
            pass

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = TIMEOUT) -> Any:
        """Next message matching `predicate`; others stay buffered, in order."""
        skipped: list[Any] = []
        try:
            with gevent.Timeout(timeout):
                while True:
                    message = self.recv(timeout)
                    if isinstance(message, Closed) or predicate(message):
                        return message
                    skipped.append(message)
        finally:
            self.inbox.extendleft(reversed(skipped))

    def reply(self, msg_id: Any, timeout: float = TIMEOUT) -> Any:
        return self.wait_for(lambda m: isinstance(m, dict) and m.get("id") == msg_id and "method" not in m,
                             timeout)

    def call(self, method: str, *params: Any, timeout: float = TIMEOUT) -> Any:
        """Full reply dict of one call."""
        return self.reply(self.request(method, *params), timeout)

    def result(self, method: str, *params: Any, timeout: float = TIMEOUT) -> Any:
        reply = self.call(method, *params, timeout=timeout)
        assert "result" in reply, reply
        return reply["result"]

    def login(self, username: str = "admin", password: str = "fleetclt-sim") -> None:
        reply = self.result("auth.login_ex", {"mechanism": "PASSWORD_PLAIN", "username": username,
                                              "password": password})
        assert reply["response_type"] == "SUCCESS", reply

    def wait_closed(self, timeout: float = TIMEOUT) -> Closed:
        return self.wait_for(lambda m: False, timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._write(self.ws.send(CloseConnection(code=1000)))
        self.sock.close()
