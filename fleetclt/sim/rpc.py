"""The JSON-RPC 2.0 dialect of /api/current, framed exactly as rpc.py frames it.

Text frames only (binary -> close 1003); 8192 characters before login
(-> close 1007) and 65536 after (-> close 1009); -32700 for bad JSON and
batches with id null; -32600 only when the request had an id; notifications
(no id) run with no reply; 10 calls run, 10 wait, the 21st gets -32000.
Frame type and size limits are enforced by Connection.serve.
"""
from __future__ import annotations

import logging
from typing import Any

from gevent.lock import Semaphore

from ..protocol import ejson
from .connection import Connection, MethodMissing
from .failures import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    TOO_MANY_CONCURRENT_CALLS,
    jsonrpc_error,
    unsubscribe_error,
)

log = logging.getLogger(__name__)

RUNNING_CALLS, MAX_CALLS = 10, 20
_NO_ID = object()


def _validate(message: dict[str, Any]) -> str | None:
    """The -32600 message for an invalid request, or None (rpc.py validate_message)."""
    if "jsonrpc" not in message:
        return "Missing 'jsonrpc' member"
    if message["jsonrpc"] != "2.0":
        return "'jsonrpc' member must be of type string and must be exactly '2.0'"
    if "id" in message and not isinstance(message["id"], (type(None), int, str)):
        return "'id' member must be of type null, string or number"
    if "method" not in message:
        return "Missing 'method' member"
    if not isinstance(message["method"], str) or not message["method"]:
        return "'method' member must be of type string"
    if not isinstance(message.setdefault("params", []), list):
        return "'params' member must be of type array"
    return None


class RpcConnection(Connection):
    """A /api/current websocket."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._slots = Semaphore(RUNNING_CALLS)
        self._inflight = 0

    def handle_text(self, frame: str) -> None:
        """Parse and validate one message, then run it in its own greenlet."""
        try:
            message = ejson.loads(frame)
        except ejson.DecodeError as exc:
            return self._send_error(None, PARSE_ERROR, str(exc))
        if isinstance(message, list):
            return self._send_error(None, PARSE_ERROR, "Batch messages are not supported at this time")
        if not isinstance(message, dict):
            return self._send_error(None, PARSE_ERROR, "Invalid Message Format")
        msg_id = message.get("id", _NO_ID)
        problem = _validate(message)
        if problem:
            return self._send_error(msg_id, INVALID_REQUEST, problem)
        if self._inflight >= MAX_CALLS:
            self.host.counters.too_many_calls += 1
            return self._send_error(msg_id, TOO_MANY_CONCURRENT_CALLS,
                                    f"Maximum number of concurrent calls ({MAX_CALLS}) has exceeded")
        self._inflight += 1
        self.host.note_inflight(self._inflight)
        self.spawn_call(self._call, msg_id, message["method"], message["params"])

    def _call(self, msg_id: Any, method: str, params: list[Any]) -> None:
        try:
            with self._slots:
                self.host.note_running_call(+1)
                try:
                    self._answer(msg_id, method, params)
                finally:
                    self.host.note_running_call(-1)
        finally:
            self._inflight -= 1

    def _answer(self, msg_id: Any, method: str, params: list[Any]) -> None:
        try:
            result = self.invoke(method, params, None if msg_id is _NO_ID else msg_id)
        except MethodMissing:
            return self._send_error(msg_id, METHOD_NOT_FOUND, "Method does not exist")
        except Exception as exc:  # every method failure becomes an error reply
            if not hasattr(exc, "errno"):
                log.debug("%s: %s raised %r", self.host.name, method, exc)
            return self._send(msg_id, {"error": jsonrpc_error(exc)})
        self._send(msg_id, {"result": result})

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send(msg_id, {"error": {"code": code, "message": message}})

    def _send(self, msg_id: Any, body: dict[str, Any]) -> None:
        if msg_id is _NO_ID:
            return
        self.send(ejson.dumps({"jsonrpc": "2.0", **body, "id": msg_id}))

    def send_event(self, msg: str, collection: str, ident: Any, fields: Any) -> None:
        params: dict[str, Any] = {"msg": msg, "collection": collection, "id": ident}
        if fields is not None:
            params["fields"] = fields
        self.send(ejson.dumps({"jsonrpc": "2.0", "method": "collection_update", "params": params}))

    def send_unsubscribed(self, collection: str, error: BaseException | None) -> None:
        """rpc.py notify_unsubscribed: {collection, error} with error null on a clean end."""
        params = {"collection": collection, "error": None if error is None else unsubscribe_error(error)}
        self.send(ejson.dumps({"jsonrpc": "2.0", "method": "notify_unsubscribed", "params": params}))
