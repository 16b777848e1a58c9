"""One HTTP request to a host beside its websocket, streamed both ways, on a gevent socket.

TrueNAS moves files over HTTP (docs/protocol.md §16). The connection is made as
the websocket's is (transport.open_stream: the same connect, TLS policy and pin
check before any byte is sent), and h11 frames the exchange (protocol/http.py).
A body is never held whole: an upload is sent from an iterable of pieces, a
response is read piece by piece (`HttpResponse.chunks`). A piece may be a
`FileSlice`: part of an open file, which goes from the page cache to the socket
with `os.sendfile` on a plain connection and through buffered reads on TLS
(the kernel cannot encrypt). A shared `Bandwidth` may cap how fast bodies go.
The request target may carry a download token, and the headers an
Authorization: neither is ever logged or put in an error.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.socket import wait_write

from ..errors import CallTimeout, TransferError
from ..protocol.endpoint import Endpoint
from ..protocol.http import BodyEnd, BodyPart, HttpExchange, HttpFailure, ResponseHead
from ..protocol.redact import mask_tokens
from .bandwidth import Bandwidth
from .tls import TLSPolicy
from .transport import open_stream

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024
SEND_BYTES = 1024 * 1024  # one sendfile or read of a file's content


@dataclass(frozen=True)
class FileSlice:
    """`size` bytes of the open file `fd` from `offset`: a body piece sent straight from the file."""

    fd: int
    offset: int
    size: int

    def __len__(self) -> int:
        return self.size


BodyPiece = bytes | FileSlice


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
                 headers: Sequence[tuple[str, str]] = (), body: Iterable[BodyPiece] | None = None,
                 content_length: int | None = None, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0, bandwidth: Bandwidth | None = None,
                 on_sent: Callable[[int], None] | None = None) -> HttpResponse:
    """Send `method endpoint.target` (with `body` pieces, for an upload) and wait for the response head.

    `read_timeout` bounds each wait for the server, not the whole transfer.
    `on_sent(n)` hears of every n bytes of the body sent. A server that answers
    and closes before taking the whole body (a refused upload) is heard out:
    its answer is returned rather than the broken send.
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
            sender = _BodySender(host_name, sock, endpoint.scheme != "wss", bandwidth, on_sent)
            try:
                for piece in body:
                    for framed in exchange.body_passthrough(piece):
                        sender.send(framed)
                sender.send(exchange.end())
            except TransferError as failure:
                return _answer_despite(host_name, sock, exchange, failure)
        return _response(host_name, sock, exchange)
    except HttpFailure as exc:
        sock.close()
        raise TransferError(str(exc), host_name) from None
    except BaseException:
        sock.close()
        raise


class _BodySender:
    """Sends body pieces: bytes as they are, file slices by sendfile (plain) or reads (TLS), paced."""

    def __init__(self, host_name: str, sock: Any, plain: bool, bandwidth: Bandwidth | None,
                 on_sent: Callable[[int], None] | None) -> None:
        self.host_name, self.sock, self.plain = host_name, sock, plain
        self.bandwidth, self.on_sent = bandwidth, on_sent
        self.step = SEND_BYTES if bandwidth is None else bandwidth.piece(SEND_BYTES)

    def send(self, piece: BodyPiece) -> None:
        try:
            if isinstance(piece, FileSlice):
                self._send_file(piece)
            else:
                for start in range(0, len(piece), self.step):
                    self._send_bytes(piece[start:start + self.step])
        except TimeoutError:
            raise CallTimeout(f"the server took nothing for {self.sock.gettimeout():g} s", self.host_name) from None
        except OSError as exc:
            raise TransferError(f"send failed: {exc.strerror or exc}", self.host_name) from None

    def _send_bytes(self, data: bytes) -> None:
        if self.bandwidth is not None:
            self.bandwidth.take(len(data))
        self.sock.sendall(data)
        if self.on_sent is not None:
            self.on_sent(len(data))

    def _send_file(self, piece: FileSlice) -> None:
        offset, end = piece.offset, piece.offset + piece.size
        while offset < end:
            gevent.sleep(0)  # a socket that never fills never blocks: let the other transfers have their turn
            count = min(self.step, end - offset)
            if not self.plain:
                data = os.pread(piece.fd, count, offset)
                if not data:
                    raise OSError(f"the file ended {end - offset} bytes early (changed while it was sent?)")
                self._send_bytes(data)
                offset += len(data)
                continue
            if self.bandwidth is not None:
                self.bandwidth.take(count)
            offset += self._sendfile(piece.fd, offset, count, end)

    def _sendfile(self, fd: int, offset: int, count: int, end: int) -> int:
        """`count` bytes from the file by the kernel, waiting while the socket is full."""
        sent_total = 0
        while sent_total < count:
            try:
                sent = os.sendfile(self.sock.fileno(), fd, offset + sent_total, count - sent_total)
            except BlockingIOError:
                wait_write(self.sock.fileno(), timeout=self.sock.gettimeout(),
                           timeout_exc=TimeoutError("send timed out"))
                continue
            if sent == 0:
                raise OSError(f"the file ended {end - offset - sent_total} bytes early (changed while it was sent?)")
            sent_total += sent
            if self.on_sent is not None:
                self.on_sent(sent)
        return sent_total


def _response(host_name: str, sock: Any, exchange: HttpExchange) -> HttpResponse:
    """Read until the response head has come."""
    while True:
        events = _events(host_name, sock, exchange)
        if events and isinstance(events[0], ResponseHead):
            rest: list[BodyPart | BodyEnd] = [e for e in events[1:] if not isinstance(e, ResponseHead)]
            return HttpResponse(host_name, sock, exchange, events[0], rest)


def _answer_despite(host_name: str, sock: Any, exchange: HttpExchange, failure: TransferError) -> HttpResponse:
    """The send broke: a server that refused the upload may have answered before it closed."""
    try:
        return _response(host_name, sock, exchange)
    except (TransferError, CallTimeout):
        raise failure from None


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
