"""One HTTP request to a host beside its websocket, streamed both ways, on a gevent socket.

TrueNAS moves files over HTTP (docs/protocol.md §16). The connection is made as
the websocket's is (transport.open_stream: the same connect, TLS policy and pin
check before any byte is sent), and h11 frames the exchange (protocol/http.py).
A body is never held whole: an upload is sent from an iterable of pieces, a
response is read piece by piece (`HttpResponse.chunks`). The request target may
carry a download token: it is never logged or put in an error.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import CallTimeout, TransferError
from ..protocol.endpoint import Endpoint
from ..protocol.http import BodyEnd, BodyPart, HttpExchange, HttpFailure, ResponseHead
from ..protocol.redact import mask_tokens
from .tls import TLSPolicy
from .transport import open_stream

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024


class HttpResponse:
    """A response whose head has arrived; its body is read with `chunks()`, once."""

    def __init__(self, host_name: str, sock: Any, exchange: HttpExchange, head: ResponseHead,
                 early: list[BodyPart | BodyEnd]) -> None:
        self.host_name, self._sock, self._exchange = host_name, sock, exchange
        self.status, self.headers = head.status, head.headers
        self.content_length = head.content_length
        self._early = early

    def chunks(self) -> Iterator[bytes]:
        """The body in pieces as they arrive; TransferError if it is cut short, CallTimeout if it stalls."""
        try:
            for event in self._early:
                if isinstance(event, BodyEnd):
                    return
                yield event.data
            while True:
                for later in _events(self.host_name, self._sock, self._exchange):
                    if isinstance(later, BodyEnd):
                        return
                    if isinstance(later, BodyPart):
                        yield later.data
        finally:
            self.close()

    def close(self) -> None:
        self._sock.close()


def http_request(host_name: str, endpoint: Endpoint, tls: TLSPolicy, *, method: str = "GET",
                 headers: Sequence[tuple[str, str]] = (), body: Iterable[bytes] | None = None,
                 content_length: int | None = None, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0) -> HttpResponse:
    """Send `method endpoint.target` (with `body` pieces, for an upload) and wait for the response head.

    `read_timeout` bounds each wait for the server, not the whole transfer.
    """
    if endpoint.unix_path:
        raise TransferError("files go over HTTP, which the middleware serves on TCP only, not on its "
                            "Unix socket: give the host a ws:// or wss:// uri", host_name)
    exchange = HttpExchange(method, endpoint.netloc, endpoint.target, headers, content_length)
    log.debug("%s: HTTP %s %s", host_name, method, mask_tokens(endpoint.target))
    sock, _ = open_stream(host_name, endpoint, tls, connect_timeout, lambda sock: sock.sendall(exchange.request()),
                          "the HTTP request")
    try:
        sock.settimeout(read_timeout)
        if body is not None:
            for piece in body:
                _send(host_name, sock, exchange.body(piece))
            _send(host_name, sock, exchange.end())
        while True:
            events = _events(host_name, sock, exchange)
            if events and isinstance(events[0], ResponseHead):
                rest: list[BodyPart | BodyEnd] = [e for e in events[1:] if not isinstance(e, ResponseHead)]
                return HttpResponse(host_name, sock, exchange, events[0], rest)
    except HttpFailure as exc:
        sock.close()
        raise TransferError(str(exc), host_name) from None
    except BaseException:
        sock.close()
        raise


def _send(host_name: str, sock: Any, data: bytes) -> None:
    try:
        sock.sendall(data)
    except TimeoutError:
        raise CallTimeout(f"the server took nothing for {sock.gettimeout():g} s", host_name) from None
    except OSError as exc:
        raise TransferError(f"send failed: {exc.strerror or exc}", host_name) from None


def _events(host_name: str, sock: Any, exchange: HttpExchange) -> list[ResponseHead | BodyPart | BodyEnd]:
    """What the next read completes (nothing, when it completed no event)."""
    try:
        data = sock.recv(RECV_BYTES)
    except TimeoutError:
        raise CallTimeout(f"the server sent nothing for {sock.gettimeout():g} s", host_name) from None
    except OSError as exc:
        raise TransferError(f"receive failed: {exc.strerror or exc}", host_name) from None
    try:
        return exchange.receive(data)
    except HttpFailure as exc:
        raise TransferError(str(exc), host_name) from None
