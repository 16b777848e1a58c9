"""Logging in over a Link: mechanisms, fallbacks, throttling and refusals.

`auth.login_ex` (PASSWORD_PLAIN or API_KEY_PLAIN) first; `auth.login` /
`auth.login_with_api_key` on servers without it (the legacy dialect always).
An API key goes with SCRAM where the host offers it (login_scram.py), else plain.
Every attempt spends a token of the auth budget (LoginBudget): the first is
taken before the socket opens, so no unauthenticated call goes out unless a
login follows at once (docs/protocol.md §6); EBUSY blocks the budget for the
server's window; a refused credential is never retried here. A two-factor
prompt (OTP_REQUIRED) is answered by login_otp.py, each answer a budgeted call.
REDIRECT (an HA standby controller) is no refusal: it raises StandbyError,
which the session does not remember, so it logs in again after a failover.
"""
from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    AuthError,
    InsecureCredentialError,
    RemoteCallError,
    SessionError,
    StandbyError,
    ThrottledError,
    ValidationError,
)
from ..protocol.api_keys import PrecomputedKey, api_key_material
from ..protocol.endpoint import Endpoint
from ..protocol.jsonrpc import is_method_missing, is_rate_limited
from ..secret import Secret
from .link import Link
from .login_otp import LEGACY_REFUSED, Prompt, asks_for_code, continue_login, password_calls, upfront_code
from .login_scram import HostOffers, bound_or_not, scram_principal
from .throttle import AuthThrottle

log = logging.getLogger(__name__)

_HINTS = {"AUTH_ERR": "username or secret refused",
          "EXPIRED": "credential expired or revoked",
          "DENIED": "account may not use the API or is locked"}


@dataclass(frozen=True)
class Credentials:
    """Who to log in as. Secrets stay wrapped until the login frame is built.

    A plain string for `password` or `api_key` is wrapped in a literal Secret here,
    so `Credentials("admin", "pw")` works and still never shows "pw" in a repr.
    `allow_plain_api_key`: send the API key over ws:// too (see refuse_insecure_key).
    Two-factor codes (login_otp.py): `otp_secret` is the base32 TOTP secret, `otp_code` one
    code given for this run, `otp_prompt` asks a person for one (single-host mode on a terminal).
    """

    username: str | None = None
    password: Secret | None = None
    api_key: Secret | None = None
    allow_plain_api_key: bool = False
    otp_secret: Secret | None = None
    otp_code: Secret | None = None
    otp_prompt: Prompt | None = field(default=None, repr=False, compare=False)

    def __init__(self, username: str | None = None, password: Secret | str | None = None,
                 api_key: Secret | str | None = None, *, allow_plain_api_key: bool = False,
                 otp_secret: Secret | str | None = None, otp_code: Secret | str | None = None,
                 otp_prompt: Prompt | None = None) -> None:
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", _wrapped(password, "password"))
        object.__setattr__(self, "api_key", _wrapped(api_key, "api_key"))
        object.__setattr__(self, "allow_plain_api_key", allow_plain_api_key)
        object.__setattr__(self, "otp_secret", _wrapped(otp_secret, "otp_secret"))
        object.__setattr__(self, "otp_code", _wrapped(otp_code, "otp_code"))
        object.__setattr__(self, "otp_prompt", otp_prompt)


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

    `take_first` runs before the socket opens and takes a token for each of the
    `calls` the login is expected to make (two when a two-factor code will follow
    the password; SCRAM's two login_ex: login_calls), so the connection never idles waiting for
    one; the login spends them, and a fallback login (a server without
    auth.login_ex) takes another. Tokens not spent (a socket that never opened, a
    login that needed fewer calls) go back with `refund`.
    """

    def __init__(self, throttle: AuthThrottle, key: str, host: str, calls: int = 1) -> None:
        self._throttle, self._key, self._host, self._calls = throttle, key, host, calls
        self._held = 0

    def take_first(self, max_wait: float | None, on_wait: Callable[[float], None] | None = None) -> None:
        """ThrottledError at once (nothing taken) when the tokens would come later than `max_wait` s from now."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        try:
            while self._held < self._calls:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._throttle.acquire(self._key, self._host, max_wait=left, on_wait=on_wait)
                self._held += 1
        except BaseException:
            self.refund()
            raise

    def refund(self) -> None:
        while self._held:
            self._held -= 1
            self._throttle.refund(self._key)

    def spend(self) -> None:
        """A token for the next unauthenticated call: one taken first, else a new one."""
        if self._held:
            self._held -= 1
        else:
            self._throttle.acquire(self._key, self._host)

    def refused(self) -> None:
        """The server answered EBUSY: nothing more is spent on it for its window."""
        self._throttle.block(self._key)


def login_calls(creds: Credentials, endpoint: Endpoint, offers: HostOffers) -> int:
    """The unauthenticated calls a connect's login is expected to make, each a budget token taken
    up front (refunded when not made): two when an API key may go with SCRAM, or when a two-factor
    code is configured to follow the password (login_otp.password_calls); else one."""
    if creds.api_key is None:
        return password_calls(creds)
    return 2 if offers.may_use_scram(endpoint) and _principal(creds) is not None else 1


def will_log_in(creds: Credentials) -> bool:
    """A connect with these credentials logs in (and spends a token of the auth budget)."""
    return creds.api_key is not None or creds.password is not None


@dataclass(frozen=True)
class ScramRoute:
    """Where an API key may go with SCRAM: the connected endpoint and what its host offers."""

    endpoint: Endpoint
    offers: HostOffers


def log_in(link: Link, creds: Credentials, budget: LoginBudget, timeout: float, route: ScramRoute) -> bool:
    """Log in with whatever credential is given; False when there is none."""
    try:
        return _log_in(link, creds, budget, timeout, route)
    finally:
        budget.refund()  # tokens taken for login_ex calls that never came (a plain key after all)


def _log_in(link: Link, creds: Credentials, budget: LoginBudget, timeout: float, route: ScramRoute) -> bool:
    if creds.api_key is not None:
        material = api_key_material(creds.api_key)  # once: a {file:} key is read at each reveal
        if _logged_in_with_scram(link, creds, material, budget, timeout, route):
            return True
        attempt = _api_key_attempt(creds, material)
    elif creds.password is not None:
        attempt = _password_attempt(creds, link.dialect.has_login_ex)
    else:
        return False
    reply = _first_reply(link, attempt, budget, timeout)
    if asks_for_code(reply):
        reply = continue_login(link.host_name, creds,
                               lambda method, params: _throttled(link, method, params, budget, timeout))
    if reply is False and len(attempt.fallback_params or ()) > 2:
        raise AuthError(LEGACY_REFUSED, link.host_name)
    _check_reply(link.host_name, reply)
    return True


def _first_reply(link: Link, attempt: _Attempt, budget: LoginBudget, timeout: float) -> Any:
    try:
        return _call(link, attempt, budget, timeout)
    except RemoteCallError as exc:
        if attempt.method == "auth.login_with_api_key" and is_method_missing(exc):
            raise AuthError("the host has no auth.login_with_api_key (removed in API v27): set the API key "
                            "owner's username", link.host_name) from None
        if exc.errno != errno.EOPNOTSUPP:
            raise
        raise _level_refusal(link.host_name, attempt) from None


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


def refuse_insecure_key(host: str, endpoint: Endpoint, creds: Credentials, offers: HostOffers | None = None) -> None:
    """TrueNAS revokes a plain API key that reaches it over what it sees as an insecure origin
    (docs/protocol.md §5). Loopback counts as secure, but an SSH port forward, a container port
    mapping or a proxy makes a ws:// client on 127.0.0.1 look remote to it, and fleetclt cannot
    tell: so ws:// never carries the key unless the host opts in (`allow_plain_api_key`).
    With `offers`, a key that may still go with SCRAM (it never crosses the wire) is let through:
    the login decides once it knows what the host offers."""
    if creds.api_key is None or endpoint.scheme == "wss" or endpoint.unix_path or creds.allow_plain_api_key:
        return
    named = _principal(creds) is not None
    if offers is not None and offers.may_use_scram(endpoint) and named:
        return
    no_scram = ("the host does not offer SCRAM (TrueNAS 26.0 and later), which never sends the key" if named
                else "SCRAM, which never sends the key, needs the key owner's username")
    raise InsecureCredentialError(
        "refusing to send the API key over ws://: the server revokes it for good unless it sees a "
        f"secure origin, and {no_scram}; use wss:// (with tls_fingerprint for a self-signed certificate), or "
        "allow_plain_api_key: true (--allow-plain-api-key) if the server itself sees loopback "
        "(docs/inventory.md)", host)


def _principal(creds: Credentials) -> str | None:
    """``user:KEY_ID`` for SCRAM, None when the key cannot go with SCRAM (no owner known)."""
    assert creds.api_key is not None
    return scram_principal(creds.username, api_key_material(creds.api_key))


def _logged_in_with_scram(link: Link, creds: Credentials, material: str | PrecomputedKey, budget: LoginBudget,
                          timeout: float, route: ScramRoute) -> bool:
    """True once logged in with SCRAM; False when the key goes plain instead, which is checked
    here to be allowed: refused (before it is sent) where the server could revoke it, and
    always for precomputed material, which only SCRAM can use."""
    principal = scram_principal(creds.username, material)
    if principal is not None and route.offers.may_use_scram(route.endpoint) and link.dialect.has_login_ex:
        if route.offers.scram is None:
            route.offers.scram = _offers_scram(link, budget, timeout)
        if route.offers.scram:
            def call(data: dict[str, Any]) -> Any:
                return _throttled(link, "auth.login_ex", [data], budget, timeout)
            try:
                reply = bound_or_not(link.host_name, call, principal, material, link.ws.peer_certificate(),
                                     route.offers)
            except ValidationError:  # SCRAM is no mechanism here: HA failover to an older controller, a rollback
                route.offers.scram = False
            else:
                _check_reply(link.host_name, reply)
                return True
    if isinstance(material, PrecomputedKey):
        raise AuthError("the API key file holds precomputed SCRAM material, which logs in only where the host "
                        "offers SCRAM (TrueNAS 26.0 and later, not over a Unix socket); give the raw key "
                        "(raw_key) for this host", link.host_name)
    refuse_insecure_key(link.host_name, route.endpoint, creds)
    return False


def _offers_scram(link: Link, budget: LoginBudget, timeout: float) -> bool:
    """auth.mechanism_choices, no login needed. It rides on the connect's first token like
    system.boot_id: the server counts each method apart (docs/protocol.md §6), and it is asked
    once per session. An error says no: 24.10 lacks the method, and 25.04.2 to 25.10 raise
    on it before login."""
    try:
        choices = link.call("auth.mechanism_choices", [], timeout)
    except SessionError as exc:
        if is_rate_limited(exc):
            budget.refused()
            raise _rate_limited(link.host_name) from None
        if isinstance(exc, RemoteCallError):
            return False
        raise
    return isinstance(choices, list) and "SCRAM" in choices


_warned_key_only = False


def _warn_key_only_login() -> None:
    """Once per process: auth.login_with_api_key goes with API v27 (docs/protocol.md §5)."""
    global _warned_key_only
    if not _warned_key_only:
        _warned_key_only = True
        log.warning("an API key without a username logs in with auth.login_with_api_key, which TrueNAS "
                    "removes in API v27 (and cannot use SCRAM): set the key owner's username")


def _password_attempt(creds: Credentials, continues: bool) -> _Attempt:
    """Where the login cannot be continued (24.10), auth.login takes the two-factor code up front."""
    if not creds.username:
        raise AuthError("a password login needs a username")
    assert creds.password is not None
    secret = creds.password.reveal()
    data = {"mechanism": "PASSWORD_PLAIN", "username": creds.username, "password": secret}
    code = None if continues else upfront_code(creds)
    return _Attempt("password", "auth.login_ex", [data], "auth.login",
                    [creds.username, secret] + ([code] if code else []))


def _api_key_attempt(creds: Credentials, key: str | PrecomputedKey) -> _Attempt:
    """API_KEY_PLAIN needs the key's owner; without one, the key-only login (deprecated) finds it."""
    assert isinstance(key, str)  # precomputed material never goes plain (_logged_in_with_scram)
    if not creds.username:
        _warn_key_only_login()
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
            raise _rate_limited(link.host_name) from None
        raise


def _rate_limited(host: str) -> ThrottledError:
    return ThrottledError("the host refused the login: rate limit exceeded (EBUSY); waiting out its 60 s window",
                          host)


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
