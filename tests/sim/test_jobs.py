"""Jobs: ids, events, legacy and new-style replies, failures, abort, locks, restart."""
from __future__ import annotations

import pytest


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
    call_id = jobs_client.request("service.restart", "nfs")
    added = jobs_client.wait_for(lambda m: m.get("params", {}).get("msg") == "added")
    assert added["params"]["fields"]["message_ids"] == [call_id]
    assert jobs_client.reply(call_id)["result"] is True


def test_job_failure_plain_and_validation(jobs_client, host):
    host.faults.job_failure = "error"
    failed = job_events(jobs_client, jobs_client.result("service.restart", "ssh"))[-1]["fields"]
    assert failed["state"] == "FAILED" and failed["error"] == "[EIO] Simulated failure of service.restart"
    assert failed["exc_info"]["type"] == "CallError" and failed["exc_info"]["errno"] == 5
    assert "Traceback" in failed["exception"]
    host.faults.job_failure = "validation"
    invalid = job_events(jobs_client, jobs_client.result("service.restart", "ssh"))[-1]["fields"]
    assert invalid["exc_info"]["type"] == "VALIDATION" and invalid["exc_info"]["errno"] is None
    assert invalid["exc_info"]["extra"] == [["service.restart.options", "Simulated validation failure", 22]]


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
    first = jobs_client.result("service.restart", "nfs")
    job_events(jobs_client, first)
    second = jobs_client.result("service.restart", "cifs")
    job_events(jobs_client, second)
    assert [j["id"] for j in jobs_client.result("core.get_jobs")] == [first, second]
    one = jobs_client.result("core.get_jobs", [["id", "=", second]], {"get": True})
    assert one["arguments"] == ["cifs", {}] and one["state"] == "SUCCESS"
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
    target = jobs_client.result("service.restart", "ftp")
    waiter = jobs_client.result("core.job_wait", target)
    assert job_events(jobs_client, waiter)[-1]["fields"]["result"] is True


def test_bulk_reports_each_item(jobs_client):
    bulk = jobs_client.result("core.bulk", "service.restart", [["nfs"], ["nope"]])
    result = job_events(jobs_client, bulk)[-1]["fields"]["result"]
    assert result[0]["error"] is None and result[0]["result"] is True and isinstance(result[0]["job_id"], int)
    assert result[1]["result"] is None and "does not exist" in result[1]["error"]


def test_transient_jobs_emit_no_events(jobs_client, host):
    host.faults.transient_jobs = True
    jobs_client.result("core.set_options", {"legacy_jobs": False})
    assert jobs_client.result("service.restart", "nfs") is True
    marker = jobs_client.request("core.ping")
    first = jobs_client.recv()
    assert first["id"] == marker, "no collection_update arrived before the ping reply"


def test_restart_resets_job_ids_and_boot_id(make_host, client_for):
    host = make_host()
    client = client_for(host)
    client.login()
    boot_id = client.result("system.boot_id")
    assert client.result("service.restart", "nfs") == 1
    host.restart()
    assert client.wait_closed().code == 1006, "a restart drops connections without a close frame"
    fresh = client_for(host)
    fresh.login()
    assert fresh.result("system.boot_id") != boot_id
    assert fresh.result("core.get_jobs") == [] and fresh.result("service.restart", "nfs") == 1


def test_update_reports_many_progress_steps(jobs_client):
    events = job_events(jobs_client, jobs_client.result("update.run", {}))
    descriptions = {e["fields"]["progress"]["description"] for e in events}
    assert len(descriptions) >= 10 and "Downloading update" in descriptions
