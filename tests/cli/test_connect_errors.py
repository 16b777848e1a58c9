"""Connection errors that point the right way, and TLS checks that are never turned off silently.

Real servers on loopback: a simulated host on ws://, one on wss://, a
listener that never answers (the kernel completes TCP, nothing reads), and one
that hangs up on whatever it is sent.
"""
from __future__ import annotations

import gevent
import pytest
from gevent import socket

from fleetclt.cli.main import main
from fleetclt.client.tls import TLSPolicy
from fleetclt.client.transport import open_websocket
from fleetclt.errors import ConnectTimeout, TLSError
from fleetclt.protocol.endpoint import Endpoint

PASSWORD = "fleetclt-sim"


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv("CONNECT_ERRORS_PW", PASSWORD)


def one_host(capsys, uri, *flags):
    code = main(["--uri", uri, "-U", "admin", "--password-env", "CONNECT_ERRORS_PW", *flags, "call", "core.ping"])
    return code, capsys.readouterr().err.splitlines()


@pytest.fixture
def listener():
    """A listening socket that never accepts: TCP connects (the backlog), nothing ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_wss_to_a_plain_port_asks_whether_it_is_ws(capsys, host):
    code, lines = one_host(capsys, f"wss://127.0.0.1:{host.port}", "--tls-fingerprint", "0" * 64)
    assert code == 1 and lines[-1].startswith("TLSError: TLS handshake failed: ")
    assert lines[-1].endswith("; is the port plain ws:// rather than wss://?")


def test_wss_to_a_server_that_hangs_up_asks_whether_it_is_ws():
    """A plain server that reads the ClientHello as a bad request and closes: UNEXPECTED_EOF_WHILE_READING."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def hang_up():
        conn, _ = sock.accept()
        conn.recv(4096)
        conn.close()
    server = gevent.spawn(hang_up)
    try:
        with pytest.raises(TLSError, match=r"; is the port plain ws:// rather than wss://\?$"):
            open_websocket("plain", Endpoint.parse(f"wss://127.0.0.1:{sock.getsockname()[1]}"),
                           TLSPolicy(verify=False), 5)
    finally:
        server.kill()
        sock.close()


def test_ws_to_a_tls_port_asks_whether_it_is_wss(capsys, make_host, tls_files):
    tls_host = make_host(certfile=tls_files["cert"], keyfile=tls_files["key"])
    code, lines = one_host(capsys, f"ws://127.0.0.1:{tls_host.port}")
    assert code == 1 and lines[-1].endswith("; is the port wss:// (TLS) rather than ws://?"), lines


@pytest.mark.parametrize("scheme, step", [("ws", "the websocket handshake"), ("wss", "the TLS handshake")])
def test_a_blackhole_says_tcp_connected_and_which_step_got_no_answer(listener, scheme, step):
    with pytest.raises(ConnectTimeout) as failed:
        open_websocket("hole", Endpoint.parse(f"{scheme}://127.0.0.1:{listener}"), TLSPolicy(verify=False), 0.3)
    assert str(failed.value) == f"hole: TCP connected, but {step} got no answer within 0.3 s"


def test_insecure_prints_one_warning_naming_the_host(capsys, make_host, tls_files):
    tls_host = make_host(certfile=tls_files["cert"], keyfile=tls_files["key"])
    code, lines = one_host(capsys, f"wss://127.0.0.1:{tls_host.port}", "--insecure")
    warnings = [line for line in lines if "TLS certificate checks are off" in line]
    assert code == 0 and warnings == [
        "fleetclt: warning: TLS certificate checks are off (--insecure) for host 127.0.0.1: anyone on the path "
        "can impersonate it; pin tls_fingerprint instead (fleetclt fingerprint prints it)"]


def test_verify_tls_false_prints_one_warning_per_run_naming_the_hosts(capsys, make_host, tls_files, tmp_path):
    hosts = [make_host(f"nas0{i}", certfile=tls_files["cert"], keyfile=tls_files["key"]) for i in (1, 2)]
    pinned = make_host("nas03", certfile=tls_files["cert"], keyfile=tls_files["key"])
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "defaults: {username: admin, password: {env: CONNECT_ERRORS_PW}, verify_tls: false}\nhosts:\n"
        + "".join(f"  {h.name}: {{uri: 'wss://127.0.0.1:{h.port}/api/current'}}\n" for h in hosts)
        + f"  nas03: {{uri: 'wss://127.0.0.1:{pinned.port}/api/current', tls_fingerprint: {tls_files['pin']}}}\n")
    code = main(["-i", str(inventory), "call", "--hosts", "all", "-o", "json", "core.ping"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 0 and lines == [
        "fleetclt: warning: TLS certificate checks are off (verify_tls: false) for 2 hosts nas01, nas02: anyone on "
        "the path can impersonate them; pin tls_fingerprint instead (fleetclt fingerprint prints it)"]


def test_fingerprint_of_a_plain_port_asks_whether_it_is_ws(capsys, host):
    code = main(["fingerprint", f"127.0.0.1:{host.port}"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"fleetclt: 127.0.0.1:{host.port}: cannot read the certificate: TLS handshake failed")
    assert lines[0].endswith("; is the port plain ws:// rather than wss://?")
