"""Fault switches: drops, close codes, stalls, latency, refusals, bad handshakes, raw frames."""
from __future__ import annotations

import socket

import gevent
import pytest

from fleetclt.sim import Faults, ManualClock, SimClock
from tests.helpers import wait_until
from tests.wsclient import Rejected, WsClient


def test_drop_sends_no_close_frame(client, host):
    client.login()
    host.drop_connections()
    assert client.wait_closed().code == 1006
    assert host.wait_disconnected(timeout=5)


@pytest.mark.parametrize("code", [1008, 1009, 1011])
def test_close_with_a_given_code(client, host, code):
    client.login()
    host.close_connections(code, "simulated")
    closed = client.wait_closed()
    assert (closed.code, closed.reason) == (code, "simulated")


def test_ip_allowlist_close_on_connect(host, client_for):
    host.faults.close_on_connect = 1008
    closed = client_for(host).wait_closed()
    assert closed.code == 1008 and closed.reason == "You are not allowed to access this resource"


def test_stalled_host_answers_nothing_until_released(client, host):
    client.login()
    host.set_stall(True)
    msg_id = client.request("system.info")
    with pytest.raises(gevent.Timeout):
        client.reply(msg_id, timeout=0.2)
    host.set_stall(False)
    assert client.reply(msg_id)["result"]["hostname"] == "nas01"


def test_latency_is_spent_on_the_host_clock(make_host, client_for):
    clock = ManualClock(speed=100)
    host = make_host(clock=clock)
    host.faults.latency = 5.0  # 50 ms of real time at speed 100
    client = client_for(host)
    started = gevent.get_hub().loop.now()
    assert client.result("core.ping") == "pong"
    assert gevent.get_hub().loop.now() - started >= 0.04


def test_offline_host_refuses_then_comes_back_on_the_same_port(host, client_for):
    port = host.port
    host.go_offline()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host.address, port), timeout=2)
    host.go_online()
    assert host.port == port and client_for(host).result("core.ping") == "pong"


@pytest.mark.parametrize("status", [302, 307, 404])
def test_handshake_answered_with_http_status(host, status):
    host.faults.handshake_status = status
    with pytest.raises(Rejected) as rejected:
        WsClient(host.uri)
    assert rejected.value.status == status
    assert ("location" in rejected.value.headers) == (status != 404)


def test_injected_null_id_error_reaches_the_client(client, host):
    client.login()
    host.inject('{"jsonrpc":"2.0","error":{"code":-32700,"message":"boom"},"id":null}')
    assert client.recv() == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "boom"}, "id": None}


def test_counters_count_connections_and_logins(make_host, client_for):
    host = make_host()
    for _ in range(3):
        client_for(host).login()
    assert host.counters.connections == 3 and host.counters.logins_ok == 3


def test_a_call_still_pending_when_its_client_goes_is_cancelled(client, host, client_for):
    """26.0 cancels a connection's calls when it closes: the stalled user.create never runs."""
    client.login()
    host.set_stall(True, frozenset({"user.create"}))
    before = host.counters.calls
    client.request("user.create", {"username": "ghost", "full_name": "G", "password": "x"})
    wait_until(lambda: host.counters.calls > before)
    client.close()
    assert host.wait_disconnected(timeout=5)
    host.set_stall(False)
    other = client_for(host)
    other.login()
    assert other.result("user.query", [["username", "=", "ghost"]], {"count": True}) == 0


def test_idle_timeout_cuts_only_a_silent_connection(make_host, client_for):
    host = make_host(clock=SimClock(speed=1), faults=Faults(idle_timeout=0.3))
    busy, silent = client_for(host), client_for(host)
    busy.login()
    for _ in range(8):  # 0.4 s of traffic, each frame well inside the idle timeout
        assert busy.result("core.ping") == "pong"
        gevent.sleep(0.05)
    assert silent.wait_closed(timeout=5).code == 1006, "cut with no close frame"
    assert busy.result("core.ping") == "pong"
    assert busy.wait_closed(timeout=5).code == 1006
