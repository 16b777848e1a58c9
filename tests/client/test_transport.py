"""Transport and TLS against real sockets: pinning, verification, refusals, timeouts."""
from __future__ import annotations

import hashlib
import sys

import pytest
from gevent import socket, subprocess

from fleetclt.client.tls import TLSPolicy, fingerprint_of
from fleetclt.client.transport import open_websocket
from fleetclt.errors import ConnectError, ConnectTimeout, HandshakeError, PinMismatch, TLSError
from fleetclt.protocol.endpoint import Endpoint


@pytest.fixture
def tls_host(make_host, tls_files):
    return make_host(certfile=tls_files["cert"], keyfile=tls_files["key"])


def test_pinned_self_signed_certificate_is_accepted(tls_host, tls_files, session_for):
    session = session_for(tls_host, tls=TLSPolicy(fingerprint=tls_files["pin"]))
    assert session.call("system.info")["hostname"] == "nas01"


def test_wrong_pin_fails_before_any_credential_is_sent(tls_host, session_for):
    session = session_for(tls_host, tls=TLSPolicy(fingerprint="ab" * 32))
    with pytest.raises(PinMismatch, match="does not match the pinned"):
        session.call("system.info")
    assert tls_host.counters.calls == 0 and tls_host.counters.connections == 0


def test_unknown_self_signed_certificate_is_rejected_with_advice(tls_host, session_for):
    with pytest.raises(TLSError, match="tls_fingerprint") as rejected:
        session_for(tls_host).call("core.ping")
    assert not isinstance(rejected.value, PinMismatch)


def test_ca_file_verifies_the_host(tls_host, tls_files, session_for):
    session = session_for(tls_host, uri=tls_host.uri.replace("127.0.0.1", "localhost"),
                          tls=TLSPolicy(ca_file=tls_files["ca"]))
    assert session.call("core.ping") == "pong"


def test_verification_off_is_explicit(tls_host, session_for):
    assert session_for(tls_host, tls=TLSPolicy(verify=False)).call("core.ping") == "pong"


def test_tls_handshake_against_a_plain_port(host):
    endpoint = Endpoint.parse(f"wss://{host.address}:{host.port}/api/current")
    with pytest.raises(TLSError, match="TLS handshake failed"):
        open_websocket("nas01", endpoint, TLSPolicy(verify=False), timeout=5)


def test_refused_connection(host):
    port = host.port
    host.go_offline()
    with pytest.raises(ConnectError, match="connection refused"):
        open_websocket("nas01", Endpoint.parse(f"ws://{host.address}:{port}/api/current"), TLSPolicy(), 5)


def test_server_that_never_answers_the_upgrade_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(ConnectTimeout, match="TCP connected, but the websocket handshake got no answer"):
            open_websocket("mute", Endpoint.parse(f"ws://127.0.0.1:{port}/api/current"), TLSPolicy(), 0.2)
    finally:
        listener.close()


@pytest.mark.parametrize("status", [302, 404])
def test_refused_upgrade_names_the_status(host, status):
    host.faults.handshake_status = status
    with pytest.raises(HandshakeError) as refused:
        open_websocket("nas01", Endpoint.parse(host.uri), TLSPolicy(), 5)
    assert refused.value.status == status and f"HTTP {status}" in str(refused.value)


def test_endpoint_parsing():
    assert Endpoint.parse("wss://nas/api/current").port == 443
    unix = Endpoint.parse("ws+unix:///run/middleware/middlewared.sock")
    assert unix.unix_path == "/run/middleware/middlewared.sock" and unix.target == "/api/current"
    with pytest.raises(ValueError, match="not a websocket uri"):
        Endpoint.parse("http://nas/api/current")
    assert fingerprint_of(b"x") == hashlib.sha256(b"x").hexdigest()


def test_endpoint_keeps_the_query():
    assert Endpoint.parse("ws://127.0.0.1:9001/runCase?case=3&agent=x").target == "/runCase?case=3&agent=x"


def test_wrong_pin_closes_the_tls_socket(tls_host):
    """The TLS socket owns the fd once wrapped: a pin mismatch must close it, not the plain one."""
    import os
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(PinMismatch):
        open_websocket("nas01", Endpoint.parse(tls_host.uri), TLSPolicy(fingerprint="ab" * 32), 5)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_server_faults_get_close_codes(host):
    """Our verdict on a bad server reaches it as a close code (RFC 6455 7.1.7): 1003 binary, 1009 size."""
    from fleetclt.errors import ProtocolError
    ws = open_websocket("nas01", Endpoint.parse(host.uri), TLSPolicy(), 5)
    ws.max_message = 1000
    host.inject("x" * 1001)
    with pytest.raises(ProtocolError, match="larger than 1000 bytes .closed with 1009"):
        ws.receive()
    ws = open_websocket("nas01", Endpoint.parse(host.uri), TLSPolicy(), 5)
    for conn in list(host.connections):
        conn.ws.send(b"\x00", binary=True)
    with pytest.raises(ProtocolError, match="binary frame .closed with 1003"):
        ws.receive()


def test_fingerprint_command_prints_the_pin(tls_host, tls_files):
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "fingerprint", tls_host.uri],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == tls_files["pin"]
    assert "tls_fingerprint" in result.stderr
