"""Protocol layer tests: literal frames in, events and frames out (no sockets, no sleeps).

Frames are copied from ../shared/docs/truenas-protocol.md (sections 2, 3, 8, 9, 12, 19),
with the ids the doc shortens ("ebca…") kept as literal strings.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetclt.errors import JobFailed, ProtocolError, RemoteCallError, ValidationError
from fleetclt.protocol.ddp import DdpDialect
from fleetclt.protocol.jobs import JOB_EVENT, JobTracker, is_terminal, job_outcome
from fleetclt.protocol.jsonrpc import (
    CollectionUpdate,
    Connected,
    ConnectionFailure,
    ErrorReply,
    HandshakeFailed,
    JsonRpcDialect,
    NotifyUnsubscribed,
    Pong,
    Reply,
    is_method_missing,
    is_not_authenticated,
    is_rate_limited,
)

HOST = "nas1"


def rpc() -> JsonRpcDialect:
    return JsonRpcDialect(HOST, id_prefix="c-")


def ddp() -> DdpDialect:
    return DdpDialect(HOST, id_prefix="d-")


def one(dialect: JsonRpcDialect | DdpDialect, frame: str | bytes):
    events = dialect.receive(frame)
    assert len(events) == 1
    return events[0]


# ----------------------------------------------------------------- request framing

def test_request_frame_is_jsonrpc_with_positional_params():
    call_id, frame = rpc().request("system.info", [])
    assert call_id == "c-1"
    assert orjson.loads(frame) == {"jsonrpc": "2.0", "id": "c-1", "method": "system.info",
                                   "params": []}


def test_request_ids_are_unique_per_connection_and_across_connections():
    dialect = rpc()
    ids = [dialect.request("core.ping", [])[0] for _ in range(1000)]
    assert len(set(ids)) == 1000
    # Job events reach every connection: two connections must not share ids.
    first, second = JsonRpcDialect(), JsonRpcDialect()
    assert first.request("core.ping", [])[0] != second.request("core.ping", [])[0]


def test_request_params_are_ejson_encoded():
    when = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
    _, frame = rpc().request("x.y", [when, {1}, dt.date(2024, 1, 2)])
    assert orjson.loads(frame)["params"] == [
        {"$date": 1700000000000}, {"$set": [1]}, {"$type": "date", "$value": "2024-01-02"}]


def test_jsonrpc_handshake_ping_notification_and_subscriptions():
    dialect = rpc()
    assert dialect.handshake() == []
    assert dialect.ping() is None
    assert orjson.loads(dialect.notification("core.ping", [])) == {
        "jsonrpc": "2.0", "method": "core.ping", "params": []}
    sub_id, frame = dialect.subscribe("core.get_jobs")
    assert orjson.loads(frame) == {"jsonrpc": "2.0", "id": sub_id, "method": "core.subscribe",
                                   "params": ["core.get_jobs"]}


# ------------------------------------------------------------------------- replies

def test_out_of_order_replies_keep_their_ids():
    dialect = rpc()
    frames = [
        '{"jsonrpc":"2.0","id":"9a4b…","result":"pong"}',
        '{"jsonrpc":"2.0","id":"4f78…","result":"a7dd8f47-…"}',
        '{"jsonrpc":"2.0","id":3,"result":null}',
        b'{"jsonrpc":"2.0","id":"3c88\xe2\x80\xa6","result":{"legacy_jobs":false}}',
    ]
    events = [one(dialect, f) for f in frames]
    assert events == [Reply("9a4b…", "pong"), Reply("4f78…", "a7dd8f47-…"), Reply(3, None),
                      Reply("3c88…", {"legacy_jobs": False})]


def test_reply_to_own_request_matches_by_id():
    dialect = rpc()
    first, _ = dialect.request("a", [])
    second, _ = dialect.request("b", [])
    later = one(dialect, f'{{"jsonrpc":"2.0","id":"{second}","result":2}}')
    earlier = one(dialect, f'{{"jsonrpc":"2.0","id":"{first}","result":1}}')
    assert {later.id: later.result, earlier.id: earlier.result} == {first: 1, second: 2}


def test_ejson_values_are_decoded_in_results():
    event = one(rpc(), '{"jsonrpc":"2.0","id":"ebca…","result":{'
                       '"datetime":{"$date":1700000000000},"s":{"$set":[1,2]},'
                       '"t":{"$time":"12:30:00"},'
                       '"d":{"$type":"date","$value":"2024-02-29"}}}')
    assert event.result == {
        "datetime": dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc),
        "s": {1, 2}, "t": dt.time(12, 30), "d": dt.date(2024, 2, 29)}


# -------------------------------------------------------------------------- errors

NOT_AUTHENTICATED = (
    '{"jsonrpc":"2.0","id":"ba05…","error":{"code":-32001,"message":"Method call error","data":{'
    '"error":207,"errname":"ENOTAUTHENTICATED","reason":"[ENOTAUTHENTICATED] Not authenticated",'
    '"trace":{"class":"CallError","formatted":"Traceback (most recent call last):\\n ...",'
    '"repr":"CallError(\'Not authenticated\', 207, None)"},"extra":null}}}')


def test_call_error_keeps_every_data_field():
    event = one(rpc(), NOT_AUTHENTICATED)
    assert isinstance(event, ErrorReply) and event.id == "ba05…"
    err = event.error
    assert type(err) is RemoteCallError
    assert (err.code, err.errno, err.errname) == (-32001, 207, "ENOTAUTHENTICATED")
    assert err.reason == "[ENOTAUTHENTICATED] Not authenticated"
    assert err.trace["class"] == "CallError" and err.extra is None
    assert err.host == HOST and str(err) == "nas1: [ENOTAUTHENTICATED] Not authenticated"
    assert is_not_authenticated(err) and not is_rate_limited(err)


@pytest.mark.parametrize("code, message", [
    (-32601, "Method does not exist"),
    (-32000, "Maximum number of concurrent calls (20) has exceeded"),
    (-32600, "Missing 'jsonrpc' member"),
])
def test_codes_without_data_keep_code_and_message(code, message):
    event = one(rpc(), f'{{"jsonrpc":"2.0","id":"x1","error":{{"code":{code},'
                       f'"message":"{message}"}}}}')
    assert isinstance(event, ErrorReply)
    assert (event.error.code, event.error.errno, event.error.reason) == (code, None, None)
    assert str(event.error) == f"nas1: {message}"
    assert is_method_missing(event.error) == (code == -32601)


def test_internal_error_keeps_data():
    event = one(rpc(), '{"jsonrpc":"2.0","id":"x2","error":{"code":-32603,"message":'
                       '"Failed to JSON serialize server message","data":{"error":14,'
                       '"errname":"EFAULT","reason":"[EFAULT] cannot serialize","trace":null,'
                       '"extra":null}}}')
    assert (event.error.code, event.error.errno, event.error.errname) == (-32603, 14, "EFAULT")


def test_invalid_params_becomes_validation_error_with_triples():
    event = one(rpc(), '{"jsonrpc":"2.0","id":"…","error":{"code":-32602,"message":'
                       '"Invalid params","data":{"error":22,"errname":"EINVAL","reason":'
                       '"[ENOENT] None: Job with id 999 does not exist","trace":{},"extra":'
                       '[[null,"Job with id 999 does not exist",2]]}}}')
    err = event.error
    assert isinstance(err, ValidationError)
    assert (err.code, err.errno, err.errname) == (-32602, 22, "EINVAL")
    assert err.reason == "[ENOENT] None: Job with id 999 does not exist"
    assert err.extra == [[None, "Job with id 999 does not exist", 2]]


def test_validation_errors_reason_lines_are_kept_and_message_trimmed():
    event = one(rpc(), '{"jsonrpc":"2.0","id":"5860…","error":{"code":-32602,"message":'
                       '"Invalid params","data":{"error":22,"errname":"EINVAL","reason":'
                       '"[EINVAL] login_data.PASSWORD_PLAIN.password: Field required\\n",'
                       '"trace":null,"extra":[["login_data.PASSWORD_PLAIN.password",'
                       '"Field required",22]]}}}')
    assert event.error.reason.endswith("Field required\n")
    assert str(event.error).endswith("Field required")
    assert event.error.extra[0] == ["login_data.PASSWORD_PLAIN.password", "Field required", 22]


def test_invalid_params_without_data_is_still_a_validation_error():
    event = one(rpc(), '{"jsonrpc":"2.0","id":1,"error":{"code":-32602,'
                       '"message":"Invalid params"}}')
    assert isinstance(event.error, ValidationError) and event.error.extra is None


@pytest.mark.parametrize("reason, limited", [
    ("[EBUSY] Rate Limit Exceeded", True),
    ("[EBUSY] This job is already being performed", False),
])
def test_rate_limit_is_ebusy_with_its_text(reason, limited):
    event = one(rpc(), '{"jsonrpc":"2.0","id":"l1","error":{"code":-32001,"message":"Method call '
                       f'error","data":{{"error":16,"errname":"EBUSY","reason":"{reason}",'
                       '"trace":null,"extra":null}}}')
    assert is_rate_limited(event.error) is limited


def test_enomethod_counts_as_missing_method():
    event = one(rpc(), '{"jsonrpc":"2.0","id":"m","error":{"code":-32001,"message":"Method call '
                       'error","data":{"error":201,"errname":"ENOMETHOD","reason":"[ENOMETHOD] '
                       'Method \\"auth.login_ex\\" not found","trace":null,"extra":null}}}')
    assert is_method_missing(event.error) and not is_not_authenticated(event.error)


def test_predicates_reject_other_exceptions():
    for predicate in (is_rate_limited, is_not_authenticated, is_method_missing):
        assert predicate(ValueError("[EBUSY] Rate Limit Exceeded")) is False


@pytest.mark.parametrize("frame", [
    '{"jsonrpc":"2.0","error":{"code":-32700,"message":"unexpected character"},"id":null}',
    '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Batch messages are not supported at this '
    'time"},"id":null}',
    '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Invalid Message Format"}}',
])
def test_error_with_null_id_is_a_connection_failure(frame):
    event = one(rpc(), frame)
    assert isinstance(event, ConnectionFailure)
    assert event.error.code == -32700 and event.error.host == HOST


# ------------------------------------------------------------------- notifications

def test_collection_update_for_a_job_decodes_ejson_fields():
    event = one(rpc(), '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"added",'
                       '"collection":"core.get_jobs","id":101,"fields":{"id":101,"message_ids":'
                       '["6841f242-…"],"state":"WAITING",'
                       '"time_started":{"$date":1756000000000}}}}')
    assert event == CollectionUpdate(
        "added", "core.get_jobs", 101,
        {"id": 101, "message_ids": ["6841f242-…"], "state": "WAITING",
         "time_started": dt.datetime(2025, 8, 24, 1, 46, 40, tzinfo=dt.timezone.utc)}, {})


def test_removed_update_has_no_fields_but_keeps_extra():
    event = one(rpc(), '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"removed",'
                       '"collection":"alert.list","id":"a1","extra":{"cleared":true}}}')
    assert event == CollectionUpdate("removed", "alert.list", "a1", {}, {"cleared": True})


def test_notify_unsubscribed_with_null_error():
    event = one(rpc(), '{"jsonrpc":"2.0","method":"notify_unsubscribed","params":'
                       '{"collection":"reporting.realtime","error":null}}')
    assert event == NotifyUnsubscribed("reporting.realtime", None)


def test_notify_unsubscribed_with_an_error():
    event = one(rpc(), '{"jsonrpc":"2.0","method":"notify_unsubscribed","params":{"collection":'
                       '"filesystem.file_tail_follow:{\\"path\\":\\"/x\\"}","error":{"error":2,'
                       '"errname":"ENOENT","reason":"[ENOENT] /x does not exist","trace":null,'
                       '"extra":null}}}')
    assert event.collection == 'filesystem.file_tail_follow:{"path":"/x"}'
    assert (event.error.errno, event.error.reason) == (2, "[ENOENT] /x does not exist")
    assert event.error.host == HOST


# ---------------------------------------------------------------------- bad input

@pytest.mark.parametrize("frame", [
    "", "not json", b"\xff\xfe", "[]", '[{"jsonrpc":"2.0","id":1,"result":1}]', "42", '"text"',
    "null", "{}", '{"jsonrpc":"1.0","id":1,"result":1}', '{"id":1,"result":1}',
    '{"jsonrpc":"2.0","id":1}',
    '{"jsonrpc":"2.0","result":1}',
    '{"jsonrpc":"2.0","id":{"a":1},"result":1}',
    '{"jsonrpc":"2.0","id":1.5,"result":1}',
    '{"jsonrpc":"2.0","id":true,"result":1}',
    '{"jsonrpc":"2.0","id":1,"error":"boom"}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"m","data":[1]}}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"m","data":{"error":"EBUSY"}}}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":7}}',
    '{"jsonrpc":"2.0","method":"something_new","params":{}}',
    '{"jsonrpc":"2.0","method":"collection_update","params":[]}',
    '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"CHANGED","collection":"x"}}',
    '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"added"}}',
    '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":[],"collection":"x"}}',
    '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"added","collection":"x",'
    '"fields":[1]}}',
    '{"jsonrpc":"2.0","method":"notify_unsubscribed","params":{"error":null}}',
    '{"jsonrpc":"2.0","method":"notify_unsubscribed","params":{"collection":"x","error":"gone"}}',
    '{"jsonrpc":"2.0","id":1,"result":{"$date":"yesterday"}}',
    '{"jsonrpc":"2.0","id":1,"result":{"$set":{"a":1}}}',
    '{"jsonrpc":"2.0","id":1,"result":{"$time":"25:99"}}',
    '{"jsonrpc":"2.0","id":1,"result":{"$type":"date","$value":"2024-13-45"}}',
])
def test_malformed_input_raises_protocol_error_with_host(frame):
    with pytest.raises(ProtocolError) as info:
        rpc().receive(frame)
    assert info.value.host == HOST


# --------------------------------------------------------------------------- jobs

JOB_ADDED = (
    '{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"added","collection":'
    '"core.get_jobs","id":101,"fields":{"id":101,"message_ids":["6841f242-840a-11e6-a437-'
    '00e04d680384"],"method":"pool.dataset.lock","arguments":["tank/ds",{}],"transient":false,'
    '"description":null,"abortable":false,"logs_path":null,"logs_excerpt":null,"progress":'
    '{"percent":0,"description":"","extra":null},"result":null,"result_encoding_error":null,'
    '"error":null,"exception":null,"exc_info":null,"state":"WAITING","time_started":'
    '{"$date":1756000000000},"time_finished":null,"credentials":null}}}')


def job_changed(fields: str, job_id: int = 101) -> str:
    return ('{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"changed",'
            f'"collection":"core.get_jobs","id":{job_id},"fields":{{"id":{job_id},{fields}}}}}}}')


def feed(tracker: JobTracker, *frames: str):
    """Feed frames; return a copy of the merged job after each (feed returns the live dict)."""
    dialect = rpc()
    return [dict(tracker.feed(one(dialect, frame)) or {}) for frame in frames]


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


# ----------------------------------------------------------------------- legacy DDP

def test_ddp_handshake_and_frames():
    dialect = ddp()
    assert [orjson.loads(f) for f in dialect.handshake()] == [
        {"msg": "connect", "version": "1", "support": ["1"], "features": []}]
    call_id, frame = dialect.request("system.info", [])
    assert orjson.loads(frame) == {"msg": "method", "id": call_id, "method": "system.info",
                                   "params": []}
    sub_id, frame = dialect.subscribe("core.get_jobs")
    assert orjson.loads(frame) == {"msg": "sub", "id": sub_id, "name": "core.get_jobs"}
    ping_id, frame = dialect.ping()
    assert orjson.loads(frame) == {"msg": "ping", "id": ping_id}
    assert orjson.loads(dialect.notification("core.ping", []))["msg"] == "method"
    assert len({call_id, sub_id, ping_id}) == 3


@pytest.mark.parametrize("frame, event", [
    ('{"msg":"connected","session":"0b8c-uuid"}', Connected("0b8c-uuid")),
    ('{"msg":"failed","version":"1"}', HandshakeFailed("1")),
    ('{"msg":"result","id":"d-1","result":{"version":"TrueNAS-SCALE-24.10.2"}}',
     Reply("d-1", {"version": "TrueNAS-SCALE-24.10.2"})),
    ('{"id":"d-2","msg":"result","result":null}', Reply("d-2", None)),
    ('{"msg":"ready","subs":["d-3"]}', Reply("d-3", "d-3")),
    ('{"msg":"pong","id":"d-4"}', Pong("d-4")),
    ('{"msg":"nosub","collection":"reporting.realtime"}',
     NotifyUnsubscribed("reporting.realtime", None)),
    ('{"msg":"added","collection":"core.get_jobs","id":5,"fields":{"id":5,"state":"WAITING"}}',
     CollectionUpdate("added", "core.get_jobs", 5, {"id": 5, "state": "WAITING"})),
    ('{"msg":"changed","collection":"core.get_jobs","id":5,"fields":{"state":"RUNNING"}}',
     CollectionUpdate("changed", "core.get_jobs", 5, {"state": "RUNNING"})),
    ('{"msg":"removed","collection":"alert.list","id":"x","extra":{"cleared":true}}',
     CollectionUpdate("removed", "alert.list", "x", {}, {"cleared": True})),
])
def test_ddp_messages_become_events(frame, event):
    assert ddp().receive(frame) == [event]


def test_ddp_ready_for_several_subscriptions():
    assert ddp().receive('{"msg":"ready","subs":["a","b"]}') == [Reply("a", "a"), Reply("b", "b")]


def ddp_error(errno: int, errname: str, reason: str, etype: str = "null", extra: str = "null"):
    return (f'{{"msg":"result","id":"d-9","error":{{"error":{errno},"errname":"{errname}",'
            f'"type":{etype},"reason":"{reason}","trace":null,"extra":{extra}}}}}')


def test_ddp_error_keeps_fields():
    event = one(ddp(), ddp_error(207, "ENOTAUTHENTICATED", "[ENOTAUTHENTICATED] Not authenticated"))
    assert isinstance(event, ErrorReply) and event.id == "d-9"
    assert (event.error.errno, event.error.errname, event.error.code) == (207, "ENOTAUTHENTICATED",
                                                                          -32001)
    assert is_not_authenticated(event.error) and event.error.host == HOST


def test_ddp_validation_error_has_triples():
    event = one(ddp(), ddp_error(11, "EAGAIN", "[EINVAL] pool.name: required\\n", '"VALIDATION"',
                                 '[["pool.name","required",22]]'))
    assert isinstance(event.error, ValidationError) and event.error.code == -32602
    assert event.error.errno == 11 and event.error.extra == [["pool.name", "required", 22]]


@pytest.mark.parametrize("errno, errname, reason, predicate", [
    (16, "EBUSY", "[EBUSY] Rate Limit Exceeded", is_rate_limited),
    (201, "ENOMETHOD", "[ENOMETHOD] Method not found", is_method_missing),
])
def test_ddp_error_predicates(errno, errname, reason, predicate):
    assert predicate(one(ddp(), ddp_error(errno, errname, reason)).error)


def test_ddp_refused_subscription_is_an_error_reply():
    event = one(ddp(), ddp_error(13, "EACCES", "[EACCES] Not authorized"))
    assert isinstance(event, ErrorReply) and event.error.errname == "EACCES"


def test_ddp_nosub_with_error():
    event = one(ddp(), '{"msg":"nosub","collection":"reporting.realtime","error":{"error":11,'
                       '"errname":"EAGAIN","type":"VALIDATION","reason":"[EINVAL] bad arg",'
                       '"trace":null,"extra":[["x","bad arg",22]]}}')
    assert isinstance(event.error, ValidationError) and event.error.extra == [["x", "bad arg", 22]]


@pytest.mark.parametrize("frame", [
    '{"jsonrpc":"2.0","id":1,"result":1}', '{"msg":"ping","id":"x"}', '{"msg":7}', "[]",
    '{"msg":"result","id":"d-1"}', '{"msg":"result","result":1}', '{"msg":"connected"}',
    '{"msg":"ready","subs":"d-1"}', '{"msg":"ready","subs":[[1]]}', '{"msg":"pong"}',
    '{"msg":"nosub"}', '{"msg":"added","collection":3}', "{{",
    '{"msg":"result","id":"d-1","error":{"error":"x"}}',
])
def test_ddp_malformed_input_raises_protocol_error(frame):
    with pytest.raises(ProtocolError) as info:
        ddp().receive(frame)
    assert info.value.host == HOST


# --------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20,
)
tagged = st.one_of(
    st.builds(lambda v: {"$date": v}, json_values), st.builds(lambda v: {"$set": v}, json_values),
    st.builds(lambda v: {"$time": v}, json_values),
    st.builds(lambda v: {"$type": "date", "$value": v}, json_values),
)
values = st.one_of(json_values, tagged)
ids = st.integers(-3, 3) | st.text(max_size=4)


def mutate(msg: dict, key: str, value, drop: bool) -> dict:
    """Break one field of a well-formed object, or drop it."""
    broken = dict(msg)
    if drop:
        broken.pop(key, None)
    else:
        broken[key] = value
    return broken


def broken(base: st.SearchStrategy, *keys: str) -> st.SearchStrategy:
    """Objects from ``base``, some with one of ``keys`` replaced by any value or dropped."""
    return base | st.builds(mutate, base, st.sampled_from(keys), values, st.booleans())


truenas_errors = broken(st.fixed_dictionaries({
    "error": st.none() | st.integers(0, 300), "errname": st.none() | st.text(max_size=6),
    "reason": st.none() | st.text(max_size=30), "trace": values, "extra": values,
    "type": st.sampled_from([None, "VALIDATION"])}), "error", "errname", "reason", "type")
job_states = st.sampled_from(["WAITING", "RUNNING", "SUCCESS", "FAILED", "ABORTED"])
exc_infos = st.fixed_dictionaries({
    "type": st.sampled_from(["VALIDATION", "CallError"]) | json_values,
    "errno": json_values, "extra": json_values, "repr": json_values})
job_fields = st.fixed_dictionaries({}, optional={
    "id": st.integers(0, 3) | json_values,
    "message_ids": st.lists(ids | json_values, max_size=3) | json_values,
    "state": job_states | json_values, "result": json_values,
    "error": st.text(max_size=20) | json_values, "exception": json_values,
    "exc_info": exc_infos | json_values,
})
updates = broken(st.fixed_dictionaries({
    "msg": st.sampled_from(["added", "changed", "removed"]),
    "collection": st.sampled_from([JOB_EVENT, "alert.list"]), "id": st.integers(0, 3) | json_values,
    "fields": job_fields}, optional={"extra": st.dictionaries(st.text(max_size=3), json_values)}),
    "msg", "collection", "id", "fields", "extra")
unsubs = broken(st.fixed_dictionaries({"collection": st.text(max_size=8),
                                       "error": st.none() | truenas_errors}), "collection", "error")
rpc_errors = broken(st.fixed_dictionaries({
    "code": st.integers(-32700, -32000), "message": st.text(max_size=10),
    "data": st.none() | truenas_errors}), "code", "message", "data")
rpc_frames = st.one_of(
    st.builds(lambda i, r: {"jsonrpc": "2.0", "id": i, "result": r}, ids, values),
    st.builds(lambda i, e: {"jsonrpc": "2.0", "id": i, "error": e}, st.none() | ids, rpc_errors),
    st.builds(lambda p: {"jsonrpc": "2.0", "method": "collection_update", "params": p}, updates),
    st.builds(lambda p: {"jsonrpc": "2.0", "method": "notify_unsubscribed", "params": p}, unsubs),
)
ddp_frames = st.one_of(
    st.builds(lambda i, r: {"msg": "result", "id": i, "result": r}, ids, values),
    st.builds(lambda i, e: {"msg": "result", "id": i, "error": e}, ids, truenas_errors),
    st.builds(lambda s: {"msg": "connected", "session": s}, st.text(max_size=8)),
    st.builds(lambda v: {"msg": "failed", "version": v}, values),
    st.builds(lambda subs: {"msg": "ready", "subs": subs}, st.lists(ids, max_size=3)),
    st.builds(lambda i: {"msg": "pong", "id": i}, ids),
    st.builds(lambda u: {"msg": "nosub", **u}, unsubs), updates,
)
messages = broken(rpc_frames | ddp_frames, "jsonrpc", "id", "result", "error", "method",
                  "params", "msg", "subs", "session", "collection", "fields", "extra")


def receive_or_protocol_error(frame: str | bytes) -> None:
    """Every input gives events or ProtocolError; job events give an outcome or its error."""
    for dialect in (rpc(), ddp()):
        try:
            events = dialect.receive(frame)
        except ProtocolError as exc:
            assert exc.host == HOST
            continue
        tracker = JobTracker(HOST)
        for event in events:
            if isinstance(event, CollectionUpdate):
                track_one(tracker, event)


def track_one(tracker: JobTracker, event: CollectionUpdate) -> None:
    try:
        job = tracker.feed(event)
    except ProtocolError:
        return
    if job is not None and is_terminal(job):
        with contextlib.suppress(JobFailed, ValidationError):
            tracker.consume(event.id if event.id is not None else job["id"])
        assert len(tracker) == 0


@settings(max_examples=300, deadline=None)
@given(st.text() | st.binary())
def test_receive_arbitrary_text_or_bytes(frame):
    receive_or_protocol_error(frame)


@settings(max_examples=300, deadline=None)
@given(values)
def test_receive_arbitrary_json_values(value):
    receive_or_protocol_error(json.dumps(value).encode())


@settings(max_examples=1000, deadline=None)
@given(messages)
def test_receive_message_like_objects(msg):
    receive_or_protocol_error(json.dumps(msg))
