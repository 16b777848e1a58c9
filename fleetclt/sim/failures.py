"""Server-side errors and their exact wire shapes (JSON-RPC and legacy DDP).

Mirrors middlewared's CallError / ValidationErrors and the way rpc.py renders
them (docs/protocol.md §3): `reason` carries the `[ERRNAME]` prefix,
-32602 always says errno 22 with the real errnos in `extra` triples.
"""
from __future__ import annotations

import errno as errno_mod
import traceback
from collections.abc import Sequence
from typing import Any

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601
INVALID_PARAMS, TOO_MANY_CONCURRENT_CALLS, CALL_ERROR = -32602, -32000, -32001

ENOMETHOD, ENOTAUTHENTICATED, EREBOOTREQUIRED, EHAUNAVAILABLE = 201, 207, 209, 210
TRUENAS_ERRNAMES = {
    201: "ENOMETHOD", 202: "ESERVICESTARTFAILURE", 203: "EALERTCHECKERUNAVAILABLE",
    204: "EREMOTENODEERROR", 205: "EDATASETISLOCKED", 206: "EINVALIDRRDTIMESTAMP",
    207: "ENOTAUTHENTICATED", 208: "ESSLCERTVERIFICATIONERROR", 209: "EREBOOTREQUIRED",
    210: "EHAUNAVAILABLE",
}


def errname(code: int | None) -> str:
    """errno.errorcode first, then the TrueNAS names, then EUNKNOWN (as the server does)."""
    if code is None:
        return "EUNKNOWN"
    return errno_mod.errorcode.get(code) or TRUENAS_ERRNAMES.get(code, "EUNKNOWN")


class CallError(Exception):
    """A method failed; sent as -32001 "Method call error"."""

    def __init__(self, errmsg: str, errno: int = errno_mod.EFAULT, extra: Any = None) -> None:
        super().__init__(errmsg)
        self.errmsg, self.errno, self.extra = errmsg, errno, extra

    def __str__(self) -> str:
        return f"[{errname(self.errno)}] {self.errmsg}"


class ValidationErrors(Exception):
    """One or more invalid arguments; sent as -32602 "Invalid params"."""

    def __init__(self, errors: Sequence[tuple[str | None, str, int]]) -> None:
        super().__init__(errors)
        self.errors: list[list[Any]] = [list(item) for item in errors]

    @classmethod
    def single(cls, attribute: str | None, message: str, errno: int = errno_mod.EINVAL) -> ValidationErrors:
        return cls([(attribute, message, errno)])

    def __str__(self) -> str:
        return "".join(f"[{errname(e)}] {a}: {m}\n" for a, m, e in self.errors)


class InstanceNotFound(ValidationErrors):
    """middlewared's single ValidationError for a missing object: attribute None, errno ENOENT."""

    def __init__(self, message: str) -> None:
        super().__init__([(None, message, errno_mod.ENOENT)])

    def __str__(self) -> str:
        return super().__str__().rstrip("\n")


class JobAborted(Exception):
    """Raised inside a job greenlet by core.job_abort."""


def trace_of(exc: BaseException) -> dict[str, str]:
    """The {class, formatted, repr} trace object of master's error replies."""
    formatted = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"class": type(exc).__name__, "formatted": formatted, "repr": repr(exc)}


def truenas_error(exc: BaseException) -> dict[str, Any]:
    """The `data` object of a -32001 or -32602 reply."""
    if isinstance(exc, ValidationErrors):
        return {"error": errno_mod.EINVAL, "errname": "EINVAL", "reason": str(exc),
                "trace": trace_of(exc), "extra": exc.errors}
    if isinstance(exc, CallError):
        return {"error": exc.errno, "errname": errname(exc.errno), "reason": str(exc),
                "trace": trace_of(exc), "extra": exc.extra}
    reason = str(exc) or repr(exc)  # rpc.py: no [EINVAL] prefix for an exception that is no CallError
    return {"error": errno_mod.EINVAL, "errname": "EINVAL", "reason": reason,
            "trace": trace_of(exc), "extra": None}


def jsonrpc_error(exc: BaseException) -> dict[str, Any]:
    """The `error` member of a JSON-RPC reply for an exception raised by a method."""
    if isinstance(exc, ValidationErrors):
        return {"code": INVALID_PARAMS, "message": "Invalid params", "data": truenas_error(exc)}
    return {"code": CALL_ERROR, "message": "Method call error", "data": truenas_error(exc)}


def unsubscribe_error(exc: BaseException, legacy: bool = False) -> dict[str, Any]:
    """The error of an ended event-source subscription: no trace (rpc.py notify_unsubscribed).

    A non-CallError gives EINVAL with str(exc) as it is; on 24.10 (`legacy`) a
    validation failure says EAGAIN with type VALIDATION (manager.py AppSubscriber).
    """
    if isinstance(exc, ValidationErrors):
        code = errno_mod.EAGAIN if legacy else errno_mod.EINVAL
        data = {"error": code, "errname": errname(code), "reason": str(exc), "trace": None, "extra": exc.errors}
        return {**data, "type": "VALIDATION"} if legacy else data
    if isinstance(exc, CallError):
        data = {"error": exc.errno, "errname": errname(exc.errno), "reason": str(exc), "trace": None,
                "extra": exc.extra}
    else:
        data = {"error": errno_mod.EINVAL, "errname": "EINVAL", "reason": str(exc), "trace": None, "extra": None}
    return {**data, "type": None} if legacy else data


def ddp_error(exc: BaseException) -> dict[str, Any]:
    """The `error` member of a legacy `msg: result` reply (docs/protocol.md §12)."""
    data = truenas_error(exc)
    if isinstance(exc, ValidationErrors):
        code = exc.errors[0][2] if len(exc.errors) == 1 else errno_mod.EAGAIN
        data.update(error=code, errname=errname(code), type="VALIDATION")
    else:
        data["type"] = None
    return data


def job_exc_info(exc: BaseException) -> dict[str, Any]:
    """The job dict's `exc_info` for a failed job (job.py `__encode__`)."""
    if isinstance(exc, ValidationErrors):
        single = exc.errors[0][2] if isinstance(exc, InstanceNotFound) else None  # a ValidationError has one
        return {"repr": repr(exc), "type": "VALIDATION", "errno": single, "extra": exc.errors}
    if isinstance(exc, CallError):
        return {"repr": repr(exc), "type": type(exc).__name__, "errno": exc.errno, "extra": exc.extra}
    return {"repr": repr(exc), "type": type(exc).__name__, "errno": None, "extra": None}
