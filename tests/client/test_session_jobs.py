"""Jobs through a HostSession: progress, failures, abort, drops, re-attach, restarts, storms."""
from __future__ import annotations

import gevent
import pytest
from gevent.event import Event

from fleetclt.client.session import Timeouts
from fleetclt.client.throttle import AuthThrottle, TokenBucket
from fleetclt.errors import CallTimeout, JobFailed, JobUnknown, ValidationError
from fleetclt.protocol.jobs import JobRef
from fleetclt.sim import Faults, ManualClock, SimClock
from tests.helpers import wait_until
from tests.wsclient import WsClient


@pytest.fixture
def slow_host(make_host):
    """Jobs take 200 simulated seconds: 0.2 s of real time at speed 1000."""
    return make_host(clock=SimClock(speed=1000), faults=Faults(job_duration=200))


def update_in_background(session):
    """Start update.update as a job in another greenlet; returns it and an event set once it runs."""
    running = Event()
    waiter = gevent.spawn(session.call, "update.update", {}, job=True,
                          on_progress=lambda job: job["state"] == "RUNNING" and running.set())
    assert running.wait(10)
    return waiter


def test_job_with_progress(slow_host, session_for):
    seen = []
    result = session_for(slow_host).call("update.update", {}, job=True, on_progress=seen.append)
    assert result is True
    percents = [job["progress"]["percent"] for job in seen]
    assert percents == sorted(percents) and percents[-1] == 100 and len(percents) >= 3
    assert len({job["progress"]["description"] for job in seen}) >= 3


def test_failing_jobs_raise_job_failed_or_validation_error(host, session_for):
    session = session_for(host)
    host.faults.job_failure = "error"
    with pytest.raises(JobFailed, match="Simulated failure of service.control") as failed:
        session.call("service.control", "RESTART", "nfs", job=True)
    assert failed.value.job["state"] == "FAILED"
    with pytest.raises(ValidationError) as invalid:
        session.call("pool.dataset.lock", "tank/none", job=True)
    assert invalid.value.extra == [["id", "tank/none dataset does not exist", 2]]


def test_abort_a_running_job(make_host, session_for):
    host = make_host(faults=Faults(job_duration=3600))
    session = session_for(host)
    waiter = update_in_background(session)
    job_id = session.call("core.get_jobs", [["method", "=", "update.run"]], {"get": True})["id"]
    session.abort_job(job_id)
    with pytest.raises(JobFailed, match="was aborted"):
        waiter.get(timeout=10)


def test_drop_mid_job_reattaches_without_starting_it_again(slow_host, session_for):
    session = session_for(slow_host)
    waiter = update_in_background(session)
    slow_host.drop_connections()
    assert waiter.get(timeout=20) is True
    assert slow_host.counters.jobs_started == 1
    assert session.stats.jobs_reattached == 1 and slow_host.counters.logins_ok == 2


def test_restart_mid_job_reports_job_unknown(make_host, session_for):
    host = make_host(faults=Faults(job_duration=3600))
    session = session_for(host)
    waiter = update_in_background(session)
    host.restart()
    with pytest.raises(JobUnknown, match="started before the middleware restarted"):
        waiter.get(timeout=20)
    assert session.stats.restarts_seen == 1
    assert host.counters.jobs_started == 1, "nothing was started again after the restart"


def test_a_restart_never_reattaches_the_boot_time_job_that_took_the_id(make_host, session_for):
    """The restarted host's internal jobs take ids 1, 2, ... at once and end quickly; following the
    waited job by its bare id would report one of them as the job's outcome."""
    host = make_host(faults=Faults(job_duration=3600))
    session = session_for(host)
    waiter = gevent.spawn(session.call, "service.control", "RESTART", "nfs", job=True)
    wait_until(lambda: 1 in host.engine.jobs and host.engine.jobs[1].state == "RUNNING")
    old_boot = session.boot_id
    host.restart()
    with pytest.raises(JobUnknown, match="job 1 was started before the middleware restarted"):
        waiter.get(timeout=20)
    assert session.boot_id == host.boot_id != old_boot
    assert host.engine.jobs[1].method == "pool.import_on_boot"
    assert host.counters.jobs_started == 1


def test_a_job_ref_of_another_boot_is_neither_followed_nor_aborted(make_host, session_for):
    host = make_host(faults=Faults(job_duration=3600))
    session = session_for(host)
    job = session.start_job("service.control", "RESTART", "nfs")
    assert (job.boot_id, job.id, job.method, job.arguments) == (host.boot_id, 1, "service.control", ("RESTART", "nfs"))
    host.restart()
    wait_until(lambda: 1 in host.engine.jobs)
    with pytest.raises(JobUnknown, match="not aborting"):
        session.abort_job(job)
    with pytest.raises(JobUnknown, match="another boot"):
        session.wait_job(job)
    assert host.engine.jobs[1].method == "pool.import_on_boot" and not host.engine.jobs[1].aborted


def test_a_job_found_by_id_is_adopted_only_if_it_is_the_call_that_was_sent(host, session_for):
    session = session_for(host)
    unlock = session.start_job("pool.dataset.unlock", "tank/secure",
                               {"datasets": [{"name": "tank/secure", "passphrase": "hunter2"}]})
    restart = session.call("service.control", "RESTART", "nfs")
    shown = r"job 2 is service.control\('RESTART', 'nfs', \{\}\), not the pool.dataset.unlock"
    with pytest.raises(JobUnknown, match=shown):
        session.wait_job(JobRef(unlock.boot_id, restart, unlock.method, unlock.arguments))
    fresh = session_for(host)  # knows nothing of the job but what the server lists, secrets redacted
    assert fresh.wait_job(unlock) == {"unlocked": ["tank/secure"], "failed": {}}


def test_a_missed_final_event_is_read_back_with_the_raw_result(host, session_for):
    """core.get_jobs redacts secret results unless asked for raw_result (docs/protocol.md §9)."""
    first = session_for(host)
    job = first.start_job("pool.dataset.export_key", "tank/secure")
    key = first.wait_job(job)
    assert len(key) == 64
    assert session_for(host).wait_job(job.id) == key, "a session that saw no event of the job"


def test_a_silent_job_is_waited_for_and_reported_ok(make_host, session_for):
    """Silence longer than job_idle is not a failure while the server still lists the job."""
    host = make_host(faults=Faults(job_duration=5))
    session = session_for(host, timeouts=Timeouts(call=10, job_idle=0.02))
    host.hold_jobs(True)
    waiter = gevent.spawn(session.call, "service.control", "RESTART", "nfs", job=True)
    wait_until(lambda: 1 in host.engine.jobs and host.engine.jobs[1].state == "RUNNING")
    calls = host.counters.calls
    wait_until(lambda: host.counters.calls >= calls + 3)  # three idle look-ups, still RUNNING
    assert not waiter.ready()
    host.hold_jobs(False)
    assert waiter.get(timeout=20) is True


def test_a_silent_transient_job_is_unknown_once_it_is_gone_and_bounded_by_the_job_timeout(make_host, session_for):
    host = make_host(faults=Faults(job_duration=5, transient_jobs=True))
    session = session_for(host, timeouts=Timeouts(call=10, job_idle=0.02))
    with pytest.raises(JobUnknown, match="not known to the server any more"):
        session.call("service.control", "RESTART", "nfs", job=True)
    host.hold_jobs(True)
    bounded = session_for(host, timeouts=Timeouts(call=10, job=0.3, job_idle=0.02))
    with pytest.raises(CallTimeout, match="did not end within 0.3 s"):
        bounded.call("service.control", "RESTART", "nfs", job=True)
    host.hold_jobs(False)


def test_reconnect_storm_never_trips_the_rate_limiter(make_host, session_for):
    clock = ManualClock(speed=1000)
    host = make_host(clock=clock)

    def sleep(seconds):
        clock.advance(seconds)  # the client waits on the same simulated time the server counts
        gevent.sleep(0)
    throttle = AuthThrottle(bucket=TokenBucket(clock=clock.now), max_wait=3600, sleep=sleep)
    session = session_for(host, throttle=throttle)
    for _ in range(100):
        assert session.call("core.ping", retry_safe=True) == "pong"
        host.drop_connections()
        wait_until(lambda: not session.connected)
    assert session.call("core.ping", retry_safe=True) == "pong"
    assert host.counters.logins_ok == 101 and host.counters.rate_limited == 0
    assert clock.now() >= 90 * 6, "logins past the burst were spaced by the bucket"


def test_subscriptions_come_back_after_a_drop(host, session_for):
    session = session_for(host, timeouts=Timeouts(call=10, keepalive=30))
    created = []
    arrived = Event()
    session.subscribe("user.query", lambda event: (created.append(event.fields["username"]), arrived.set()))
    session.connect()
    host.drop_connections()
    wait_until(lambda: host.counters.logins_ok == 2 and session.connected)
    raw = WsClient(host.uri)
    raw.login()
    raw.result("user.create", {"username": "after", "full_name": "A", "password": "x"})
    raw.close()
    assert arrived.wait(10) and created == ["after"]


def test_a_first_job_after_the_server_ended_the_session_logs_in_once_and_succeeds(host, session_for):
    """Its job-event subscription met ENOTAUTHENTICATED first; plain calls already recovered."""
    session = session_for(host)
    assert session.call("core.ping") == "pong"
    host.expire_sessions()
    assert session.call("service.control", "RESTART", "nfs", job=True) is True
    assert host.counters.logins_ok == 2 and session.stats.logins == 2


def test_a_later_job_after_the_server_ended_the_session_logs_in_once_and_succeeds(host, session_for):
    session = session_for(host)
    assert session.call("service.control", "RESTART", "nfs", job=True) is True
    host.expire_sessions()
    assert session.call("service.control", "RESTART", "nfs", job=True) is True
    assert host.counters.logins_ok == 2 and host.counters.jobs_started == 2


def test_a_job_waited_for_while_the_server_ends_the_session_is_found_after_one_login(make_host, session_for):
    """No job events reach a connection whose login ended; the idle look-up logs in again."""
    host = make_host(clock=SimClock(speed=100), faults=Faults(job_duration=20))  # 0.2 s
    session = session_for(host, timeouts=Timeouts(call=10, job_idle=1.0))
    waiter = gevent.spawn(session.call, "service.control", "RESTART", "nfs", job=True)
    wait_until(lambda: host.counters.jobs_started == 1)
    host.expire_sessions()
    assert waiter.get(timeout=10) is True
    assert host.counters.logins_ok == 2 and host.counters.jobs_started == 1


def test_jobs_over_the_legacy_dialect(make_host, session_for):
    old = make_host(version="24.10.2", clock=SimClock(speed=1000), faults=Faults(job_duration=50))
    session = session_for(old)
    seen = []
    assert session.call("pool.dataset.lock", "tank/secure", job=True, on_progress=seen.append) is True
    assert session.dialect == "ddp" and seen[-1]["state"] == "SUCCESS"
    old.faults.job_failure = "validation"
    with pytest.raises(ValidationError, match="Simulated validation failure"):
        session.call("pool.dataset.unlock", "tank/secure", job=True)


def subscribed(host):
    """The events each open connection of the host is subscribed to."""
    return [sorted(conn.subscriptions.values()) for conn in host.connections]


def test_job_events_are_subscribed_from_the_first_job_on(slow_host, session_for):
    """Plain calls connect with the login and the boot id only; the first job adds the subscription."""
    session = session_for(slow_host)
    assert session.call("core.ping") == "pong" and session.boot_id == slow_host.boot_id
    assert subscribed(slow_host) == [[]]
    seen = []
    assert session.call("update.update", {}, job=True, on_progress=seen.append) is True
    assert subscribed(slow_host) == [["core.get_jobs"]] and seen[-1]["progress"]["percent"] == 100
    session.call("service.control", "RESTART", "nfs", job=True)
    assert subscribed(slow_host) == [["core.get_jobs"]], "subscribed once per connection"
    slow_host.drop_connections()
    wait_until(lambda: not session.connected)
    assert session.call("core.ping") == "pong"
    assert subscribed(slow_host) == [["core.get_jobs"]], "a session that follows jobs subscribes on reconnect"


def test_a_job_event_subscriber_turns_job_events_on(host, session_for):
    session = session_for(host)
    session.call("core.ping")
    started = []
    session.subscribe("core.get_jobs", lambda event: started.append(event.fields.get("method")))
    assert subscribed(host) == [["core.get_jobs"]]
    job_id = session.call("service.control", "RESTART", "nfs")
    assert session.wait_job(job_id) is True
    wait_until(lambda: "service.control" in started)
