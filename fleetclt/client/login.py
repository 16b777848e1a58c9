"""Logging in over a Link: mechanisms, fallbacks, throttling and refusals.

`auth.login_ex` (PASSWORD_PLAIN or API_KEY_PLAIN) first; `auth.login` /
`auth.login_with_api_key` on servers without it (the legacy dialect always).
Every attempt spends a token of the auth budget (LoginBudget): the first is
taken before the socket opens, so no unauthenticated call goes out unless a
login follows at once (docs/protocol.md §6); EBUSY blocks the budget for the
server's window; a refused credential is never retried here.
REDIRECT (an HA standby controller) is no refusal: it raises StandbyError,
which the session does not remember, so it logs in again after a failover.
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    AuthError,
    InsecureCredentialError,
    RemoteCallError,
    SessionError,
    StandbyError,
    ThrottledError,
)
from ..protocol.api_keys import plain_api_key
from ..protocol.endpoint import Endpoint
from ..protocol.jsonrpc import is_method_missing, is_rate_limited
from ..secret import Secret
from .link import Link
from .throttle import AuthThrottle

log = logging.getLogger(__name__)
_HINTS = {"AUTH_ERR": "username or secret refused",
          "EXPIRED": "credential expired or revoked",
          "DENIED": "account may not use the API or is locked",
          "OTP_REQUIRED": "two-factor authentication is required (not supported yet)"}


@dataclass(frozen=True)
class Credentials:
    """Who to log in as. Secrets stay wrapped until the login frame is built.

    A plain string for `password` or `api_key` is wrapped in a literal Secret here,
    so `Credentials("admin", "pw")` works and still never shows "pw" in a repr.
    `allow_plain_api_key`: send the API key over ws:// too (see refuse_insecure_key).
    """

    username: str | None = None
    password: Secret | None = None
    api_key: Secret | None = None
    allow_plain_api_key: bool = False

    def __init__(self, username: str | None = None, password: Secret | str | None = None,
                 api_key: Secret | str | None = None, *, allow_plain_api_key: bool = False) -> None:
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", _wrapped(password, "password"))
        object.__setattr__(self, "api_key", _wrapped(api_key, "api_key"))
        object.__setattr__(self, "allow_plain_api_key", allow_plain_api_key)


def _wrapped(value: Secret | str | None, name: str) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise TypeError(f"Credentials {name} must be a str or a Secret, not {type(value).__name__}")


@dataclass(frozen=True)
class _Attempt:
    """A login call, and the older one to use on servers without it (None: there is none)."""

    kind: str  # what it logs in with, for messages: "password", "API key"
    method: str
    params: list[Any]
    fallback: str | None = None
    fallback_params: list[Any] | None = None


class LoginBudget:
    """The auth-budget tokens of one connect to server `key`.

    `take_first` runs before the socket opens; the login spends that token, and a
    fallback login (a server without auth.login_ex) takes another. A socket that
    never opened sent nothing: `refund` gives its token back.
    """

    def __init__(self, throttle: AuthThrottle, key: str, host: str) -> None:
        self._throttle, self._key, self._host = throttle, key, host
        self._held = False

    def take_first(self, max_wait: float | None, on_wait: Callable[[float], None] | None = None) -> None:
        """ThrottledError at once when the token would come later than `max_wait` seconds from now."""
        self._throttle.acquire(self._key, self._host, max_wait=max_wait, on_wait=on_wait)
        self._held = True

    def refund(self) -> None:
        if self._held:
            self._held = False
            self._throttle.refund(self._key)

    def spend(self) -> None:
        """A token for the next unauthenticated call: the one taken first, else a new one."""
        if self._held:
            self._held = False
        else:
            self._throttle.acquire(self._key, self._host)

    def refused(self) -> None:
        """The server answered EBUSY: nothing more is spent on it for its window."""
        self._throttle.block(self._key)


def will_log_in(creds: Credentials) -> bool:
    """A connect with these credentials logs in (and spends a token of the auth budget)."""
    return creds.api_key is not None or creds.password is not None


def log_in(link: Link, creds: Credentials, budget: LoginBudget, timeout: float) -> bool:
    """Log in with whatever credential is given; False when there is none."""
    if creds.api_key is not None:
        attempt = _api_key_attempt(creds)
    elif creds.password is not None:
        attempt = _password_attempt(creds)
    else:
        return False
    try:
        reply = _call(link, attempt, budget, timeout)
    except RemoteCallError as exc:
        if exc.errno != errno.EOPNOTSUPP:
            raise
        raise _level_refusal(link.host_name, attempt) from None
    _check_reply(link.host_name, reply)
    return True


def log_in_with_token(link: Link, token: Secret, budget: LoginBudget, timeout: float) -> bool:
    """A session token instead of the credential: TOKEN_PLAIN, or 24.10's auth.login_with_token.

    False when the host refused it, however (expired, its middleware restarted,
    another origin, a level that takes no tokens): the caller logs in with its
    credential then. Through the budget like any login (docs/protocol.md §5, §6).
    """
    params: list[Any]
    if link.dialect.has_login_ex:
        data = {"mechanism": "TOKEN_PLAIN", "token": token.reveal(), "login_options": {"user_info": False}}
        method, params = "auth.login_ex", [data]
    else:
        method, params = "auth.login_with_token", [token.reveal()]
    try:
        reply = _throttled(link, method, params, budget, timeout)
    except RemoteCallError as exc:
        log.debug("%s: token login refused (errno %s)", link.host_name, exc.errno)
        return False
    if isinstance(reply, dict) and reply.get("response_type") == "REDIRECT":
        raise _standby(link.host_name, reply.get("urls"))
    return reply is True or (isinstance(reply, dict) and reply.get("response_type") == "SUCCESS")


def _level_refusal(host: str, attempt: _Attempt) -> AuthError:
    """EOPNOTSUPP: the host's authenticator assurance level (STIG mode) does not take this
    mechanism at all, whatever the credential (docs/protocol.md §5): as final as a wrong secret."""
    return AuthError(f"login refused: the host's authenticator level (STIG) does not accept {attempt.kind} "
                     "logins; "
                     "log in with a password and a two-factor code instead", host)


def refuse_insecure_key(host: str, endpoint: Endpoint, creds: Credentials) -> None:
    """TrueNAS revokes a plain API key that reaches it over what it sees as an insecure origin
    (docs/protocol.md §5). Loopback counts as secure, but an SSH port forward, a container port
    mapping or a proxy makes a ws:// client on 127.0.0.1 look remote to it, and fleetclt cannot
    tell: so ws:// never carries the key unless the host opts in (`allow_plain_api_key`)."""
    if creds.api_key is None or endpoint.scheme == "wss" or endpoint.unix_path or creds.allow_plain_api_key:
        return
    raise InsecureCredentialError(
        "refusing to send the API key over ws://: the server revokes it for good unless it sees a "
        "secure origin; use wss:// (with tls_fingerprint for a self-signed certificate), or "
        "allow_plain_api_key: true (--allow-plain-api-key) if the server itself sees loopback "
        "(docs/inventory.md)", host)


def _password_attempt(creds: Credentials) -> _Attempt:
    if not creds.username:
        raise AuthError("a password login needs a username")
    assert creds.password is not None
    secret = creds.password.reveal()
    data = {"mechanism": "PASSWORD_PLAIN", "username": creds.username, "password": secret}
    return _Attempt("password", "auth.login_ex", [data], "auth.login", [creds.username, secret])


def _api_key_attempt(creds: Credentials) -> _Attempt:
    """API_KEY_PLAIN needs the key's owner; without one, the key-only login (deprecated) finds it."""
    assert creds.api_key is not None
    key = plain_api_key(creds.api_key)
    if not creds.username:
        return _Attempt("API key", "auth.login_with_api_key", [key])
    data = {"mechanism": "API_KEY_PLAIN", "username": creds.username, "api_key": key}
    return _Attempt("API key", "auth.login_ex", [data], "auth.login_with_api_key", [key])


def _call(link: Link, attempt: _Attempt, budget: LoginBudget, timeout: float) -> Any:
    """The legacy dialect has only the old methods; a new server without the new one gets the old."""
    if attempt.fallback is not None and not link.dialect.has_login_ex:
        return _throttled(link, attempt.fallback, attempt.fallback_params or [], budget, timeout)
    try:
        return _throttled(link, attempt.method, attempt.params, budget, timeout)
    except SessionError as exc:
        if attempt.fallback is None or not is_method_missing(exc):
            raise
    return _throttled(link, attempt.fallback, attempt.fallback_params or [], budget, timeout)


def _throttled(link: Link, method: str, params: list[Any], budget: LoginBudget, timeout: float) -> Any:
    budget.spend()
    try:
        return link.call(method, params, timeout)
    except SessionError as exc:
        if is_rate_limited(exc):
            budget.refused()
            raise ThrottledError("the host refused the login: rate limit exceeded (EBUSY); "
                                 "waiting out its 60 s window", link.host_name) from None
        raise


def _check_reply(host: str, reply: Any) -> None:
    if reply is True or (isinstance(reply, dict) and reply.get("response_type") == "SUCCESS"):
        return
    kind = str(reply.get("response_type")) if isinstance(reply, dict) else "AUTH_ERR"
    if kind == "REDIRECT":
        raise _standby(host, reply.get("urls"))
    raise AuthError(f"login failed: {_HINTS.get(kind, kind)}", host)


def _standby(host: str, urls: Any) -> StandbyError:
    """A standby controller answers REDIRECT before it looks at credentials (docs/protocol.md §5)."""
    listed = [url for url in urls if isinstance(url, str)] if isinstance(urls, list) else []
    where = ", ".join(listed) or "its peer (no address given)"
    return StandbyError(f"HA standby controller: the active one is at {where}", host, listed)
