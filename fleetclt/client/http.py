"""One HTTP request to a host beside its websocket, streamed both ways, on a gevent socket.

TrueNAS moves files over HTTP (docs/protocol.md §16). The connection is made as
the websocket's is (transport.open_stream: the same connect, TLS policy and pin
check before any byte is sent), and h11 frames the exchange (protocol/http.py).
A body is never held whole: an upload is sent from an iterable of pieces, a
response is read piece by piece (`HttpResponse.chunks`, or `pieces` without a
copy: views of one read buffer, docs/performance.md §7). A piece may be a
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

FIRST_RECV_BYTES = 64 * 1024  # a response's first reads: a head and a short answer
RECV_BYTES = 1024 * 1024  # the reads of a body bigger than that
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
    """A response whose head has arrived; its body is read with `pieces()` or `chunks()`, once."""

    def __init__(self, host_name: str, reader: _Reader, head: ResponseHead,
                 early: list[BodyPart | BodyEnd]) -> None:
        self.host_name, self._reader = host_name, reader
        self.status, self.headers = head.status, head.headers
        self.content_length = head.content_length
        self._early = early

    def pieces(self) -> Iterator[memoryview]:
        """The body as it arrives, without copies: each piece is a view of the read buffer, valid
        until the next piece is asked for. TransferError if it is cut short, CallTimeout if it stalls."""
        try:
            events: list[Any] = self._early
            while True:
                for event in events:
                    if isinstance(event, BodyEnd):
                        return
                    if isinstance(event, BodyPart):
                        yield event.data
                gevent.sleep(0)  # on loopback a read never waits: let the other hosts have their turn
                events = self._reader.events()
        finally:
            self.close()

    def chunks(self) -> Iterator[bytes]:
        """The body in pieces of bytes the caller may keep (see `pieces`)."""
        for piece in self.pieces():
            yield bytes(piece)

    def close(self) -> None:
        self._reader.sock.close()


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
                return _answer_despite(_Reader(host_name, sock, exchange), failure)
        return _response(_Reader(host_name, sock, exchange))
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


class _Reader:
    """Reads of one response into one buffer, reused: a read's body parts are views of it.

    The buffer starts small and grows once to RECV_BYTES when a read fills it: an
    upload's answer takes 64 KiB, a download's body is read 1 MiB at a time.
    """

    def __init__(self, host_name: str, sock: Any, exchange: HttpExchange) -> None:
        self.host_name, self.sock, self.exchange = host_name, sock, exchange
        self._buffer = memoryview(bytearray(FIRST_RECV_BYTES))

    def events(self) -> list[ResponseHead | BodyPart | BodyEnd]:
        """What the next read completes (nothing, when it completed no event); the previous
        read's body parts are overwritten."""
        try:
            size = self.sock.recv_into(self._buffer)
        except TimeoutError:
            raise CallTimeout(f"the server sent nothing for {self.sock.gettimeout():g} s", self.host_name) from None
        except OSError as exc:
            raise TransferError(f"receive failed: {exc.strerror or exc}", self.host_name) from None
        data = self._buffer[:size]
        if size == len(self._buffer) < RECV_BYTES:  # the views of this read stay on the old buffer
            self._buffer = memoryview(bytearray(RECV_BYTES))
        try:
            return self.exchange.receive(data)
        except HttpFailure as exc:
            raise TransferError(str(exc), self.host_name) from None


def _response(reader: _Reader) -> HttpResponse:
    """Read until the response head has come."""
    while True:
        events = reader.events()
        if events and isinstance(events[0], ResponseHead):
            rest: list[BodyPart | BodyEnd] = [e for e in events[1:] if not isinstance(e, ResponseHead)]
            return HttpResponse(reader.host_name, reader, events[0], rest)


def _answer_despite(reader: _Reader, failure: TransferError) -> HttpResponse:
    """The send broke: a server that refused the upload may have answered before it closed."""
    try:
        return _response(reader)
    except (TransferError, CallTimeout):
        raise failure from None
