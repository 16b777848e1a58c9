"""Keepalive: proof of life that never waits for a call slot, inside nginx's idle limit (docs/protocol.md §10)."""
from __future__ import annotations

import gevent
import pytest

from fleetclt.client.session import Timeouts
from fleetclt.errors import ConfigError
from fleetclt.sim import SimClock
from tests.faultproxy import DOWN, FaultProxy
from tests.helpers import wait_until


def test_ten_calls_slower_than_two_keepalives_all_succeed_on_one_connection(host, session_for):
    """The old keepalive's core.ping waited for one of the ten busy slots and dropped the link."""
    session = session_for(host, timeouts=Timeouts(connect=5, call=30, keepalive=0.1, ping=0.5))
    session.connect()
    link = session._live_link()
    host.set_stall(True, frozenset({"system.info"}))
    calls = [gevent.spawn(session.call, "system.info") for _ in range(10)]
    wait_until(lambda: session.in_flight == 10)
    reads = link.ws.reads
    assert not link.dead.wait(2.0), "twenty keepalive intervals with every slot busy"
    assert link.ws.reads > reads, "the pings were answered meanwhile"
    host.set_stall(False)
    assert [call.get(timeout=10)["hostname"] for call in calls] == ["nas01"] * 10
    assert host.counters.connections == 1 and session.stats.drops == 0


def test_the_application_ping_takes_no_window_slot_and_goes_one_at_a_time(host, session_for):
    """With a window of one and core.ping never answered, calls still go at once."""
    session = session_for(host, window=1, timeouts=Timeouts(connect=5, call=5, keepalive=0.05, ping=0.5))
    session.connect()
    host.set_stall(True, frozenset({"core.ping"}))
    wait_until(lambda: session.in_flight == 1)  # the keepalive's core.ping, unanswered
    link = session._live_link()
    assert not link.dead.wait(1.0), "the pongs keep it alive"
    assert session.in_flight == 1, "no second core.ping while one is in flight"
    assert session.call("system.info", timeout=1)["hostname"] == "nas01"
    host.set_stall(False)
    assert host.counters.connections == 1 and session.stats.drops == 0


def test_a_peer_that_sends_nothing_back_is_dropped(host, session_for):
    with FaultProxy((host.address, host.port)) as proxy:
        session = session_for(host, uri=proxy.uri(), timeouts=Timeouts(connect=5, call=5, keepalive=0.05, ping=0.2))
        session.connect()
        proxy.faults.half_open = DOWN
        wait_until(lambda: session.stats.drops >= 1)
        assert not session.connected


def test_an_idle_session_outlives_nginx_idle_close_for_ten_minutes(make_host, session_for, client_for):
    """25.10 behind nginx, time at 100x: 60 s of silence is 0.6 s, ten minutes are 6 s."""
    host = make_host(version="25.10.1", nginx=True, clock=SimClock(speed=100))
    session = session_for(host, timeouts=Timeouts(connect=5, call=10, keepalive=0.25))  # 25 s at the host
    session.connect()
    link = session._live_link()
    silent = client_for(host)
    assert silent.wait_closed(timeout=5).code == 1006, "a client that sends nothing is cut"
    assert not link.dead.wait(6.0), "ten simulated minutes without a drop"
    assert session.call("core.ping") == "pong"
    assert session.stats.connects == 1 and session.stats.drops == 0 and host.counters.connections == 2


@pytest.mark.parametrize("version, keepalive, shown", [
    ("25.10.1", None, "no keepalive is too long for TrueNAS 25.10.1"),
    ("25.04.2", 60, "a keepalive of 60 s is too long for TrueNAS 25.04.2"),
    ("26.0.0-BETA.1", 90, "a keepalive of 90 s is too long for TrueNAS 26.0.0-BETA.1"),
    ("24.10.2", None, "no keepalive is too long for TrueNAS 24.10 or older"),
])
def test_a_keepalive_nginx_would_outlast_is_refused_before_26(make_host, session_for, version, keepalive, shown):
    host = make_host(version=version)
    session = session_for(host, timeouts=Timeouts(connect=5, call=10, keepalive=keepalive))
    for _ in range(2):
        with pytest.raises(ConfigError, match=f"^nas01: {shown}: nginx .* 60 s") as refused:
            session.call("core.ping")
    assert "under 60" in str(refused.value)
    assert host.counters.connections == 1 and host.wait_disconnected(timeout=5), "not tried again"


@pytest.mark.parametrize("version, keepalive", [("26.0.0-BETA.2", None), ("26.0.0", 300), ("25.10.1", 59)])
def test_a_long_keepalive_is_fine_from_26_beta_2(make_host, session_for, version, keepalive):
    host = make_host(version=version)
    session = session_for(host, timeouts=Timeouts(connect=5, call=10, keepalive=keepalive))
    assert session.call("core.ping") == "pong"


def test_a_unix_socket_has_no_nginx_and_needs_no_keepalive(make_host, session_for, tmp_path):
    path = str(tmp_path / "mw.sock")
    host = make_host(unix_path=path)
    session = session_for(host, uri=f"ws+unix://{path}", timeouts=Timeouts(connect=5, call=10, keepalive=None))
    assert session.call("core.ping") == "pong"
