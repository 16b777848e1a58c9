"""A job lock's full queue through fleetclt (docs/protocol.md §9).

EBUSY from the lock queue is `busy`, told apart from the rate limiter's EBUSY
(`throttled`); a handed-back job of the same call is waited for as ours, one of
other arguments is `busy` and never adopted.
"""
from __future__ import annotations

import gevent
import pytest
import yaml

from fleetclt.errors import JobBusy, RemoteCallError
from fleetclt.fleet.fleet import Fleet
from fleetclt.fleet.results import Status, status_of
from fleetclt.inventory.load import parse_inventory
from fleetclt.rollout.engine import run_rollout
from fleetclt.sim import Faults

ADMIN_PW, OPS_PW = "fleetclt-sim", "ops-pw"


@pytest.fixture
def busy_host(make_host):
    """Jobs are held: one pool.dataset.lock of tank/secure runs, five more wait for its lock once `fill` ran."""
    host = make_host(version="25.10.1", users={"admin": ADMIN_PW, "ops": OPS_PW}, faults=Faults(job_duration=2))
    host.data.users[1]["roles"] = ["SERVICE_WRITE"]  # not a full admin: limited to its own jobs
    host.hold_jobs(True)
    return host


def fill(session, host):
    refs = [session.start_job("pool.dataset.lock", "tank/secure") for _ in range(6)]
    assert [ref.id for ref in refs] == [1, 2, 3, 4, 5, 6] and host.counters.jobs_started == 6
    return refs


@pytest.fixture
def fleet_as(monkeypatch):
    fleets: list[Fleet] = []

    def make(host, username, password):
        monkeypatch.setenv("LOCK_QUEUE_PW", password)
        inventory = {"defaults": {"username": username, "password": {"env": "LOCK_QUEUE_PW"}},
                     "hosts": {host.name: {"uri": host.uri}}}
        fleets.append(Fleet(parse_inventory(yaml.safe_dump(inventory), "lock.yaml")))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.close()


def test_lock_queue_ebusy_is_busy_and_the_rate_limits_ebusy_is_throttled(busy_host, session_for, fleet_as):
    fill(session_for(busy_host), busy_host)
    busy = fleet_as(busy_host, "ops", OPS_PW).call("pool.dataset.lock", "tank/secure", job=True)["nas01"]
    assert busy.status is Status.BUSY and isinstance(busy.error, RemoteCallError)
    assert busy.error.errno == 16 and "already being performed by another user" in busy.error.reason
    assert busy_host.counters.logins_ok == 2 and busy_host.counters.jobs_started == 6
    for _ in range(20):  # spend the server's login budget for this address
        busy_host.limiter.allow("auth.login_ex", "127.0.0.1")
    limited = fleet_as(busy_host, "admin", ADMIN_PW).call("system.info")["nas01"]
    assert limited.status is Status.THROTTLED and "rate limit" in str(limited.error)
    for _ in range(20):  # and a plain call made without login (core.ping needs none from 25.10)
        busy_host.limiter.allow("core.ping", "127.0.0.1")
    with pytest.raises(RemoteCallError) as refused:
        session_for(busy_host, password=None).call("core.ping")
    assert refused.value.errno == 16 and status_of(refused.value) is Status.THROTTLED


def test_a_handed_back_job_of_the_same_call_is_waited_for_as_ours(busy_host, session_for):
    """job.py `JobsQueue.add`: the full queue answers with its newest job: the same work."""
    session = session_for(busy_host)
    refs = fill(session, busy_host)
    ours = session.start_job("pool.dataset.lock", "tank/secure")
    assert ours.id == refs[-1].id and busy_host.counters.jobs_started == 6
    assert len(busy_host.engine.jobs[ours.id].message_ids) == 2, "our request id joined it (25.10)"
    waiter = gevent.spawn(session.wait_job, ours)
    busy_host.hold_jobs(False)
    assert waiter.get(timeout=20) is True


@pytest.mark.parametrize("version", ["24.10.2", "25.10.1"])
def test_a_handed_back_job_of_other_arguments_is_busy_and_never_adopted(busy_host, make_host, session_for,
                                                                        fleet_as, version):
    host = busy_host if version == "25.10.1" else make_host(version=version, faults=Faults(job_duration=2))
    host.hold_jobs(True)
    fill(session_for(host), host)
    admin = fleet_as(host, "admin", ADMIN_PW)
    result = admin.call("pool.dataset.lock", "tank/secure", {"force_umount": True}, job=True)
    outcome = result[host.name]
    assert outcome.status is Status.BUSY and isinstance(outcome.error, JobBusy)
    assert "job 6 is pool.dataset.lock('tank/secure', {'force_umount': False})" in str(outcome.error)
    assert "queue was full" in str(outcome.error)
    assert host.counters.jobs_started == 6 and not host.engine.jobs[6].aborted, "the queued job is left alone"


def test_a_rollout_reports_the_full_lock_queue_busy(busy_host, session_for, fleet_as):
    fill(session_for(busy_host), busy_host)
    result = run_rollout(fleet_as(busy_host, "ops", OPS_PW), "pool.dataset.lock", "tank/secure", hosts="all",
                         max_fail="100%")
    record = result.hosts["nas01"]
    assert record.state.value == "busy" and "already being performed by another user" in record.error["reason"]
    assert busy_host.counters.jobs_started == 6
