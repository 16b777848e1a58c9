"""The nginx in front of a simulated host (HostConfig.nginx): its idle close, by version."""
from __future__ import annotations

import socket

import pytest
from wsproto.events import Ping

from fleetclt.sim import ManualClock


@pytest.mark.parametrize("version, limit", [("25.04.2", 60), ("25.10.6", 60), ("26.0.0-BETA.1", 60),
                                            ("26.0.0-BETA.2", 3600), ("26.0.0", 3600)])
def test_nginx_cuts_a_websocket_that_carried_nothing_for_its_idle_limit(make_host, client_for, version, limit):
    """etc_files/local/nginx/nginx.conf.mako: no proxy_read_timeout on /api (nginx's 60 s default)
    up to 26.0-BETA.1, `proxy_read_timeout 3600` from TS-26.0.0-BETA.2; the cut closes the
    connections with no websocket close frame."""
    clock = ManualClock(speed=10000)
    host = make_host(version=version, nginx=True, clock=clock)
    client = client_for(host)
    client.login()
    clock.advance(limit - 1)
    assert client.result("core.ping") == "pong", "not cut before the limit"
    clock.advance(limit + 1)
    assert client.wait_closed(timeout=5).code == 1006


def test_traffic_either_way_rearms_the_idle_timer(make_host, client_for):
    """nginx src/http/ngx_http_upstream.c, ngx_http_upstream_process_upgraded: every pass over an
    upgraded connection re-arms proxy_read_timeout, whichever way the bytes went; a websocket
    ping and its pong are bytes like any other."""
    clock = ManualClock(speed=10000)
    host = make_host(version="25.10.1", nginx=True, clock=clock)
    client = client_for(host)
    client.login()
    for _ in range(3):
        clock.advance(50)
        client._write(client.ws.send(Ping(b"alive")))  # client -> server, answered by a pong
        clock.advance(50)
        host.inject('{"jsonrpc": "2.0", "method": "collection_update", "params": '
                    '{"msg": "changed", "collection": "x", "id": 1, "fields": {}}}')  # server -> client
        assert client.recv()["method"] == "collection_update"
    assert client.result("core.ping") == "pong", "300 s of short silences: still open"
    clock.advance(61)
    assert client.wait_closed(timeout=5).code == 1006


def test_without_nginx_or_on_a_unix_socket_nothing_is_cut(make_host, client_for, tmp_path):
    """Middlewared itself has no idle limit (aiohttp WebSocketResponse() with no heartbeat or
    receive timeout, api/base/server/ws_handler/base.py), and its Unix socket has no nginx."""
    clock = ManualClock(speed=10000)
    plain = make_host(clock=clock)
    path = str(tmp_path / "mw.sock")
    local = make_host(name="nas02", nginx=True, clock=clock, unix_path=path)
    clients = [client_for(plain), client_for(local, "/api/current", unix_path=path)]
    clock.advance(7200)
    assert [c.result("core.ping") for c in clients] == ["pong", "pong"]


def test_replies_leave_at_once_with_tcp_nodelay(make_host, client_for):
    """nginx sets TCP_NODELAY on proxied websocket connections (ngx_http_upstream.c, `tcp_nodelay
    on` by default), and middlewared's aiohttp on every connection it accepts (web_protocol.py
    RequestHandler.connection_made). Without it the simulator held a second reply for the
    client's delayed ACK, about 40 ms of every sim-based round."""
    host = make_host()
    client = client_for(host)
    assert client.result("core.ping") == "pong"
    (conn,) = host.connections
    assert conn.ws.handler.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
