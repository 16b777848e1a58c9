"""The HTTP file path against real sockets: streaming, TLS and pins, bodies cut short, stalls."""
from __future__ import annotations

import logging

import pytest

from fleetclt.client.http import RECV_BYTES, http_request
from fleetclt.client.tls import TLSPolicy
from fleetclt.errors import CallTimeout, PinMismatch, TransferError
from fleetclt.protocol.endpoint import Endpoint
from fleetclt.protocol.files import parse_download_answer
from fleetclt.sim import Faults
from fleetclt.sim.api_files import debug_pieces, files_of
from fleetclt.sim.http_files import hold_downloads
from tests.faultproxy import FaultProxy, ProxyFaults

SIZE = 6 * 1024 * 1024 + 11


def debug_ticket(session):
    return parse_download_answer(session.call("core.download", "system.debug", [], "debug.tgz", False))


def endpoint(uri, path):
    return Endpoint.parse(uri).with_path(path)


@pytest.fixture
def big(make_host):
    return make_host(faults=Faults(job_duration=0.1, debug_size=SIZE))


def test_a_body_arrives_in_pieces_never_whole(big, session_for):
    session = session_for(big)
    response = http_request("nas01", endpoint(session.uri, debug_ticket(session).path), TLSPolicy())
    sizes, data = [], bytearray()
    for piece in response.chunks():
        sizes.append(len(piece))
        data += piece
    assert len(data) == SIZE and bytes(data) == b"".join(debug_pieces(big, SIZE))
    assert max(sizes) <= RECV_BYTES and len(sizes) >= SIZE // RECV_BYTES


def test_tls_with_a_pin_and_a_wrong_pin_sends_nothing(make_host, session_for, tls_files):
    host = make_host(certfile=tls_files["cert"], keyfile=tls_files["key"], version="25.10.1")
    session = session_for(host, tls=TLSPolicy(fingerprint=tls_files["pin"]))
    path = debug_ticket(session).path
    with pytest.raises(PinMismatch):
        http_request("nas01", endpoint(session.uri, path), TLSPolicy(fingerprint="ab" * 32))
    assert files_of(host).downloads == 0
    response = http_request("nas01", endpoint(session.uri, path), TLSPolicy(fingerprint=tls_files["pin"]))
    assert response.status == 200 and sum(len(p) for p in response.chunks()) == 1024 * 1024  # the token was unused


def test_a_body_cut_short_is_an_error_not_an_end(big, session_for):
    session = session_for(big)
    with FaultProxy((big.address, big.port), ProxyFaults(truncate_after=1024 * 1024)) as proxy:
        uri = f"ws://{proxy.address[0]}:{proxy.address[1]}/api/current"
        response = http_request("nas01", endpoint(uri, debug_ticket(session).path), TLSPolicy())
        with pytest.raises(TransferError, match="closed before the whole body arrived"):
            for _ in response.chunks():
                pass


def test_a_stalled_body_times_out(big, session_for):
    session = session_for(big)
    hold_downloads(big, 64 * 1024)
    try:
        response = http_request("nas01", endpoint(session.uri, debug_ticket(session).path), TLSPolicy(),
                                read_timeout=0.3)
        with pytest.raises(CallTimeout, match="sent nothing for 0.3 s"):
            for _ in response.chunks():
                pass
    finally:
        hold_downloads(big, None)


def test_an_upload_shorter_than_announced_is_refused_before_it_is_sent_as_complete(host):
    with pytest.raises(TransferError, match="request body"):
        http_request("nas01", endpoint(host.uri, "/_upload"), TLSPolicy(), method="POST",
                     body=[b"x" * 10], content_length=20)


def test_a_unix_socket_host_has_no_http(host):
    with pytest.raises(TransferError, match="TCP only"):
        http_request("nas01", Endpoint.parse("ws+unix:///run/middleware/middlewared.sock"), TLSPolicy())


def test_the_token_never_reaches_a_log_line(big, session_for, caplog):
    session = session_for(big)
    caplog.set_level(logging.DEBUG, logger="fleetclt.client")
    path = debug_ticket(session).path
    token = path.split("auth_token=")[1]
    for _ in http_request("nas01", endpoint(session.uri, path), TLSPolicy()).chunks():
        pass
    client_lines = [r.getMessage() for r in caplog.records if r.name.startswith("fleetclt.client")]
    assert any("auth_token=********" in line for line in client_lines)
    assert not any(token in line for line in client_lines)
