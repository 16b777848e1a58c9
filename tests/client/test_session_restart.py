"""A session across a middlewared restart that takes time: nginx's 502 is waited through, not final."""
from __future__ import annotations

import gevent
import pytest
from gevent.event import Event

from fleetclt.client.session import Timeouts
from fleetclt.client.throttle import Backoff
from fleetclt.errors import HandshakeError, JobUnknown
from fleetclt.sim import Faults

# Five tries span 0.05 + 0.1 + 0.2 + 0.4 s: far less than the restarts below.
BRIEF = Backoff(base=0.05, rand=lambda low, high: high)
DOWNTIME = 300.0  # simulated seconds: 3 s of real time at the fixtures' speed of 100


def job_in_background(session):
    """service.control as a job in another greenlet, once it runs."""
    running = Event()
    waiter = gevent.spawn(session.call, "service.control", "RESTART", "nfs", job=True,
                          on_progress=lambda job: job["state"] == "RUNNING" and running.set())
    assert running.wait(10)
    return waiter


def test_a_reconnect_waits_through_502_and_the_old_boots_job_ends_job_unknown(make_host, session_for):
    host = make_host(faults=Faults(job_duration=3600))
    session = session_for(host, backoff=BRIEF)
    waiter = job_in_background(session)
    old_boot = session.boot_id
    host.restart(downtime=DOWNTIME)
    with pytest.raises(JobUnknown, match="started before the middleware restarted"):
        waiter.get(timeout=30)
    assert host.counters.bad_gateway > session.timeouts.reconnect_attempts, "the 502s outlasted the tries"
    assert session.boot_id == host.boot_id != old_boot
    assert session.call("system.info")["hostname"] == "nas01"
    assert host.counters.jobs_started == 1, "nothing was sent again"


def test_a_middleware_that_stays_down_is_given_up_after_timeouts_restart(make_host, session_for):
    host = make_host()
    session = session_for(host, backoff=BRIEF, timeouts=Timeouts(connect=5, call=10, restart=1.5))
    session.connect()
    host.restart(downtime=100 * DOWNTIME)
    with pytest.raises(HandshakeError, match="HTTP 502: the web server is up") as refused:
        session.call("system.info", retry_safe=True)  # it may go out on the dying connection first
    assert refused.value.gateway and host.counters.bad_gateway > session.timeouts.reconnect_attempts


def test_a_first_connect_to_a_restarting_host_fails_at_once(make_host, session_for):
    """Nothing says that host was ever up: one try, and a reason that says what 502 means."""
    host = make_host()
    host.restart(downtime=100 * DOWNTIME)
    with pytest.raises(HandshakeError, match="middleware behind it is not") as refused:
        session_for(host).call("system.info")
    assert refused.value.status == 502 and host.counters.bad_gateway == 1
