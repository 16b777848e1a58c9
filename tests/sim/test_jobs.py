"""Jobs: ids, events, legacy and new-style replies, failures, abort, locks, restart."""
from __future__ import annotations

import datetime as dt

import pytest
from gevent.event import Event

from fleetclt.errors import RemoteCallError, SessionError
from fleetclt.sim.failures import CallError


def job_events(client, job_id, until=("SUCCESS", "FAILED", "ABORTED")):
    """Every core.get_jobs event of one job up to its final one (with time_finished)."""
    events = []
    while True:
        message = client.wait_for(lambda m: m.get("method") == "collection_update"
                                  and m["params"]["id"] == job_id)
        events.append(message["params"])
        fields = message["params"]["fields"]
        if fields["state"] in until and fields["time_finished"] is not None:
            return events


@pytest.fixture
def jobs_client(client):
    client.login()
    client.result("core.subscribe", "core.get_jobs")
    return client


def test_legacy_job_returns_its_id_and_emits_the_full_event_sequence(jobs_client):
    job_id = jobs_client.result("pool.dataset.lock", "tank/secure")
    assert isinstance(job_id, int)
    events = job_events(jobs_client, job_id)
    assert events[0]["msg"] == "added" and events[0]["fields"]["state"] == "WAITING"
    states = [e["fields"]["state"] for e in events[1:]]
    assert states[0] == "RUNNING" and states[-2:] == ["SUCCESS", "SUCCESS"]
    percents = [e["fields"]["progress"]["percent"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100
    final = events[-1]["fields"]
    assert final["result"] is True and "$date" in final["time_started"]
    assert final["credentials"]["type"] == "LOGIN_PASSWORD"
    assert jobs_client.result("pool.dataset.query", [["id", "=", "tank/secure"]], {"get": True})["locked"]


def test_new_style_job_reply_is_deferred_and_ids_appear_in_message_ids(jobs_client):
    jobs_client.result("core.set_options", {"legacy_jobs": False})
    call_id = jobs_client.request("service.control", "RESTART", "nfs")
    added = jobs_client.wait_for(lambda m: m.get("params", {}).get("msg") == "added")
    assert added["params"]["fields"]["message_ids"] == [call_id]
    assert jobs_client.reply(call_id)["result"] is True


def test_job_failure_plain_and_validation(jobs_client, host):
    host.faults.job_failure = "error"
    failed = job_events(jobs_client, jobs_client.result("service.control", "RESTART", "ssh"))[-1]["fields"]
    assert failed["state"] == "FAILED" and failed["error"] == "[EIO] Simulated failure of service.control"
    assert failed["exc_info"]["type"] == "CallError" and failed["exc_info"]["errno"] == 5
    assert "Traceback" in failed["exception"]
    host.faults.job_failure = "validation"
    invalid = job_events(jobs_client, jobs_client.result("service.control", "RESTART", "ssh"))[-1]["fields"]
    assert invalid["exc_info"]["type"] == "VALIDATION" and invalid["exc_info"]["errno"] is None
    assert invalid["exc_info"]["extra"] == [["service.control.options", "Simulated validation failure", 22]]


def test_new_style_failures_come_back_as_call_errors(jobs_client):
    jobs_client.result("core.set_options", {"legacy_jobs": False})
    error = jobs_client.call("pool.dataset.lock", "tank/missing")["error"]
    assert error["code"] == -32602 and error["data"]["extra"][0][2] == 2
    plain = jobs_client.call("pool.dataset.lock", "tank/home")["error"]
    assert plain["code"] == -32602 and "encrypted" in plain["data"]["extra"][0][1]


def test_abort_a_running_job(jobs_client, host):
    host.faults.job_duration = 3600
    job_id = jobs_client.result("update.run", {})
    jobs_client.wait_for(lambda m: m.get("params", {}).get("fields", {}).get("state") == "RUNNING")
    assert jobs_client.result("core.job_abort", job_id) is None
    final = job_events(jobs_client, job_id)[-1]["fields"]
    assert final["state"] == "ABORTED" and final["error"] is None and final["exc_info"] is None
    assert host.engine.running == 0


def test_get_jobs_filters_and_get(jobs_client, host):
    first = jobs_client.result("service.control", "RESTART", "nfs")
    job_events(jobs_client, first)
    second = jobs_client.result("service.control", "RESTART", "cifs")
    job_events(jobs_client, second)
    assert [j["id"] for j in jobs_client.result("core.get_jobs")] == [first, second]
    one = jobs_client.result("core.get_jobs", [["id", "=", second]], {"get": True})
    assert one["arguments"] == ["RESTART", "cifs", {}] and one["state"] == "SUCCESS"
    assert jobs_client.result("core.get_jobs", [["method", "=", "update.update"]]) == []


def test_a_lock_queues_the_second_job(jobs_client, host):
    host.faults.job_duration = 20
    first = jobs_client.result("update.run", {})
    second = jobs_client.result("update.run", {})
    assert jobs_client.result("core.get_jobs", [["id", "=", second]], {"get": True})["state"] == "WAITING"
    job_events(jobs_client, second)
    assert host.counters.peak_running_jobs == 1 and host.counters.jobs_started == 2
    assert jobs_client.result("core.get_jobs", [["id", "=", first]], {"get": True})["state"] == "SUCCESS"


def test_job_wait_mirrors_the_target(jobs_client):
    target = jobs_client.result("service.control", "RESTART", "ftp")
    waiter = jobs_client.result("core.job_wait", target)
    assert job_events(jobs_client, waiter)[-1]["fields"]["result"] is True


def test_bulk_reports_each_item(jobs_client):
    bulk = jobs_client.result("core.bulk", "service.control", [["RESTART", "nfs"], ["RESTART", "nope"]])
    result = job_events(jobs_client, bulk)[-1]["fields"]["result"]
    assert result[0]["error"] is None and result[0]["result"] is True and isinstance(result[0]["job_id"], int)
    assert result[1]["result"] is None and "does not exist" in result[1]["error"]


def test_bulk_sub_jobs_wait_for_their_lock_like_any_job(jobs_client, host):
    """service/core_service.py `bulk`: each item goes through `call_with_audit`, so a job
    method's sub-job is queued under its lock (job.py `JobsQueue`), never run beside it."""
    host.faults.job_duration = 20
    jobs_client.result("pool.dataset.lock", "tank/secure")
    bulk = jobs_client.result("core.bulk", "pool.dataset.lock", [["tank/secure"]])
    sub = jobs_client.wait_for(lambda m: m.get("method") == "collection_update"
                               and m["params"]["msg"] == "added" and m["params"]["id"] > bulk)
    assert sub["params"]["fields"]["state"] == "WAITING"
    result = job_events(jobs_client, bulk)[-1]["fields"]["result"]
    assert result[0]["error"] is None and result[0]["job_id"] == sub["params"]["id"]
    assert host.counters.peak_running_jobs == 2, "the bulk job and one lock job, never two"


def test_transient_jobs_emit_no_events(jobs_client, host):
    host.faults.transient_jobs = True
    jobs_client.result("core.set_options", {"legacy_jobs": False})
    assert jobs_client.result("service.control", "RESTART", "nfs") is True
    marker = jobs_client.request("core.ping")
    first = jobs_client.recv()
    assert first["id"] == marker, "no collection_update arrived before the ping reply"


def test_restart_resets_job_ids_and_boot_time_jobs_take_the_low_ids(make_host, client_for):
    """job.py `JobsDeque._get_next_id` counts from 1 in every middlewared process, and a booting
    middleware starts internal jobs (credentials null) at once and for a few seconds more."""
    host = make_host()
    client = client_for(host)
    client.login()
    boot_id = client.result("system.boot_id")
    assert client.result("service.control", "RESTART", "nfs") == 1
    host.restart()
    assert client.wait_closed().code == 1006, "a restart drops connections without a close frame"
    fresh = client_for(host)
    fresh.login()
    assert fresh.result("system.boot_id") != boot_id
    fresh.result("core.subscribe", "core.get_jobs")
    early = fresh.result("core.get_jobs")
    assert [(j["id"], j["method"], j["credentials"]) for j in early[:2]] == [
        (1, "pool.import_on_boot", None), (2, "disk.sync_all", None)]
    assert fresh.result("service.control", "RESTART", "nfs") > 2 and host.counters.jobs_started == 2
    if all(j["method"] != "catalog.sync" for j in early):  # a few simulated seconds after the start
        fresh.wait_for(lambda m: m.get("params", {}).get("fields", {}).get("method") == "catalog.sync")
    later = fresh.result("core.get_jobs", [["method", "=", "catalog.sync"]], {"get": True})
    assert later["credentials"] is None and later["id"] > 2


VERSIONS = ["24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2"]


@pytest.mark.parametrize("version", VERSIONS)
def test_job_times_are_naive_and_a_date_filter_fails_with_type_error(make_host, session_for, version):
    """job.py keeps `time_started` naive (`utc_now()`, `datetime.utcnow()` on 24.10); a `$date`
    filter value decodes aware, and filter_list (utils/__init__.py, utils/filter_list.py from
    25.10) orders them with operator.ge: TypeError, answered -32001 EINVAL by rpc.py (main.py's
    DDP handler on 24.10). Equality does not raise, and with no job of the method nothing is compared."""
    host = make_host(version=version)
    session = session_for(host)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    assert session.call("core.get_jobs", [["method", "=", "pool.dataset.lock"], ["time_started", ">=", since]]) == []
    job_id = session.call("pool.dataset.lock", "tank/secure")
    assert host.engine.jobs[job_id].time_started.tzinfo is None
    with pytest.raises(RemoteCallError) as failed:
        session.call("core.get_jobs", [["method", "=", "pool.dataset.lock"], ["time_started", ">=", since]])
    assert failed.value.code == -32001 and failed.value.errname == "EINVAL"
    assert failed.value.reason == "can't compare offset-naive and offset-aware datetimes"
    assert session.call("core.get_jobs", [["time_started", "=", since]]) == []
    assert [j["id"] for j in session.call("core.get_jobs", [["method", "=", "pool.dataset.lock"]])] == [job_id]


def test_get_jobs_redacts_secret_results_and_arguments_unless_raw_result(jobs_client):
    """core_service.py `get_jobs`: an external caller gets `result` redacted unless
    `options.extra.raw_result`; job.py `__encode__` shows secret arguments as "********" always,
    and events carry the raw result (`send_job_event` encodes with raw_result=True)."""
    key_job = jobs_client.result("pool.dataset.export_key", "tank/secure")
    key = job_events(jobs_client, key_job)[-1]["fields"]["result"]
    assert isinstance(key, str) and len(key) == 64
    redacted = jobs_client.result("core.get_jobs", [["id", "=", key_job]], {"get": True})
    assert redacted["result"] == "********" and redacted["state"] == "SUCCESS"
    raw = jobs_client.result("core.get_jobs", [["id", "=", key_job]], {"get": True, "extra": {"raw_result": True}})
    assert raw["result"] == key
    unlock = jobs_client.result("pool.dataset.unlock", "tank/secure",
                                {"datasets": [{"name": "tank/secure", "passphrase": "hunter2"}]})
    shown = job_events(jobs_client, unlock)[0]["fields"]["arguments"]
    assert shown == ["tank/secure", {"datasets": [{"name": "tank/secure", "passphrase": "********"}]}]


@pytest.mark.parametrize("version, code, reason, failure", [
    ("24.10.2", -32001, "99", ("KeyError", None, "99")),
    ("25.04.2", -32001, "99", ("KeyError", None, "99")),
    ("25.10.1", -32602, "[ENOENT] None: Job with id 99 does not exist", ("VALIDATION", 2, None)),
    ("26.0.0-BETA.2", -32602, "[ENOENT] None: Job with id 99 does not exist", ("VALIDATION", 2, None)),
])
def test_unknown_job_id_errors_by_version(make_host, session_for, version, code, reason, failure):
    """core_service.py `__job_by_credential_and_id`: `self.middleware.jobs[id]` raises KeyError up
    to 25.04 (a plain exception: EINVAL, its text the id, rpc.py / main.py); from 25.10 it raises
    InstanceNotFound, a ValidationError (ENOENT). core.job_wait looks the id up inside its own job,
    which fails with that exception (job.py `__encode__` exc_info)."""
    session = session_for(make_host(version=version))
    with pytest.raises(RemoteCallError) as refused:
        session.call("core.job_abort", 99)
    assert (refused.value.code, refused.value.reason) == (code, reason)
    if code == -32602:
        assert refused.value.extra == [[None, "Job with id 99 does not exist", 2]]
    waiter = session.call("core.job_wait", 99)
    with pytest.raises(SessionError):
        session.wait_job(waiter)
    job = session.call("core.get_jobs", [["id", "=", waiter]], {"get": True})
    kind, errno, error = failure
    assert (job["state"], job["exc_info"]["type"], job["exc_info"]["errno"]) == ("FAILED", kind, errno)
    if error is not None:
        assert job["error"] == error


def test_job_wait_on_an_aborted_job_succeeds_with_null(jobs_client, host):
    """job.py `wrap` -> `wait(raise_error=True)` raises only when the target has an error, and an
    aborted job has none: core.job_wait ends SUCCESS with the target's null result."""
    host.faults.job_duration = 3600
    target = jobs_client.result("service.control", "RESTART", "nfs")
    waiter = jobs_client.result("core.job_wait", target)
    jobs_client.wait_for(lambda m: m.get("params", {}).get("id") == waiter
                         and m["params"]["fields"]["state"] == "RUNNING")
    jobs_client.result("core.job_abort", target)
    final = job_events(jobs_client, waiter)[-1]["fields"]
    assert final["state"] == "SUCCESS" and final["result"] is None and final["error"] is None
    assert host.engine.jobs[target].state == "ABORTED"


def test_held_job_replies_start_the_job_but_keep_its_id(jobs_client, host):
    """A fault switch, no middlewared rule: the job runs while its caller has no reply yet, as
    when the reply is still on the wire."""
    host.hold_job_replies(True)
    call_id = jobs_client.request("service.control", "RESTART", "nfs")
    added = jobs_client.wait_for(lambda m: m.get("params", {}).get("msg") == "added")
    assert added["params"]["fields"]["method"] == "service.control" and host.counters.jobs_started == 1
    host.hold_job_replies(False)
    assert jobs_client.reply(call_id)["result"] == added["params"]["id"]


def test_update_reports_many_progress_steps(jobs_client):
    events = job_events(jobs_client, jobs_client.result("update.run", {}))
    descriptions = {e["fields"]["progress"]["description"] for e in events}
    assert len(descriptions) >= 10 and "Downloading update" in descriptions



def queue_full(client, host, dataset="tank/secure"):
    """One pool.dataset.lock runs (held) and five wait for its lock; returns their ids.

    A job on every version, locked per argument (pool.dataset.lock exists from 24.10 on)."""
    host.hold_jobs(True)
    ids = [client.result("pool.dataset.lock", dataset) for _ in range(6)]
    assert ids == list(range(ids[0], ids[0] + 6)) and host.counters.jobs_started == 6
    return ids


@pytest.mark.parametrize("version", ["25.04.2", "25.10.1", "26.0.0-BETA.2"])
def test_a_full_lock_queue_hands_back_its_newest_job(make_host, client_for, version):
    """job.py `JobsQueue.add` at TS-24.10.2, TS-25.10.6 and TS-26.0.0-BETA.2, with the default
    `lock_queue_size=5` of service/decorators.py: with five jobs waiting for the lock, a full
    admin's call gets the newest of them, whatever its own arguments; no job is added. From 25.10
    its request id joins that job's `message_ids`, announced by a `changed` event (24.10 and
    25.04 jobs have no message ids)."""
    host = make_host(version=version)
    client = client_for(host)
    client.login()
    client.result("core.subscribe", "core.get_jobs")
    ids = queue_full(client, host)
    late = client.request("pool.dataset.lock", "tank/secure", {"force_umount": True})
    assert client.reply(late)["result"] == ids[-1] and host.counters.jobs_started == 6
    if host.config.new_style_jobs:
        changed = client.wait_for(lambda m: m.get("params", {}).get("id") == ids[-1]
                                  and late in m["params"]["fields"].get("message_ids", []))
        assert changed["params"]["msg"] == "changed" and len(changed["params"]["fields"]["message_ids"]) == 2
    else:
        assert len(host.engine.jobs[ids[-1]].message_ids) == 1
    assert client.result("pool.dataset.lock", "tank/home") == ids[-1] + 1, "another lock has its own queue"


def test_a_limited_user_gets_ebusy_unless_a_queued_job_is_its_own(make_host, client_for):
    """job.py `JobsQueue.add`: a caller limited to its own jobs (utils/privilege.py
    `credential_is_limited_to_own_jobs`: a user session without FULL_ADMIN) is handed back only
    a queued job of its own username; otherwise EBUSY "already being performed by another user"."""
    host = make_host(users={"admin": "fleetclt-sim", "ops": "ops-pw"})
    host.data.users[1]["roles"] = ["SERVICE_WRITE"]
    admin, ops = client_for(host), client_for(host)
    admin.login()
    ops.login("ops", "ops-pw")
    queue_full(admin, host)
    refused = ops.call("pool.dataset.lock", "tank/secure")["error"]
    assert refused["code"] == -32001
    assert (refused["data"]["error"], refused["data"]["reason"]) == (
        16, "[EBUSY] This job is already being performed by another user")
    own = [ops.result("service.control", "RESTART", "ssh") for _ in range(6)]
    assert ops.result("service.control", "RESTART", "ssh") == own[-1], "its own newest queued job"
    assert admin.result("service.control", "RESTART", "ssh") == own[-1], "a full admin is handed anyone's"
    assert host.counters.jobs_started == 12


def test_a_lock_queue_of_size_zero_refuses_while_one_runs(host):
    """job.py `JobsQueue.add`: with `lock_queue_size=0` (26.0's catalog.sync) a call is EBUSY
    while a job holding the lock runs, and is queued as usual otherwise."""
    started = Event()

    def body(job):
        started.set()
        host.jobs_released.wait()

    host.hold_jobs(True)
    running = host.engine.submit("catalog.sync", [], body, lock="official_catalog_sync", lock_queue_size=0)
    assert started.wait(10)
    with pytest.raises(CallError, match=r"\[EBUSY\] This job is already being performed$"):
        host.engine.submit("catalog.sync", [], body, lock="official_catalog_sync", lock_queue_size=0)
    host.hold_jobs(False)
    assert running.finished.wait(10)
    after = host.engine.submit("catalog.sync", [], body, lock="official_catalog_sync", lock_queue_size=0)
    assert after.id == running.id + 1
