"""The sans-IO upgrade handshake against wsproto playing the server, bytes only."""
from __future__ import annotations

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request, TextMessage

from fleetclt.protocol.handshake import Accepted, ClientHandshake, HandshakeFailure, Refused


def server_sees(handshake: ClientHandshake) -> WSConnection:
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(handshake.request())
    events = list(server.events())
    assert isinstance(events[0], Request) and events[0].target == "/api/current" and events[0].host == "nas:6000"
    return server


def test_an_accepted_upgrade_returns_the_frames_that_followed_the_101() -> None:
    handshake = ClientHandshake("nas:6000", "/api/current")
    server = server_sees(handshake)
    response = server.send(AcceptConnection()) + server.send(TextMessage(data="hello"))
    assert handshake.receive(response[:10]) is None  # the head is not complete yet
    verdict = handshake.receive(response[10:])
    assert verdict == Accepted(response[response.index(b"\r\n\r\n") + 4:])
    assert verdict.trailing == b"\x81\x05hello"


def test_a_wrong_accept_token_fails() -> None:
    handshake = ClientHandshake("nas:6000", "/api/current")
    server_sees(handshake)
    forged = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
    with pytest.raises(HandshakeFailure, match="Sec-WebSocket-Accept"):
        handshake.receive(forged)


def test_a_refusal_keeps_its_status_and_location() -> None:
    handshake = ClientHandshake("nas:6000", "/api/current")
    server = server_sees(handshake)
    reply = server.send(RejectConnection(status_code=301, headers=[(b"location", b"/websocket")]))
    assert handshake.receive(reply) == Refused(301, "/websocket")


def test_garbage_is_a_handshake_failure() -> None:
    handshake = ClientHandshake("nas:6000", "/")
    handshake.request()
    with pytest.raises(HandshakeFailure):
        handshake.receive(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
