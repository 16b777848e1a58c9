"""JSON-RPC 2.0 framing: literal frames in, events and frames out (no sockets, no sleeps).

Frames are the ones the real middleware sends (docs/protocol.md), with the ids it
shortens kept as literal strings.
"""
from __future__ import annotations

import datetime as dt

import orjson
import pytest

from fleetclt.errors import ProtocolError, RemoteCallError, ValidationError
from fleetclt.protocol.jsonrpc import (
    CollectionUpdate,
    ConnectionFailure,
    ErrorReply,
    JsonRpcDialect,
    NotifyUnsubscribed,
    Reply,
    is_method_missing,
    is_not_authenticated,
    is_rate_limited,
)
from tests.protocol.support import HOST, one, rpc

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


def test_notify_unsubscribed_naming_fields_is_a_validation_error():
    """api/base/server/ws_handler/rpc.py notify_unsubscribed: a ValidationErrors goes out through
    format_truenas_validation_error, i.e. EINVAL with the [field, message, errno] triples."""
    event = one(rpc(), '{"jsonrpc":"2.0","method":"notify_unsubscribed","params":{"collection":"t:{}",'
                       '"error":{"error":22,"errname":"EINVAL","reason":"[EINVAL] path: Field required\\n",'
                       '"trace":null,"extra":[["path","Field required",22]]}}}')
    assert isinstance(event.error, ValidationError) and event.error.extra == [["path", "Field required", 22]]
    plain = one(rpc(), '{"jsonrpc":"2.0","method":"notify_unsubscribed","params":{"collection":"t:{}",'
                       '"error":{"error":22,"errname":"EINVAL","reason":"[EINVAL] bad","trace":null,"extra":null}}}')
    assert type(plain.error) is RemoteCallError


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
