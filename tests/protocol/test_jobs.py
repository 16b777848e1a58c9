"""Job bookkeeping from core.get_jobs events: merged state, outcomes, bounded memory."""
from __future__ import annotations

import pytest

from fleetclt.errors import JobFailed, ProtocolError, ValidationError
from fleetclt.protocol.jobs import JOB_EVENT, JobRef, JobTracker, is_terminal, job_outcome, same_call
from fleetclt.protocol.jsonrpc import (
    CollectionUpdate,
    JsonRpcDialect,
)
from tests.protocol.support import HOST, JOB_ADDED, feed, job_changed, one, rpc


def test_job_updates_merge_and_success_returns_result():
    tracker = JobTracker(HOST)
    tracker.watch(101)
    jobs = feed(tracker, JOB_ADDED, job_changed('"state":"RUNNING"'),
                job_changed('"progress":{"percent":50,"description":"Copied 1000000 of 2000000 '
                            'bytes","extra":null}'),
                job_changed('"state":"SUCCESS","result":true,"progress":{"percent":100,'
                            '"description":"done","extra":null}'))
    assert [job["state"] for job in jobs] == ["WAITING", "RUNNING", "RUNNING", "SUCCESS"]
    assert jobs[2]["progress"]["percent"] == 50 and jobs[2]["method"] == "pool.dataset.lock"
    assert not is_terminal(jobs[1]) and is_terminal(jobs[3])
    assert tracker.consume(101) is True
    assert tracker.get(101) is None and len(tracker) == 0


def test_job_validation_failure_raises_validation_error():
    tracker = JobTracker(HOST)
    feed(tracker, JOB_ADDED, job_changed(
        '"state":"FAILED","error":"[EINVAL] options.name: Field required\\n","exception":'
        '"Traceback ...","exc_info":{"repr":"ValidationErrors()","type":"VALIDATION","errno":null,'
        '"extra":[["options.name","Field required",22]]}'))
    with pytest.raises(ValidationError) as info:
        tracker.consume(101)
    err = info.value
    assert err.extra == [["options.name", "Field required", 22]] and err.code == -32602
    assert err.reason == "[EINVAL] options.name: Field required\n" and err.host == HOST
    assert err.trace["formatted"] == "Traceback ..."


def test_job_plain_failure_raises_job_failed_with_the_job():
    tracker = JobTracker(HOST)
    feed(tracker, JOB_ADDED, job_changed(
        '"state":"FAILED","error":"[EFAULT] disk on fire","exception":"Traceback ...",'
        '"exc_info":{"repr":"CallError()","type":"CallError","errno":14,"extra":null}'))
    with pytest.raises(JobFailed, match=r"job 101 \(pool.dataset.lock\) failed: \[EFAULT\] disk"):
        tracker.consume(101)


def test_aborted_job_raises_job_failed():
    job = {"id": 7, "method": "m", "state": "ABORTED", "error": None, "exc_info": None}
    with pytest.raises(JobFailed, match="was aborted") as info:
        job_outcome(job, HOST)
    assert info.value.job is job and info.value.host == HOST


def test_consume_refuses_unfinished_and_unknown_jobs():
    tracker = JobTracker(HOST)
    tracker.watch(101)
    with pytest.raises(ValueError):
        tracker.consume(101)
    feed(tracker, JOB_ADDED)
    with pytest.raises(ValueError):
        tracker.consume(101)
    assert tracker.get(101)["state"] == "WAITING"
    with pytest.raises(KeyError):
        tracker.consume(555)


def test_events_before_watch_are_kept_for_legacy_job_ids():
    tracker = JobTracker(HOST)
    feed(tracker, JOB_ADDED, job_changed('"state":"RUNNING"'),
         job_changed('"state":"SUCCESS","result":"job-done"'))
    assert is_terminal(tracker.watch(101))
    assert tracker.consume(101) == "job-done"


def test_unrelated_jobs_do_not_grow_memory_but_watched_ones_stay():
    tracker = JobTracker(HOST, recent=8)
    tracker.watch(5)
    for job_id in range(1000, 2000):
        feed(tracker, job_changed(f'"message_ids":["other-{job_id}"],"state":"RUNNING"', job_id))
    feed(tracker, job_changed('"state":"SUCCESS","result":5', 5))
    assert len(tracker) == 9 and tracker.get(1000) is None
    assert tracker.get(1999)["state"] == "RUNNING"
    assert tracker.consume(5) == 5


def test_forget_and_removed_drop_jobs():
    tracker = JobTracker(HOST)
    feed(tracker, JOB_ADDED, job_changed('"state":"RUNNING"', 102))
    tracker.watch(101)
    tracker.forget(101)
    removed = tracker.feed(one(rpc(), '{"jsonrpc":"2.0","method":"collection_update","params":'
                                      '{"msg":"removed","collection":"core.get_jobs","id":102}}'))
    assert removed is None and len(tracker) == 0


def test_tracker_ignores_other_collections_and_rejects_bad_job_ids():
    tracker = JobTracker(HOST)
    assert tracker.feed(CollectionUpdate("added", "alert.list", 1, {"id": 1})) is None
    with pytest.raises(ProtocolError):
        tracker.feed(CollectionUpdate("changed", JOB_EVENT, "101", {"state": "RUNNING"}))
    for fields in ({"state": []}, {"message_ids": "c-1"}, {"error": 5}, {"exc_info": [1]}):
        with pytest.raises(ProtocolError):
            tracker.feed(CollectionUpdate("changed", JOB_EVENT, 101, fields))
    assert len(tracker) == 0


def test_captured_new_style_job_flow():
    """Section 19: call() learns job 101 from message_ids; the late reply carries the result."""
    dialect, tracker = JsonRpcDialect(HOST, id_prefix="f50e"), JobTracker(HOST)
    call_id, _ = dialect.request("test.job", [])
    frames = [
        '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"added","collection":'
        f'"core.get_jobs","id":101,"fields":{{"id":101,"message_ids":["{call_id}"],'
        '"method":"test.job","state":"WAITING"}}}',
        job_changed('"state":"RUNNING"'),
        job_changed('"progress":{"percent":50,"description":"half","extra":null}'),
        job_changed('"state":"SUCCESS","result":"job-done"'),
        f'{{"jsonrpc":"2.0","id":"{call_id}","result":"job-done"}}',
    ]
    events = [one(dialect, f) for f in frames]
    for event in events[:4]:
        tracker.feed(event)
    assert tracker.consume(101) == "job-done" == events[4].result and events[4].id == call_id


def test_same_call_allows_defaults_and_redacted_secrets():
    """The server shows a job's arguments with defaults filled in and secrets as "********"."""
    shown = {"method": "pool.dataset.unlock", "arguments": [
        "tank/secure", {"datasets": [{"name": "tank/secure", "passphrase": "********"}], "recursive": False}]}
    sent = ["tank/secure", {"datasets": [{"name": "tank/secure", "passphrase": "hunter2"}]}]
    assert same_call(shown, "pool.dataset.unlock", sent)
    assert same_call(shown, "pool.dataset.unlock", ["tank/secure"])
    assert not same_call(shown, "pool.dataset.lock", sent)
    assert not same_call(shown, "pool.dataset.unlock", ["tank/other", {}])
    assert not same_call(shown, "pool.dataset.unlock", ["tank/secure", {"recursive": True}])
    assert not same_call(shown, "pool.dataset.unlock", ["tank/secure", {}, {"extra": 1}])


def test_a_job_ref_names_the_other_call_it_was_given():
    ref = JobRef("boot-1", 1, "update.update", ({},))
    assert ref.mismatch({"id": 1, "method": "update.update", "arguments": [{"reboot": False}]}) is None
    assert ref.mismatch({"id": 1, "state": "RUNNING"}) is None, "no method seen yet: nothing to tell"
    other = ref.mismatch({"id": 1, "method": "pool.import_on_boot", "arguments": []})
    assert other == "job 1 is pool.import_on_boot(), not the update.update that was submitted"
    assert JobRef("boot-1", 1).mismatch({"method": "anything"}) is None
