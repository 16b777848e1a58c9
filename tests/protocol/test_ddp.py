"""The legacy DDP dialect of /websocket: its frames become the same events as JSON-RPC's."""
from __future__ import annotations

import orjson
import pytest

from fleetclt.errors import ProtocolError, ValidationError
from fleetclt.protocol.jsonrpc import (
    CollectionUpdate,
    Connected,
    ErrorReply,
    HandshakeFailed,
    NotifyUnsubscribed,
    Pong,
    Reply,
    is_method_missing,
    is_not_authenticated,
    is_rate_limited,
)
from tests.protocol.support import HOST, ddp, one

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
