"""Plain HTTP routes, TLS and the Unix socket."""
from __future__ import annotations

import json
import urllib.request

import gevent
import pytest

from tests.wsclient import Rejected, WsClient


def http_get(host, path):
    def fetch():
        with urllib.request.urlopen(f"http://{host.address}:{host.port}{path}", timeout=5) as reply:
            return json.loads(reply.read())
    return gevent.get_hub().threadpool.apply(fetch)


def test_api_versions_lists_versions_up_to_the_host_version(make_host):
    versions = http_get(make_host(version="25.10.1"), "/api/versions")
    assert "v25.04.0" in versions and "v25.10.1" in versions and "v26.0.0" not in versions
    assert "v24.10" not in versions


def test_boot_id_route_matches_the_method(host, client):
    assert http_get(host, "/api/boot_id") == client.result("system.boot_id")


def test_versioned_route_speaks_json_rpc(host, client_for):
    assert client_for(host, "/api/v25.04.2").result("core.ping") == "pong"


def test_unknown_path_upgrade_is_404(host):
    with pytest.raises(Rejected) as rejected:
        WsClient(f"ws://{host.address}:{host.port}/nope")
    assert rejected.value.status == 404


def test_bad_websocket_key_is_a_400_not_a_crash(host):
    from gevent import socket
    sock = socket.create_connection((host.address, host.port))
    sock.sendall(b"GET /api/current HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!notbase64\r\n\r\n")
    assert sock.recv(100).startswith(b"HTTP/1.1 400")
    sock.close()


@pytest.fixture
def certificate(tls_files):
    return tls_files["cert"], tls_files["key"], tls_files["context"]


def test_wss_counts_as_secure_for_plain_api_keys(make_host, certificate):
    certfile, keyfile, context = certificate
    host = make_host(certfile=certfile, keyfile=keyfile, loopback_secure=False, api_keys={"1-abc": "admin"})
    assert host.uri.startswith("wss://")
    client = WsClient(host.uri, ssl_context=context)
    try:
        reply = client.result("auth.login_ex", {"mechanism": "API_KEY_PLAIN", "username": "admin",
                                                "api_key": "1-abc"})
        assert reply["response_type"] == "SUCCESS" and not host.revoked_keys
    finally:
        client.close()


def test_unix_socket_host(make_host, tmp_path):
    path = str(tmp_path / "mw.sock")
    host = make_host(unix_path=path)
    assert host.uri == f"ws+unix://{path}"
    client = WsClient("ws://localhost/api/current", unix_path=path)
    try:
        client.login()
        assert client.result("system.info")["hostname"] == "nas01"
    finally:
        client.close()
