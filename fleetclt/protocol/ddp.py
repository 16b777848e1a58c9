"""Sans-IO framing of the legacy DDP-like ``/websocket`` dialect (TrueNAS 24.10 and older).

DdpDialect has JsonRpcDialect's interface and yields the same events, so a
session drives either one. What differs for the session:

* ``handshake()`` returns the ``connect`` frame: wait for Connected (or
  HandshakeFailed) before sending anything else.
* A ``ready`` message becomes ``Reply(sub_id, sub_id)``, so a subscription is
  answered like a JSON-RPC ``core.subscribe`` call, and ``nosub`` becomes
  NotifyUnsubscribed. ``unsub`` gets no answer at all.
* DDP errors carry no JSON-RPC code; they get the code the new API would use
  (-32001, or -32602 for ``type: VALIDATION``) so the ``is_*`` predicates of
  fleetclt.protocol apply to both dialects.
* ``ping()`` is answered with Pong only by 24.10 and older; newer servers
  ignore it, so a missing Pong does not mean a dead connection.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ProtocolError
from . import ejson
from .jsonrpc import (
    UPDATE_KINDS,
    Connected,
    ErrorReply,
    Event,
    HandshakeFailed,
    IdSource,
    Pong,
    Reply,
    RequestId,
    collection_update,
    is_request_id,
    load_object,
    message_id,
    truenas_error,
    unsubscribed,
)

CONNECT = {"msg": "connect", "version": "1", "support": ["1"], "features": []}


class DdpDialect:
    """Framing for ``/websocket``: connect/connected, method/result, sub/ready, added/changed."""

    has_login_ex = False
    job_calls_return_ids = True

    def __init__(self, host: str = "", id_prefix: str | None = None) -> None:
        self.host = host
        self._ids = IdSource(id_prefix)

    def handshake(self) -> list[str]:
        """The ``connect`` frame; nothing else may be sent before Connected arrives."""
        return [ejson.dumps(CONNECT)]

    def request(self, method: str, params: list[Any]) -> tuple[RequestId, str]:
        """A ``method`` frame and the id its Reply or ErrorReply will carry."""
        call_id = self._ids.next()
        return call_id, ejson.dumps(
            {"msg": "method", "id": call_id, "method": method, "params": params})

    def notification(self, method: str, params: list[Any]) -> str:
        """DDP has no notifications: a call whose reply the session drops as an unknown id."""
        return self.request(method, params)[1]

    def subscribe(self, name: str) -> tuple[RequestId, str]:
        """A ``sub`` frame; the id is also the subscription id."""
        sub_id = self._ids.next()
        return sub_id, ejson.dumps({"msg": "sub", "id": sub_id, "name": name})

    def unsubscribe(self, sub_id: RequestId) -> tuple[None, str]:
        """An ``unsub`` frame with the subscription's id; the server never answers it (no id to wait for)."""
        return None, ejson.dumps({"msg": "unsub", "id": sub_id})

    def ping(self) -> tuple[RequestId, str]:
        """A DDP ``ping``; see the module docstring for servers that ignore it."""
        ping_id = self._ids.next()
        return ping_id, ejson.dumps({"msg": "ping", "id": ping_id})

    def receive(self, text: str | bytes) -> list[Event]:
        """Parse one received frame into events."""
        msg = load_object(text, self.host)
        kind = msg.get("msg")
        parse = _PARSERS.get(kind) if isinstance(kind, str) else None
        if parse is None:
            raise ProtocolError(f"unknown DDP message: {msg!r:.80}", self.host)
        return parse(msg, self.host)


def _result(msg: dict[str, Any], host: str) -> list[Event]:
    call_id = message_id(msg, host)
    if msg.get("error") is not None:
        return [ErrorReply(call_id, truenas_error(msg["error"], host))]
    if "result" not in msg:
        raise ProtocolError(f"result message without result or error: {msg!r:.80}", host)
    return [Reply(call_id, msg["result"])]


def _connected(msg: dict[str, Any], host: str) -> list[Event]:
    session = msg.get("session")
    if not isinstance(session, str):
        raise ProtocolError(f"connected without a session: {msg!r:.80}", host)
    return [Connected(session)]


def _ready(msg: dict[str, Any], host: str) -> list[Event]:
    subs = msg.get("subs")
    if not isinstance(subs, list) or not all(map(is_request_id, subs)):
        raise ProtocolError(f"ready without a list of subscription ids: {msg!r:.80}", host)
    return [Reply(sub_id, sub_id) for sub_id in subs]


_PARSERS: dict[str, Callable[[dict[str, Any], str], list[Event]]] = {
    "result": _result,
    "connected": _connected,
    "failed": lambda msg, host: [HandshakeFailed(msg.get("version"))],
    "ready": _ready,
    "nosub": lambda msg, host: [unsubscribed(msg, host)],
    "pong": lambda msg, host: [Pong(message_id(msg, host))],
    **{kind: lambda msg, host: [collection_update(msg, host)] for kind in UPDATE_KINDS},
}
