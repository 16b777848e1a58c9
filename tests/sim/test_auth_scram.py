"""SCRAM-SHA-512 logins with API keys on 26.0, run with scramp's client over a real websocket.

Modelled on plugins/auth_/login_ex_impl.py `login_ex_scram`, plugins/auth.py `login_ex` (SCRAM
answers), utils/crypto.py `generate_api_key_auth_data` (TS-26.0.0-BETA.2) and
utils/account/authenticator.py ScramPamAuthenticator (channel binding, TS-26.0.0-BETA.3).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from gevent import ssl
from scramp import ScramClient

from tests.sim.auth_helpers import login_ex
from tests.wsclient import WsClient

KEY_ID, SECRET = "7", "Zm9vYmFyYmF6" * 5 + "abcd"
KEY = f"{KEY_ID}-{SECRET}"


@pytest.fixture
def scram_host(make_host):
    def make(version="26.0.0-BETA.2", **config):
        return make_host(version=version, api_keys={KEY: "admin"}, scram_iterations=4096, **config)
    return make


def scram_step(client, scram_type, rfc_str):
    return login_ex(client, mechanism="SCRAM", scram_type=scram_type, rfc_str=rfc_str)


def exchange(client, secret=SECRET, channel_binding=None):
    """The four messages; returns (server-first answer, server-final answer, scramp client)."""
    mechanism = "SCRAM-SHA-512-PLUS" if channel_binding else "SCRAM-SHA-512"  # -PLUS: the `p=` gs2 flag
    scram = ScramClient([mechanism], f"admin:{KEY_ID}", secret, channel_binding=channel_binding)
    first = scram_step(client, "CLIENT_FIRST_MESSAGE", scram.get_client_first())
    if first["response_type"] != "SCRAM_RESPONSE":
        return first, None, scram
    scram.set_server_first(first["rfc_str"])
    return first, scram_step(client, "CLIENT_FINAL_MESSAGE", scram.get_client_final()), scram


def test_mechanism_choices_offer_scram_from_26(scram_host, client_for):
    """utils/auth.py AA_LEVEL1: SCRAM joins the mechanisms in 26.0."""
    assert client_for(scram_host()).result("auth.mechanism_choices") == [
        "API_KEY_PLAIN", "TOKEN_PLAIN", "PASSWORD_PLAIN", "SCRAM"]
    older = client_for(scram_host("25.10.1", name="nas02"))
    older.login()  # 25.10 answers it only logged in (test_auth.py)
    assert "SCRAM" not in older.result("auth.mechanism_choices")


def test_scram_logs_in_and_proves_the_server(scram_host, client_for):
    host = scram_host()
    client = client_for(host)
    first, final, scram = exchange(client)
    assert first["scram_type"] == "SERVER_FIRST_RESPONSE" and first["user_info"] is None
    assert ",i=4096" in first["rfc_str"]
    assert final["response_type"] == "SCRAM_RESPONSE" and final["scram_type"] == "SERVER_FINAL_RESPONSE"
    assert final["user_info"]["pw_name"] == "admin"
    scram.set_server_final(final["rfc_str"])  # raises unless the server knew the key
    assert client.result("auth.me")["pw_name"] == "admin"
    assert host.counters.logins_scram == 1 and host.counters.logins_api_key == 0


def test_wrong_key_fails_at_the_final_message(scram_host, client_for):
    host = scram_host()
    client = client_for(host)
    first, final, _ = exchange(client, secret="x" * 64)
    assert first["response_type"] == "SCRAM_RESPONSE" and final == {"response_type": "AUTH_ERR"}
    assert host.counters.logins_failed == 1
    assert client.call("system.info")["error"]["data"]["error"] == 207


def test_unknown_key_fails_at_the_first_message(scram_host, client_for):
    scram = ScramClient(["SCRAM-SHA-512"], "admin:99", SECRET)
    client = client_for(scram_host())
    assert scram_step(client, "CLIENT_FIRST_MESSAGE", scram.get_client_first()) == {"response_type": "AUTH_ERR"}


def test_final_message_without_first_is_an_error(scram_host, client_for):
    reply = client_for(scram_host()).call("auth.login_ex", {"mechanism": "SCRAM", "scram_type": "CLIENT_FINAL_MESSAGE",
                                                             "rfc_str": "c=biws,r=abc,p=abc"})
    assert "SCRAM authentication is not in progress" in reply["error"]["data"]["reason"]


def test_scram_never_revokes_the_key_over_an_insecure_origin(scram_host, client_for):
    """Only API_KEY_PLAIN sends the key; SCRAM over a proxied, plain origin logs in and keeps it."""
    host = scram_host(proxied_from="192.0.2.7")
    _, final, _ = exchange(client_for(host))
    assert final["scram_type"] == "SERVER_FINAL_RESPONSE" and not host.revoked_keys


def test_scram_is_not_in_25_10(scram_host, client_for):
    reply = client_for(scram_host("25.10.1")).call("auth.login_ex", {"mechanism": "SCRAM"})
    assert reply["error"]["code"] == -32602


@pytest.mark.parametrize("version", ["26.0.0-BETA.2", "26.0.0-BETA.3"])
def test_channel_binding_needs_tls(scram_host, client_for, version):
    """BETA.3 ScramPamAuthenticator: a `p=` gs2 header over a non-TLS origin is refused."""
    client = client_for(scram_host(version))
    first, _, _ = exchange(client, channel_binding=("tls-server-end-point", b"\x00" * 32))
    assert first == {"response_type": "AUTH_ERR"}


def test_channel_binding_over_tls_binds_the_served_certificate(scram_host, tls_files):
    """BETA.3: tls-server-end-point (RFC 5929) of the certificate the host serves."""
    host = scram_host("26.0.0-BETA.3", certfile=tls_files["cert"], keyfile=tls_files["key"])
    binding = hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(tls_files["cert"]).read_text())).digest()
    client = WsClient(host.uri, ssl_context=tls_files["context"])
    try:
        _, final, scram = exchange(client, channel_binding=("tls-server-end-point", binding))
        scram.set_server_final(final["rfc_str"])
        wrong = WsClient(host.uri, ssl_context=tls_files["context"])
        _, refused, _ = exchange(wrong, channel_binding=("tls-server-end-point", b"\x01" * 32))
        assert refused == {"response_type": "AUTH_ERR"}
        wrong.close()
    finally:
        client.close()
