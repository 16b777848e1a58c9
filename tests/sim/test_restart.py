"""A middlewared restart that takes time: nginx answers 502 until the new middleware listens."""
from __future__ import annotations

import pytest
from gevent import socket

from tests.wsclient import Rejected, WsClient

DOWNTIME = 300.0  # simulated seconds: 3 s of real time at the fixtures' speed of 100


def http_get_raw(host, path):
    """Status line and body of a plain GET, without urllib (the server shares this hub)."""
    sock = socket.create_connection((host.address, host.port), timeout=5)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host.address}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


def test_nginx_answers_502_while_middlewared_restarts(make_host, client_for):
    """etc_files/local/nginx/nginx.conf.mako proxies /api and /websocket to 127.0.0.1:6000 and
    has no error_page: while no middleware listens there nginx answers 502 Bad Gateway itself.
    The middleware that comes back has a new boot id and counts job ids from 1 (job.py)."""
    host = make_host(version="25.10.1")
    client = client_for(host)
    client.login()
    old_boot = client.result("system.boot_id")
    host.restart(downtime=DOWNTIME)
    assert client.wait_closed().code == 1006
    for path in ("/api/current", "/websocket", "/api/v25.04.2"):
        with pytest.raises(Rejected) as refused:
            WsClient(f"ws://{host.address}:{host.port}{path}")
        assert refused.value.status == 502, path
    status, body = http_get_raw(host, "/api/versions")
    assert status == "HTTP/1.1 502 Bad Gateway" and b"<center>nginx</center>" in body
    assert not host.middleware_up.is_set() and host.counters.bad_gateway == 4
    assert host.middleware_up.wait(timeout=30), "the middleware came back"
    fresh = client_for(host)
    fresh.login()
    assert fresh.result("system.boot_id") not in (old_boot, None)
    assert fresh.result("core.get_jobs", [["id", "=", 1]], {"get": True})["method"] == "pool.import_on_boot"


def test_a_24_10_host_redirects_api_current_itself_and_502s_the_websocket(make_host):
    """nginx.conf.mako at TS-24.10.2: `location /` rewrites to /ui/ without the middleware;
    only `location /websocket` is proxied."""
    host = make_host(version="24.10.2")
    host.restart(downtime=DOWNTIME)
    with pytest.raises(Rejected) as redirected:
        WsClient(f"ws://{host.address}:{host.port}/api/current")
    with pytest.raises(Rejected) as refused:
        WsClient(host.uri)
    assert (redirected.value.status, refused.value.status) == (302, 502)
    assert host.middleware_up.wait(timeout=30)
    WsClient(host.uri).close()  # upgraded again


def test_the_unix_socket_refuses_connections_while_down(make_host, tmp_path):
    """No nginx in front of middlewared.sock: nothing listens until the middleware is back."""
    path = str(tmp_path / "middlewared.sock")
    host = make_host(unix_path=path)
    host.restart(downtime=DOWNTIME)
    with pytest.raises(ConnectionRefusedError):
        WsClient("ws://localhost/api/current", unix_path=path)
    assert host.middleware_up.wait(timeout=30)
    client = WsClient("ws://localhost/api/current", unix_path=path)
    try:
        assert client.result("core.ping") == "pong"
    finally:
        client.close()
