"""Reconnects under churn: budget first, a request that never left is sent again, half-open links found.

The server side is the simulator's model of middlewared: `system.boot_id` and the
`auth.login*` methods need no login and count against the per-method rate limiter
(src/middlewared/middlewared/utils/rate_limit/cache.py, api/base/server/ws_handler/rpc.py);
pings are answered by the websocket layer (aiohttp's autoping in
api/base/server/app.py), outside the call slots. A cut is `drop_connections`: the
server's socket goes away with no close frame, as a crashed host or a proxy does.
"""
from __future__ import annotations

import logging

import gevent
import pytest

from fleetclt import Credentials, Fleet, HostSession
from fleetclt.client.session import Timeouts
from fleetclt.client.throttle import WAIT_LOGGER, AuthThrottle, MemoryStore, TokenBucket
from fleetclt.errors import OutcomeUnknown, ThrottledError
from fleetclt.fleet.results import Status, status_of
from tests.client.fake_time import FakeTime
from tests.faultproxy import DOWN, FaultProxy
from tests.helpers import wait_until

NEW_USER = {"username": "churn", "full_name": "Churn Test", "group_create": True, "password": "x-pw"}


def budget(fake: FakeTime, capacity: float = 5.0, refill: float = 6.0) -> AuthThrottle:
    return AuthThrottle(bucket=TokenBucket(capacity, refill, fake.clock), sleep=fake.sleep, store=MemoryStore())


def test_each_reconnect_sends_one_boot_id_and_one_login_and_nothing_else_unauthenticated(host, session_for):
    session = session_for(host)
    assert session.call("core.ping") == "pong"
    for _ in range(3):
        host.drop_connections()
        assert session.call("core.ping") == "pong"
    seen = host.counters
    assert seen.logins_ok == 4 and seen.connections == 4
    assert seen.calls_by_method["system.boot_id"] == 4 and seen.calls_by_method["auth.login_ex"] == 4
    assert seen.unauthenticated_calls == 8, "per connect: system.boot_id and the login, nothing more"


def test_a_spent_budget_opens_no_connection_and_sends_no_unauthenticated_call(host, session_for):
    fake = FakeTime()
    throttle = budget(fake, capacity=1, refill=60)
    session = session_for(host, throttle=throttle)
    assert session.call("core.ping") == "pong"
    host.drop_connections()
    wait_until(lambda: not session.connected)
    with pytest.raises(ThrottledError, match=r"^nas01: auth budget spent; next login allowed in 60 s \(at "):
        session.call("core.ping", timeout=5)
    assert fake.slept == [], "refused at once, not after waiting"
    assert host.counters.connections == 1 and host.counters.calls_by_method["system.boot_id"] == 1


def test_a_call_that_would_wait_longer_than_its_timeout_for_the_budget_is_throttled_at_once(host, session_for):
    fake = FakeTime()
    session = session_for(host, throttle=budget(fake, capacity=1, refill=6))
    assert session.call("core.ping") == "pong"
    host.drop_connections()
    with pytest.raises(ThrottledError) as refused:
        session.call("system.info", timeout=3)
    assert fake.slept == [] and refused.value.retry_at == pytest.approx(fake.now + 6, abs=0.1)
    assert status_of(refused.value) is Status.THROTTLED
    assert session.call("system.info", timeout=10)["hostname"] == "nas01", "a longer timeout waits"
    assert fake.slept == [pytest.approx(6, abs=0.1)]


@pytest.mark.parametrize("bound", [{"timeout": 5}, {"deadline": 5}])
def test_a_fleet_call_whose_host_would_wait_past_its_bound_for_the_budget_is_throttled_at_once(
        simulated_fleet, bound):
    sim, inventory = simulated_fleet(2, "127.6.17.1")
    fake = FakeTime()
    throttle = budget(fake, capacity=1, refill=60)  # a bucket per server: each host has its own

    def session_for(spec):
        return HostSession(spec.name, spec.uri, Credentials(spec.username, spec.password), throttle=throttle)
    with Fleet(inventory, session_factory=session_for) as fleet:
        assert not fleet.call("core.ping").failed
        sim.hosts[0].drop_connections()
        wait_until(lambda: not fleet["sim001"].connected)
        result = fleet.call("core.ping", **bound)
    assert result["sim001"].status is Status.THROTTLED and "next login allowed in 60 s" in str(result["sim001"].error)
    assert result["sim002"].ok and fake.slept == []


def test_a_wait_over_a_second_is_reported_once_at_info(host, session_for, monkeypatch):
    fake = FakeTime()
    session = session_for(host, throttle=budget(fake, capacity=1, refill=6))
    assert session.call("core.ping") == "pong"
    host.drop_connections()
    waits: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = waits.append  # type: ignore[method-assign]
    log = logging.getLogger(WAIT_LOGGER)  # its own handler: whatever a CLI run in this process set up
    monkeypatch.setattr(log, "handlers", [catcher])
    level = log.level
    log.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the logger's cached answers
    try:
        assert session.call("core.ping") == "pong"
    finally:
        log.setLevel(level)
    assert [(r.levelno, r.getMessage()) for r in waits] == [(logging.INFO, "waiting 6 s for nas01's login budget")]

def test_a_socket_that_never_opened_gives_its_token_back(make_host, session_for):
    fake = FakeTime()
    host = make_host()
    session = session_for(host, throttle=budget(fake, capacity=1, refill=60))
    host.go_offline()
    for _ in range(3):
        with pytest.raises(Exception, match="connection refused"):
            session.call("core.ping")
    host.go_online()
    assert session.call("core.ping") == "pong" and fake.slept == []


def test_a_call_on_a_connection_cut_while_idle_is_sent_once_on_a_new_connection(host, session_for):
    """The cut lands while no call is out and the client has not run since: the request must not be lost."""
    session = session_for(host)
    session.connect()
    host.drop_connections()  # no yield: the client's reader has not seen the close yet
    created = session.call("user.create", NEW_USER)
    assert created["username"] == "churn"
    assert host.counters.calls_by_method["user.create"] == 1 and host.counters.logins_ok == 2


def test_a_call_in_flight_when_the_connection_drops_fails_as_may_have_run(host, session_for):
    session = session_for(host)
    session.connect()
    host.set_stall(True, frozenset({"user.create"}))
    call = gevent.spawn(session.call, "user.create", NEW_USER)
    wait_until(lambda: session.in_flight == 1)
    host.drop_connections()
    with pytest.raises(OutcomeUnknown, match="may have run") as lost:
        call.get(timeout=10)
    assert status_of(lost.value) is Status.MAY_HAVE_RUN
    host.set_stall(False)
    assert host.counters.calls_by_method["user.create"] == 1, "not sent again"


def test_a_half_open_link_with_calls_in_flight_is_found_by_a_ping_long_before_the_keepalive(host, session_for):
    with FaultProxy((host.address, host.port)) as proxy:
        session = session_for(host, uri=proxy.uri(),
                              timeouts=Timeouts(connect=5, call=60, keepalive=50, ping=0.2, silence=0.2))
        session.connect()
        host.set_stall(True, frozenset({"system.info"}))
        call = gevent.spawn(session.call, "system.info", retry_safe=True)
        wait_until(lambda: session.in_flight == 1)
        proxy.faults.half_open = DOWN  # nothing comes back any more, not even a pong
        wait_until(lambda: session.stats.drops == 1, timeout=10)
        proxy.faults.half_open = None
        host.set_stall(False)
        assert call.get(timeout=10)["hostname"] == "nas01", "sent again on a new connection"
        assert session.stats.connects == 2


def test_a_slow_call_on_a_live_link_is_left_alone(host, session_for):
    """Pongs come back while the call is out: no drop, however long it takes."""
    session = session_for(host, timeouts=Timeouts(connect=5, call=60, keepalive=50, ping=0.5, silence=0.05))
    session.connect()
    link = session._live_link()
    host.set_stall(True, frozenset({"system.info"}))
    call = gevent.spawn(session.call, "system.info")
    wait_until(lambda: session.in_flight == 1)
    reads = link.ws.reads
    wait_until(lambda: link.ws.reads >= reads + 3)  # pongs, one per quiet spell
    host.set_stall(False)
    assert call.get(timeout=10)["hostname"] == "nas01" and session.stats.drops == 0
