"""Property tests: whatever arrives, a dialect returns events or raises ProtocolError, never another error."""
from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetclt.errors import JobFailed, ProtocolError, ValidationError
from fleetclt.protocol.jobs import JOB_EVENT, JobTracker, is_terminal
from fleetclt.protocol.jsonrpc import (
    CollectionUpdate,
)
from tests.protocol.support import HOST, ddp, rpc

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
