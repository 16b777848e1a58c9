"""Dialects, frames and a job feeder that the protocol tests share."""
from __future__ import annotations

from fleetclt.protocol.ddp import DdpDialect
from fleetclt.protocol.jobs import JobTracker
from fleetclt.protocol.jsonrpc import JsonRpcDialect

HOST = "nas1"


def rpc() -> JsonRpcDialect:
    return JsonRpcDialect(HOST, id_prefix="c-")


def ddp() -> DdpDialect:
    return DdpDialect(HOST, id_prefix="d-")


def one(dialect: JsonRpcDialect | DdpDialect, frame: str | bytes):
    events = dialect.receive(frame)
    assert len(events) == 1
    return events[0]


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
