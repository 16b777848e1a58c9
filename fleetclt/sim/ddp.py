"""The legacy DDP-style dialect of /websocket (TrueNAS 24.10 and older).

`connect` must come first (anything else, or a version other than "1", gets
`failed`); `method` -> `result`; `sub` -> `ready`; `unsub` has no reply; events
are `added` / `changed` / `removed`; `ping` is answered only by 24.10-style
hosts; invalid JSON closes with 1007. Jobs always answer with their id.
"""
from __future__ import annotations

import errno
import uuid
from typing import Any

from ..protocol import ejson
from .connection import Connection, MethodMissing
from .failures import CallError, ddp_error, unsubscribe_error

_MAX_CALLS = 20


class DdpConnection(Connection):
    """A /websocket websocket."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._connected = False
        self._inflight = 0

    def handle_text(self, frame: str) -> None:
        try:
            message = ejson.loads(frame)
        except ejson.DecodeError:
            return self.close(1007, "Invalid JSON")
        if isinstance(message, dict):
            self.handle(message)

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("msg")
        if not self._connected:
            return self._handshake(message)
        if kind == "method":
            return self._method(message)
        if kind == "sub":
            return self._sub(message)
        if kind == "unsub":
            sub_id = str(message.get("id"))
            if self.subscriptions.pop(sub_id, None) is None:
                self.host.sources.unsubscribe(sub_id)
        elif kind == "ping" and self.host.config.legacy_only:
            self._send({"msg": "pong", "id": message.get("id")})

    def _handshake(self, message: dict[str, Any]) -> None:
        if message.get("msg") == "connect" and message.get("version") == "1":
            self._connected = True
            return self._send({"msg": "connected", "session": str(uuid.uuid4())})
        self._send({"msg": "failed", "version": "1"})

    def _method(self, message: dict[str, Any]) -> None:
        msg_id, params = message.get("id"), message.get("params", [])
        if not isinstance(params, list):
            return self._send_exc(msg_id, CallError("`params` must be a list.", errno.EINVAL))
        if self._inflight >= _MAX_CALLS:
            self.host.counters.too_many_calls += 1
            return self._send_exc(msg_id, CallError(
                "Maximum number of concurrent calls (20) has exceeded.", errno.ETOOMANYREFS))
        self._inflight += 1
        self.spawn_call(self._call, msg_id, str(message.get("method")), params)

    def _call(self, msg_id: Any, method: str, params: list[Any]) -> None:
        try:
            result = self.invoke(method, params, msg_id)
        except MethodMissing:
            self._send_exc(msg_id, CallError(f"Method {method!r} not found", 201))
        except Exception as exc:  # every failure is a `result` with `error`
            self._send_exc(msg_id, exc)
        else:
            self._send({"msg": "result", "id": msg_id, "result": result})
        finally:
            self._inflight -= 1

    def _sub(self, message: dict[str, Any]) -> None:
        sub_id, name = str(message.get("id")), str(message.get("name"))
        if not self.can_subscribe(name):
            return self._send_exc(sub_id, CallError("Not authorized", errno.EACCES))
        if self.host.sources.is_source(name):
            self.host.sources.subscribe(self, sub_id, name)
        else:
            self.subscriptions[sub_id] = name
        self._send({"msg": "ready", "subs": [sub_id]})

    def _send_exc(self, msg_id: Any, exc: BaseException) -> None:
        self._send({"msg": "result", "id": msg_id, "error": ddp_error(exc)})

    def _send(self, message: dict[str, Any]) -> None:
        self.send(ejson.dumps(message))

    def send_unsubscribed(self, collection: str, error: BaseException | None) -> None:
        """event_source/manager.py AppSubscriber.terminate on 24.10: a `nosub`, with `error` only on a failure."""
        notice: dict[str, Any] = {"msg": "nosub", "collection": collection}
        if error is not None:
            notice["error"] = unsubscribe_error(error, legacy=True)
        self._send(notice)

    def send_event(self, msg: str, collection: str, ident: Any, fields: Any) -> None:
        event: dict[str, Any] = {"msg": msg, "collection": collection, "id": ident}
        if fields is not None:
            event["fields"] = fields
        self._send(event)
