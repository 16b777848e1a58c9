"""Sans-IO core of the TrueNAS JSON-RPC 2.0 dialect (``/api/current``).

The legacy ``/websocket`` dialect lives in
fleetclt.protocol.ddp and job bookkeeping in fleetclt.protocol.jobs; both build on
this module.

A dialect turns calls into text frames and received frames into events, in the
way wsproto does for websockets: the session moves the text, matches replies to
calls by id (they arrive out of order) and decides what to do with each event::

    dialect = JsonRpcDialect(host="nas1")
    call_id, frame = dialect.request("system.info", [])
    ...send frame, receive text...
    for event in dialect.receive(text):
        ...  # Reply / ErrorReply / ConnectionFailure / CollectionUpdate / ...

Events (frozen dataclasses, shared by both dialects):

    Reply(id, result)              a call (or a DDP subscription) succeeded
    ErrorReply(id, error)          a call failed; error is a RemoteCallError
    ConnectionFailure(error)       an error reply with ``id: null``: fail every pending call
    CollectionUpdate(...)          an event for a subscription (jobs included)
    NotifyUnsubscribed(...)        an event-source subscription ended (DDP ``nosub`` too)
    Connected(session)             DDP handshake accepted
    HandshakeFailed(version)       DDP handshake refused
    Pong(id)                       DDP ping answered (servers 24.10 and older only)

Malformed input raises ProtocolError carrying the host, never anything else.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Protocol, TypeGuard

from ..errors import ProtocolError, RemoteCallError, ValidationError
from . import ejson

RequestId = int | str

# JSON-RPC error codes the TrueNAS server sends (docs/protocol.md §3).
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
CALL_ERROR = -32001

EBUSY = 16
EINVAL = 22
ENOMETHOD = 201
ENOTAUTHENTICATED = 207
EREBOOTREQUIRED = 209   # an update was applied: reboot before the next (docs/protocol.md §11)
EHAUNAVAILABLE = 210    # HA is configured but degraded: no update until it is healthy

UPDATE_KINDS = frozenset({"added", "changed", "removed"})


# --------------------------------------------------------------------------- events

@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer to the call (or DDP subscription) sent with ``id``."""

    id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A failed call; ``error`` is ready to raise in the caller."""

    id: RequestId
    error: RemoteCallError


@dataclass(frozen=True, slots=True)
class ConnectionFailure:
    """An error that names no call (``id: null``): it fails every pending call at once."""

    error: RemoteCallError


@dataclass(frozen=True, slots=True)
class CollectionUpdate:
    """One event of a subscribed collection; ``msg`` is 'added', 'changed' or 'removed'."""

    msg: str
    collection: str
    id: Any = None
    fields: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotifyUnsubscribed:
    """The server ended an event-source subscription; ``error`` is None on a clean end."""

    collection: str
    error: RemoteCallError | None


@dataclass(frozen=True, slots=True)
class Connected:
    """DDP only: the server accepted the ``connect`` handshake."""

    session: str


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """DDP only: the server refused the handshake (or got a message before it)."""

    version: Any


@dataclass(frozen=True, slots=True)
class Pong:
    """DDP only: answer to ``ping()``; 25.04+ servers never send it."""

    id: RequestId


Event = (Reply | ErrorReply | ConnectionFailure | CollectionUpdate | NotifyUnsubscribed | Connected
         | HandshakeFailed | Pong)


class Dialect(Protocol):
    """What a session needs from either dialect; see JsonRpcDialect for the contract."""

    host: str
    has_login_ex: bool           # auth.login_ex exists (25.04+); the legacy dialect has only auth.login
    job_calls_return_ids: bool   # a job method answers with its id at once, without core.set_options

    def handshake(self) -> list[str]: ...
    def request(self, method: str, params: list[Any]) -> tuple[RequestId, str]: ...
    def notification(self, method: str, params: list[Any]) -> str: ...
    def subscribe(self, name: str) -> tuple[RequestId, str]: ...
    def unsubscribe(self, sub_id: RequestId) -> tuple[RequestId | None, str]: ...
    def ping(self) -> tuple[RequestId, str] | None: ...
    def receive(self, text: str | bytes) -> list[Event]: ...


# ------------------------------------------------------------------- field checks

def is_int(value: Any) -> TypeGuard[int]:
    """True for a JSON integer (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_request_id(value: Any) -> TypeGuard[RequestId]:
    """True for an id the server echoes back unchanged: an int or a string."""
    return is_int(value) or isinstance(value, str)


def _get(obj: dict[str, Any], key: str, kind: type, host: str) -> Any:
    """Read an optional field that must be None or of type ``kind``."""
    value = obj.get(key)
    if value is not None and not (is_int(value) if kind is int else isinstance(value, kind)):
        raise ProtocolError(f"field {key!r} has unexpected type: {value!r:.80}", host)
    return value


def load_object(text: str | bytes, host: str) -> dict[str, Any]:
    """Decode one frame as an ejson object; anything else is a ProtocolError."""
    try:
        value = ejson.loads(text)
    except ejson.DecodeError as exc:
        raise ProtocolError(f"undecodable message: {exc}", host) from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"message is not an object: {value!r:.80}", host)
    return value


def message_id(msg: dict[str, Any], host: str) -> RequestId:
    """The id of a reply exactly as sent, so it matches the request's id."""
    value = msg.get("id")
    if not is_request_id(value):
        raise ProtocolError(f"reply id must be an int or a string: {value!r:.80}", host)
    return value


# ---------------------------------------------------------------- error mapping

def truenas_error(data: Any, host: str, *, code: int = CALL_ERROR,
                  message: str = "") -> RemoteCallError:
    """Map a TrueNAS error object (JSON-RPC ``data``, a DDP ``error``) keeping every field.

    ``-32602`` and DDP ``type: VALIDATION`` become ValidationError, whose ``extra``
    holds the ``[attribute, message, errno]`` triples.
    """
    if not isinstance(data, dict):
        raise ProtocolError(f"error data is not an object: {data!r:.80}", host)
    reason, errname = _get(data, "reason", str, host), _get(data, "errname", str, host)
    validation = code == INVALID_PARAMS or data.get("type") == "VALIDATION"
    cls = ValidationError if validation else RemoteCallError
    return cls(
        (reason or message or errname or "remote call failed").rstrip("\n"), host,
        code=INVALID_PARAMS if validation else code, errno=_get(data, "error", int, host),
        errname=errname, reason=reason, trace=data.get("trace"), extra=data.get("extra"),
    )


def jsonrpc_error(error: Any, host: str) -> RemoteCallError:
    """Map a JSON-RPC ``error`` member; codes without ``data`` keep code and message."""
    if not isinstance(error, dict) or not is_int(error.get("code")):
        raise ProtocolError(f"malformed error member: {error!r:.80}", host)
    code = error["code"]
    message = _get(error, "message", str, host) or f"JSON-RPC error {code}"
    data = error.get("data")
    if data is None:
        cls = ValidationError if code == INVALID_PARAMS else RemoteCallError
        return cls(message, host, code=code)
    return truenas_error(data, host, code=code, message=message)


def is_rate_limited(err: BaseException) -> bool:
    """EBUSY "Rate Limit Exceeded": wait for the window, do not retry now."""
    return (isinstance(err, RemoteCallError) and err.errno == EBUSY
            and "Rate Limit Exceeded" in (err.reason or str(err)))


def is_not_authenticated(err: BaseException) -> bool:
    """ENOTAUTHENTICATED: the session expired or was never logged in; log in again."""
    return isinstance(err, RemoteCallError) and err.errno == ENOTAUTHENTICATED


def is_method_missing(err: BaseException) -> bool:
    """Unknown method: an older server; fall back (e.g. auth.login_ex -> auth.login)."""
    return isinstance(err, RemoteCallError) and (
        err.code == METHOD_NOT_FOUND or err.errno == ENOMETHOD)


# ----------------------------------------------------------- shared event parsing

def collection_update(params: Any, host: str) -> CollectionUpdate:
    """Parse ``collection_update`` params (JSON-RPC) or a DDP added/changed/removed message."""
    kind = params.get("msg") if isinstance(params, dict) else None
    if not isinstance(kind, str) or kind not in UPDATE_KINDS:
        raise ProtocolError(f"malformed collection update: {params!r:.80}", host)
    collection = _get(params, "collection", str, host)
    if collection is None:
        raise ProtocolError("collection update without a collection", host)
    return CollectionUpdate(
        kind, collection, params.get("id"),
        _get(params, "fields", dict, host) or {},
        _get(params, "extra", dict, host) or {},
    )


def unsubscribed(params: Any, host: str) -> NotifyUnsubscribed:
    """Parse ``notify_unsubscribed`` params or a DDP ``nosub`` message."""
    if not isinstance(params, dict) or not isinstance(params.get("collection"), str):
        raise ProtocolError(f"malformed unsubscribe notice: {params!r:.80}", host)
    error = params.get("error")
    if error is None:
        return NotifyUnsubscribed(params["collection"], None)
    code = INVALID_PARAMS if _names_fields(error) else CALL_ERROR
    return NotifyUnsubscribed(params["collection"], truenas_error(error, host, code=code))


def _names_fields(error: Any) -> bool:
    """A refused event-source argument: EINVAL whose ``extra`` lists ``[field, message, errno]``.

    The notice has no JSON-RPC code to say "validation"; the server formats a
    ValidationErrors as EINVAL with the triples as ``extra`` (docs/protocol.md §8).
    """
    if not isinstance(error, dict) or error.get("error") != EINVAL:
        return False
    extra = error.get("extra")
    return isinstance(extra, list) and bool(extra) and all(isinstance(i, list) and len(i) == 3 for i in extra)


# ------------------------------------------------------------------- the dialect

class IdSource:
    """Request ids unique beyond this connection: a random prefix plus a counter.

    A bare counter would be cheaper, but job events reach every connection and
    name the calls that started them only by id (``message_ids``), so ids must
    not collide with another fleetclt connection's ids.
    """

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = secrets.token_hex(4) + "-" if prefix is None else prefix
        self._counter = count(1)

    def next(self) -> str:
        """A fresh id."""
        return f"{self._prefix}{next(self._counter)}"


class JsonRpcDialect:
    """JSON-RPC 2.0 framing for ``/api/current`` (TrueNAS 25.04 and newer)."""

    has_login_ex = True
    job_calls_return_ids = False  # a job call answers when the job ends, unless legacy_jobs is set

    def __init__(self, host: str = "", id_prefix: str | None = None) -> None:
        self.host = host
        self._ids = IdSource(id_prefix)

    def handshake(self) -> list[str]:
        """Frames to send once the websocket opens: none for JSON-RPC."""
        return []

    def request(self, method: str, params: list[Any]) -> tuple[RequestId, str]:
        """A call frame and the id its Reply or ErrorReply will carry."""
        call_id = self._ids.next()
        return call_id, ejson.dumps(
            {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})

    def notification(self, method: str, params: list[Any]) -> str:
        """A call without id: the server runs it and never answers, not even on error."""
        return ejson.dumps({"jsonrpc": "2.0", "method": method, "params": params})

    def subscribe(self, name: str) -> tuple[RequestId, str]:
        """A ``core.subscribe`` call; its Reply's result is the subscription id."""
        return self.request("core.subscribe", [name])

    def unsubscribe(self, sub_id: RequestId) -> tuple[RequestId, str]:
        """A ``core.unsubscribe`` call with the id ``core.subscribe`` returned; it answers null."""
        return self.request("core.unsubscribe", [sub_id])

    def ping(self) -> None:
        """No protocol-level ping here: use websocket pings and an authenticated core.ping."""
        return None

    def receive(self, text: str | bytes) -> list[Event]:
        """Parse one received frame into events."""
        msg = load_object(text, self.host)
        if msg.get("jsonrpc") != "2.0":
            raise ProtocolError(f"not a JSON-RPC 2.0 message: {msg!r:.80}", self.host)
        if "method" in msg:
            return [self._notice(msg)]
        if "error" in msg:
            return [self._error_reply(msg)]
        if "result" in msg:
            return [Reply(message_id(msg, self.host), msg["result"])]
        raise ProtocolError(f"neither result, error nor method: {msg!r:.80}", self.host)

    def _error_reply(self, msg: dict[str, Any]) -> ErrorReply | ConnectionFailure:
        error = jsonrpc_error(msg["error"], self.host)
        if msg.get("id") is None:
            return ConnectionFailure(error)
        return ErrorReply(message_id(msg, self.host), error)

    def _notice(self, msg: dict[str, Any]) -> CollectionUpdate | NotifyUnsubscribed:
        method = msg["method"]
        if method == "collection_update":
            return collection_update(msg.get("params"), self.host)
        if method == "notify_unsubscribed":
            return unsubscribed(msg.get("params"), self.host)
        raise ProtocolError(f"unknown notification: {method!r:.80}", self.host)
