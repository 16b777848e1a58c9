"""Response bodies framed without h11's copies: every split of the bytes gives what h11 gives, or its refusal."""
from __future__ import annotations

import random

import h11
import pytest

from fleetclt.protocol.http import MAX_LINE, BodyEnd, BodyPart, HttpExchange, HttpFailure, ResponseHead

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED = (CHUNKED_HEAD + b"5\r\nhello\r\n1;name=value\r\n \r\n10  \r\n" + bytes(range(16)) + b"\r\n"
           + b"a\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n")
BODY = b"hello " + bytes(range(16)) + b"0123456789"


def exchange() -> HttpExchange:
    http = HttpExchange("GET", "nas01", "/_download/1")
    http.request()
    return http


def h11_body(response: bytes) -> bytes:
    """What h11 itself makes of the same response: the reference."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "nas01")]))
    client.send(h11.EndOfMessage())
    client.receive_data(response)
    body = b""
    while not isinstance(event := client.next_event(), h11.EndOfMessage):
        body += bytes(event.data) if isinstance(event, h11.Data) else b""
    return body


def feed_in_pieces(response: bytes, cuts: list[int]) -> tuple[bytes, list[list[object]]]:
    """Feed `response` cut at `cuts`, each piece in a fresh writable buffer as a socket read would fill it."""
    http, body, per_read = exchange(), b"", []
    for start, end in zip([0, *cuts], [*cuts, len(response)], strict=True):
        events = http.receive(memoryview(bytearray(response[start:end])))
        per_read.append(events)
        body += b"".join(bytes(e.data) for e in events if isinstance(e, BodyPart))
    return body, per_read


def test_every_split_of_a_chunked_body_decodes_as_h11_does():
    assert h11_body(CHUNKED) == BODY
    for cut in range(1, len(CHUNKED)):
        body, per_read = feed_in_pieces(CHUNKED, [cut])
        assert body == BODY, cut
        assert [type(e) for e in per_read[-1]][-1:] == [BodyEnd]
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(CHUNKED)), rng.randint(2, 12)))
        assert feed_in_pieces(CHUNKED, cuts)[0] == BODY, cuts


def test_the_chunks_of_one_read_come_out_as_one_part_in_its_own_buffer():
    buffer = bytearray(CHUNKED)
    events = exchange().receive(memoryview(buffer))
    assert events == [ResponseHead(200, {"transfer-encoding": "chunked"}), BodyPart(memoryview(BODY)), BodyEnd()]
    http = exchange()
    http.receive(CHUNKED_HEAD)
    buffer = bytearray(CHUNKED[len(CHUNKED_HEAD):])
    parts = [e for e in http.receive(memoryview(buffer)) if isinstance(e, BodyPart)]
    assert len(parts) == 1 and parts[0].data.obj is buffer and bytes(parts[0].data) == BODY  # no copy


@pytest.mark.parametrize(("rest", "reason"), [
    (b"5\r\nhelloXY", "malformed chunk footer"),
    (b"zz\r\n", "illegal chunk header"),
    (b"5\nhello\r\n", "illegal chunk header"),
    (b"1" * (MAX_LINE + 1), "chunk line longer than"),
])
def test_a_broken_chunked_body_is_refused(rest, reason):
    with pytest.raises(HttpFailure, match=reason):
        exchange().receive(CHUNKED_HEAD + rest)
    with pytest.raises(h11.RemoteProtocolError):
        h11_body(CHUNKED_HEAD + rest + b"\r\n0\r\n\r\n")


@pytest.mark.parametrize("cut", [len(CHUNKED_HEAD) + 1, len(CHUNKED_HEAD) + 5, len(CHUNKED) - 3])
def test_a_chunked_body_cut_short_is_refused_at_the_close(cut):
    http = exchange()
    http.receive(CHUNKED[:cut])
    with pytest.raises(HttpFailure, match="closed before the whole body arrived"):
        http.receive(b"")


def test_a_length_ends_the_body_and_no_length_waits_for_the_close():
    http = exchange()
    events = http.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
    assert events[1:] == [BodyPart(memoryview(b"hel"))]
    assert http.receive(b"lo and more") == [BodyPart(memoryview(b"lo")), BodyEnd()]
    assert http.receive(b"") == []
    http = exchange()
    assert http.receive(b"HTTP/1.1 200 OK\r\n\r\nall")[1:] == [BodyPart(memoryview(b"all"))]
    assert http.receive(b"") == [BodyEnd()]
    empty = exchange().receive(b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n")
    assert empty == [ResponseHead(204, {"content-length": "3"}), BodyEnd()]

