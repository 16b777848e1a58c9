"""The one exception tree of fleetclt.

Low-level errors (OSError, ssl.SSLError, wsproto errors) are converted into
these at the transport boundary only, so callers catch one family::

    FleetError
    ├── ConfigError                 bad inventory, bad option, bad secret reference
    │   ├── InventoryError          .path, .line, .key: "inventory.yaml:14: hosts.nas07.port: ..."
    │   └── UnknownHostError        a host name the inventory does not have (.name, .known)
    └── SessionError                every instance carries .host
        ├── UnreachableError        no websocket could be opened
        │   ├── ConnectError        DNS failure, refused, reset during connect
        │   ├── ConnectTimeout      connect or handshake took too long
        │   ├── HandshakeError      HTTP answered without 101 (.status, .location)
        │   └── TLSError            certificate rejected
        │       └── PinMismatch     certificate does not match the pinned SHA-256
        ├── AuthError               credentials refused (never retried automatically)
        ├── StandbyError            an HA standby controller: log in on the active one (.urls)
        ├── ThrottledError          server said EBUSY, or our own auth budget is spent (.retry_at)
        ├── InsecureCredentialError a plain API key would go over ws:// (no allow_plain_api_key)
        ├── CallTimeout             no reply in time
        ├── ConnectionLost          the socket dropped while a call was in flight
        │   ├── NotSent             the connection was gone before the request left: never run
        │   └── OutcomeUnknown      it dropped after the request left: the server may have run it
        ├── RequestTooLarge         a call over the server's message size limit, refused unsent
        ├── RemoteCallError         the server answered with a JSON-RPC error
        │   └── ValidationError     -32602, or a job failed with exc_info.type VALIDATION
        ├── JobFailed               a job ended FAILED or ABORTED
        ├── JobUnknown              the job cannot be found any more (server restarted)
        ├── JobBusy                 the server answered with another call's queued job: this one never ran
        ├── NotAJobError            job=True on a method that returned no job id
        ├── InternalError           a bug in fleetclt met on one host (the rest of the fleet goes on)
        ├── TransferError           an HTTP file transfer refused (.status) or cut short
        └── ProtocolError           a message that breaks JSON-RPC or the TrueNAS dialect
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

GATEWAY_STATUSES = frozenset({502, 503, 504})  # what a proxy answers while the service behind it is down


class FleetError(Exception):
    """Base of every error fleetclt raises on purpose."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """"; did you mean 'a' or 'b'?" for the choices close to a mistyped name, else "".

    Closest first, and equally close ones in the order given (difflib's own
    get_close_matches lists ties in reverse alphabetical order: nas03 before nas01).
    """
    matcher = difflib.SequenceMatcher(b=name)
    scored = []
    for index, choice in enumerate(choices):
        matcher.set_seq1(choice)
        if matcher.ratio() >= 0.6:
            scored.append((-matcher.ratio(), index, choice))
    near = [choice for _, _, choice in sorted(scored)[:n]]
    return "; did you mean " + " or ".join(repr(choice) for choice in near) + "?" if near else ""


def without_host(error: BaseException) -> str:
    """An error's message without the "host: " prefix, for places that show the host apart."""
    text = str(error)
    host = getattr(error, "host", "")
    return text.removeprefix(f"{host}: ") if host else text


class ConfigError(FleetError):
    """Configuration that cannot be used as given."""


class InventoryError(ConfigError):
    """A broken inventory; the message names file, line and key."""

    def __init__(self, message: str, path: str = "", line: int | None = None, key: str = "") -> None:
        self.path, self.line, self.key = path, line, key
        where = path if line is None else f"{path}:{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join(parts + [message]))


class UnknownHostError(ConfigError, LookupError):
    """A host name that is not in the inventory; the message says which names exist."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name, self.known = name, known
        hint = did_you_mean(name, known) or f"; it has {', '.join(known[:5]) or 'no hosts'}" + (
            f" and {len(known) - 5} more" if len(known) > 5 else "")
        super().__init__(f"no host named {name!r} in the inventory{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class SessionError(FleetError):
    """An error that belongs to one host."""

    def __init__(self, message: str, host: str = "") -> None:
        self.host = host
        super().__init__(f"{host}: {message}" if host else message)


class UnreachableError(SessionError):
    """No websocket session could be opened."""


class ConnectError(UnreachableError):
    """DNS failure, connection refused or reset while connecting."""


class ConnectTimeout(UnreachableError):
    """Connecting or the websocket handshake took longer than allowed."""


class HandshakeError(UnreachableError):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, message: str, host: str = "", status: int = 0, location: str = "") -> None:
        self.status, self.location = status, location
        super().__init__(message, host)

    @property
    def gateway(self) -> bool:
        """The host's web server answered for a middleware that is not there (yet): it restarts."""
        return self.status in GATEWAY_STATUSES


class TLSError(UnreachableError):
    """The server's certificate was rejected."""


class PinMismatch(TLSError):
    """The certificate's SHA-256 fingerprint differs from the pinned one."""


class AuthError(SessionError):
    """The server refused the credentials."""


class StandbyError(SessionError):
    """The host is the standby controller of an HA pair; `urls` are the active one's (from REDIRECT).

    Routing, not a refused credential: the session tries again on the next call,
    which succeeds once this controller has become the active one.
    """

    def __init__(self, message: str, host: str = "", urls: list[str] | None = None) -> None:
        self.urls = list(urls or [])
        super().__init__(message, host)


class ThrottledError(SessionError):
    """The auth budget is spent, locally or on the server (EBUSY).

    `retry_at` is when the next login is allowed (epoch seconds), when fleetclt's own
    budget is what refused; None when the server refused.
    """

    def __init__(self, message: str, host: str = "", retry_at: float | None = None) -> None:
        self.retry_at = retry_at
        super().__init__(message, host)


class InsecureCredentialError(SessionError):
    """Refused to send a credential where the server would revoke it."""


class CallTimeout(SessionError):
    """No reply arrived in time."""


class ConnectionLost(SessionError):
    """The connection dropped while a call was waiting for its reply."""


class NotSent(ConnectionLost):
    """The connection was known dead before the request left, or the send failed: the server never got it.

    Such a request is sent again on a new connection whatever the method.
    """


class OutcomeUnknown(ConnectionLost):
    """The connection dropped after the request left: the server may have run it.

    Only a call marked safe to repeat is sent again; any other fails with this.
    """


class RequestTooLarge(SessionError):
    """A call bigger than the server takes; it was not sent, so the connection stays up."""


class ProtocolError(SessionError):
    """A message that breaks JSON-RPC framing or the TrueNAS dialect."""


class RemoteCallError(SessionError):
    """The server answered a call with a JSON-RPC error; keeps every field it sent."""

    def __init__(
        self,
        message: str,
        host: str = "",
        *,
        code: int = -32001,
        errno: int | None = None,
        errname: str | None = None,
        reason: str | None = None,
        trace: Any = None,
        extra: Any = None,
    ) -> None:
        self.code, self.errno, self.errname = code, errno, errname
        self.reason, self.trace, self.extra = reason, trace, extra
        super().__init__(message, host)


class ValidationError(RemoteCallError):
    """Invalid arguments: .extra holds [attribute, message, errno] triples."""


class JobFailed(SessionError):
    """A job ended FAILED or ABORTED; .job holds the last job dict seen."""

    def __init__(self, message: str, host: str = "", job: dict[str, Any] | None = None) -> None:
        self.job = job or {}
        super().__init__(message, host)

    @property
    def errno(self) -> int | None:
        """The errno the job failed with (exc_info.errno), e.g. 209 EREBOOTREQUIRED; None if none."""
        info = self.job.get("exc_info")
        value = info.get("errno") if isinstance(info, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class JobUnknown(SessionError):
    """A job the session was waiting for cannot be found any more."""


class JobBusy(SessionError):
    """The job's lock queue was full: the server answered with the id of a job already queued
    for another call (other arguments) instead of running this one (docs/protocol.md §9)."""


class NotAJobError(SessionError):
    """Waiting for a job was asked of a method that is not one (it must not hang)."""

    @classmethod
    def for_reply(cls, method: str, reply: Any, host: str = "") -> NotAJobError:
        return cls(f"{method} is not a job: it returned {reply!r:.60} instead of a job id", host)


class InternalError(SessionError):
    """An unexpected exception on one host: a bug, reported on that host alone."""

    def __init__(self, error: BaseException, host: str = "") -> None:
        super().__init__(f"internal error: {error!r}", host)


class TransferError(SessionError):
    """An HTTP file transfer the server refused (.status, e.g. 401 or 410) or cut short (.status 0)."""

    def __init__(self, message: str, host: str = "", status: int = 0) -> None:
        self.status = status
        super().__init__(message, host)
