"""Plain API keys judged by the origin the server sees (HostConfig.proxied_from).

Modelled on plugins/auth.py `login_ex` API_KEY_PLAIN (TS-25.04.2.6, TS-25.10.1),
plugins/auth_/login_ex_impl.py (TS-26.0.0-BETA.2), plugins/api_key.py (TS-24.10.2:
no revocation) and utils/origin.py `secure_transport` / `get_tcp_ip_info` (TLS only
as nginx reports it with X-Https).
"""
from __future__ import annotations

import pytest

from fleetclt.sim import ManualClock
from tests.sim.auth_helpers import PASSWORD, ddp_call, ddp_connect, login_ex
from tests.wsclient import WsClient

KEY = "7-" + "k" * 64


def key_login(client):
    return login_ex(client, mechanism="API_KEY_PLAIN", username="admin", api_key=KEY)["response_type"]


@pytest.mark.parametrize("version", ["25.04.2", "25.10.1", "26.0.0-BETA.2"])
def test_a_proxied_loopback_client_loses_its_key(make_host, client_for, version):
    """A port forward or port mapping: loopback for the client, a remote plain origin for the server."""
    host = make_host(version=version, api_keys={KEY: "admin"}, proxied_from="192.0.2.7",
                     clock=ManualClock(speed=1000))
    client = client_for(host)
    assert key_login(client) == "EXPIRED"
    assert KEY in host.revoked_keys
    assert key_login(client) == "AUTH_ERR"
    assert key_login(client_for(host)) == "AUTH_ERR"
    assert client.call("system.info")["error"]["data"]["error"] == 207
    assert login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)[
        "response_type"] == "SUCCESS"


def test_tls_ended_by_a_proxy_is_not_tls_to_the_server(make_host, tls_files):
    """origin.py: ssl only from nginx's X-Https; wss:// to a proxy without it is a plain origin."""
    host = make_host(api_keys={KEY: "admin"}, proxied_from="192.0.2.7", certfile=tls_files["cert"],
                     keyfile=tls_files["key"], clock=ManualClock(speed=1000))
    client = WsClient(host.uri, ssl_context=tls_files["context"])
    try:
        assert host.uri.startswith("wss://") and key_login(client) == "EXPIRED"
    finally:
        client.close()


def test_direct_tls_keeps_the_key(make_host, tls_files):
    host = make_host(api_keys={KEY: "admin"}, loopback_secure=False, certfile=tls_files["cert"],
                     keyfile=tls_files["key"])
    client = WsClient(host.uri, ssl_context=tls_files["context"])
    try:
        assert key_login(client) == "SUCCESS" and not host.revoked_keys
    finally:
        client.close()


def test_24_10_never_revokes(make_host, client_for):
    """TS-24.10.2 api_key.authenticate: no transport check; a bad key is false at once."""
    host = make_host(version="24.10.2", api_keys={KEY: "admin"}, proxied_from="192.0.2.7")
    client = client_for(host)
    ddp_connect(client)
    assert ddp_call(client, "auth.login_with_api_key", "1-nope", msg_id="a")["result"] is False
    assert ddp_call(client, "auth.login_with_api_key", KEY, msg_id="b")["result"] is True
    assert not host.revoked_keys

