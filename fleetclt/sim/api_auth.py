"""auth.* methods of the simulator, per version (docs/protocol.md §5).

From plugins/auth.py at TS-24.10.2, TS-25.04.2.6, TS-25.10.1 and
TS-26.0.0-BETA.2/3. 24.10 has its own login methods, each answering a bool;
from 25.04 they are wrappers over `auth.login_ex`, whose steps live in
auth_mechanisms.py.
"""
from __future__ import annotations

import errno
import random
from typing import TYPE_CHECKING, Any

from .api_core import ui_urls
from .auth_mechanisms import STEPS, check_mechanism, level, succeed, user_info
from .auth_otp import code_is_valid
from .auth_session import Credential
from .config import release_tuple
from .failures import CallError, ValidationErrors
from .registry import Param, api

if TYPE_CHECKING:
    from .connection import Connection

NO_AUTH = {"auth_required": False}
SINCE_25_04 = (25, 4)
_CHOICES_NEED_LOGIN = (release_tuple("25.04.2"), release_tuple("26.0.0-BETA.1"))  # see mechanism_choices
_FIELDS = {"PASSWORD_PLAIN": ("username", "password"), "API_KEY_PLAIN": ("username", "api_key"),
           "TOKEN_PLAIN": ("token",), "OTP_TOKEN": ("otp_token",), "SCRAM": ("scram_type", "rfc_str")}
_SCRAM_TYPES = ("CLIENT_FIRST_MESSAGE", "CLIENT_FINAL_MESSAGE")


def _mechanisms(conn: Connection) -> tuple[str, ...]:
    """The tags login_ex's schema knows (api/vX/auth.py AuthLoginExArgs); SCRAM from 26.0."""
    tags = ("API_KEY_PLAIN", "PASSWORD_PLAIN", "TOKEN_PLAIN", "OTP_TOKEN")
    return tags + ("SCRAM",) if conn.host.config.version_info >= (26,) else tags


def _check_login_data(conn: Connection, data: dict[str, Any]) -> None:
    mechanism = data.get("mechanism")
    if mechanism is None:
        raise ValidationErrors.single("login_data.mechanism", "Field required")
    if mechanism not in _mechanisms(conn):
        tags = ", ".join(f"'{m}'" for m in _mechanisms(conn))
        raise ValidationErrors.single(
            "login_data",
            f"Input tag '{mechanism}' found using 'mechanism' does not match any of the expected tags: {tags}")
    fields = _FIELDS[mechanism]
    errors = [(f"login_data.{mechanism}.{name}", "Field required", errno.EINVAL)
              for name in fields if name not in data]
    errors += [(f"login_data.{mechanism}.{name}", "Input should be a valid string", errno.EINVAL)
               for name in fields if name in data and not isinstance(data[name], str)]
    if mechanism == "SCRAM" and isinstance(data.get("scram_type"), str) and data["scram_type"] not in _SCRAM_TYPES:
        errors.append(("login_data.SCRAM.scram_type",
                       "Input should be 'CLIENT_FIRST_MESSAGE' or 'CLIENT_FINAL_MESSAGE'", errno.EINVAL))
    if errors:
        raise ValidationErrors(errors)


def _redirect(conn: Connection) -> dict[str, Any] | None:
    """REDIRECT from a BACKUP whose peer answers as MASTER, before credentials are looked at.

    plugins/auth.py `login_ex` (25.04+): on a licensed HA system whose own status
    is BACKUP it asks the peer's failover.status; MASTER gives REDIRECT with the
    peer's UI URLs (failover.get_ips -> system.general.get_ui_urls). A peer that
    does not answer lets the login go on as usual.
    """
    host, peer = conn.host, conn.host.peer
    if host.failover_role != "BACKUP" or peer is None or not peer.online or peer.failover_role != "MASTER":
        return None
    return {"response_type": "REDIRECT", "urls": ui_urls(peer)}


def _login_ex(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    redirect = _redirect(conn)
    if redirect is not None:
        return redirect
    check_mechanism(conn, data["mechanism"])
    return STEPS[data["mechanism"]](conn, data)


@api("auth.login_ex", Param("login_data", (dict,)), **NO_AUTH)
def login_ex(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    _check_login_data(conn, data)
    return _login_ex(conn, data)


@api("auth.login_ex_continue", Param("login_data", (dict,)), since=SINCE_25_04, **NO_AUTH)
def login_ex_continue(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """Takes only OTP_TOKEN (api/vX/auth.py AuthLoginExContinueArgs), then is login_ex."""
    if data.get("mechanism") != "OTP_TOKEN":
        raise ValidationErrors.single("login_data.mechanism", "Input should be 'OTP_TOKEN'")
    _check_login_data(conn, data)
    return _login_ex(conn, data)


@api("auth.mechanism_choices", since=SINCE_25_04, **NO_AUTH)
def mechanism_choices(conn: Connection) -> list[str]:
    """The mechanisms of the host's assurance level, in the server's order.

    From TS-25.04.2 to the last 25.10 the method reads `may_create_auth_token` of the
    connection's credential without checking there is one, so before a login it fails
    with the AttributeError's text as an EINVAL "Method call error" (rpc.py
    process_method_call); 26.0 checks first. It needs no login on 25.04.0/.1 and 26.0.
    """
    if conn.credential is None and _CHOICES_NEED_LOGIN[0] <= conn.host.config.release < _CHOICES_NEED_LOGIN[1]:
        raise CallError("'NoneType' object has no attribute 'may_create_auth_token'", errno.EINVAL)
    return list(level(conn).mechanisms)


def _legacy_fail(conn: Connection) -> None:
    """24.10's auth.login failure delay: random.randint(1, 5) whole seconds."""
    conn.host.counters.logins_failed += 1
    conn.host.clock.sleep(random.randint(1, 5))


def _legacy_login(conn: Connection, username: str, password: str, otp_token: str | None) -> bool:
    """24.10: the code is checked whenever the user has a secret, even after a wrong password."""
    config = conn.host.config
    ok = config.users.get(username) == password
    if username in config.otp_secrets:
        ok = code_is_valid(config, username, otp_token, conn.host.clock.wall()) and ok
    if not ok:
        _legacy_fail(conn)
        return False
    credential = Credential(username, "LOGIN_PASSWORD", level(conn), conn.host.clock.now())
    succeed(conn, credential, "PASSWORD_PLAIN", {"user_info": False})
    return True


@api("auth.login", Param("username", (str,)), Param("password", (str,)), Param("otp_token", (str, type(None)), None),
     **NO_AUTH)
def login(conn: Connection, username: str, password: str, otp_token: str | None) -> bool:
    """From 25.04 a wrapper over login_ex (REDIRECT gives false; OTP_REQUIRED is continued with
    `otp_token` when given); 24.10's has no HA check."""
    if conn.host.config.legacy_only:
        return _legacy_login(conn, username, password, otp_token)
    reply = _login_ex(conn, {"mechanism": "PASSWORD_PLAIN", "username": username, "password": password,
                             "login_options": {"user_info": False}})
    if reply["response_type"] == "OTP_REQUIRED" and otp_token is not None:
        reply = _login_ex(conn, {"mechanism": "OTP_TOKEN", "otp_token": otp_token,
                                 "login_options": {"user_info": False}})
    return bool(reply["response_type"] == "SUCCESS")


@api("auth.login_with_api_key", Param("api_key", (str,)), **NO_AUTH)
def login_with_api_key(conn: Connection, api_key: str) -> bool:
    """24.10: no failure delay and no revocation (api_key.authenticate). From 25.04 a key id that
    does not exist waits 1-2 s; an existing one goes through login_ex as its owner."""
    config = conn.host.config
    owner = config.api_keys.get(api_key)
    if config.legacy_only:
        if owner is None:
            conn.host.counters.logins_failed += 1
            return False
        succeed(conn, Credential(owner, "API_KEY", level(conn), conn.host.clock.now()), "API_KEY_PLAIN",
                {"user_info": False})
        return True
    key_id = api_key.split("-", 1)[0]
    owner = next((o for k, o in config.api_keys.items() if k.split("-", 1)[0] == key_id), None)
    if owner is None:
        conn.host.counters.logins_failed += 1
        conn.host.clock.sleep(random.uniform(1.0, 2.0))
        return False
    reply = _login_ex(conn, {"mechanism": "API_KEY_PLAIN", "username": owner, "api_key": api_key,
                             "login_options": {"user_info": False}})
    return bool(reply["response_type"] == "SUCCESS")


@api("auth.login_with_token", Param("token", (str,)), **NO_AUTH)
def login_with_token(conn: Connection, token: str) -> bool | None:
    """24.10: false at once for an unknown token, null (sic) for one with attributes. From 25.04
    a wrapper over login_ex's TOKEN_PLAIN, with its failure delay."""
    if not conn.host.config.legacy_only:
        reply = _login_ex(conn, {"mechanism": "TOKEN_PLAIN", "token": token, "login_options": {"user_info": False}})
        return bool(reply["response_type"] == "SUCCESS")
    found = conn.host.tokens.get(token, conn.origin)
    if found is None or found.attributes:
        conn.host.counters.logins_failed += 1
        return None if found is not None else False
    credential = Credential(found.root.username, "TOKEN", level(conn), conn.host.clock.now())
    credential.token = found
    succeed(conn, credential, "TOKEN_PLAIN", {"user_info": False})
    return True


def _generate_token(conn: Connection, ttl: int | None, attrs: dict[str, Any], match_origin: bool,
                    single_use: bool) -> str:
    assert conn.credential is not None
    origin = conn.origin if match_origin else None
    return conn.host.tokens.create(600 if ttl is None else ttl, attrs, origin, conn.credential.root, single_use)


@api("auth.generate_token", Param("ttl", (int, type(None)), 600), Param("attrs", (dict,), {}),
     Param("match_origin", (bool,), True), until=SINCE_25_04, **NO_AUTH)
def generate_token_24_10(conn: Connection, ttl: int | None, attrs: dict[str, Any], match_origin: bool) -> str:
    """24.10: no login needed to call it, but without one it raises EACCES."""
    if conn.user is None:
        raise CallError("Not authenticated", errno.EACCES)
    return _generate_token(conn, ttl, attrs, match_origin, single_use=False)


@api("auth.generate_token", Param("ttl", (int, type(None)), 600), Param("attrs", (dict,), {}),
     Param("match_origin", (bool,), True), Param("single_use", (bool,), False), since=SINCE_25_04)
def generate_token(conn: Connection, ttl: int | None, attrs: dict[str, Any], match_origin: bool,
                   single_use: bool) -> str:
    """From 25.04: `single_use`; above level 1 only single-use tokens (EOPNOTSUPP)."""
    if not single_use and level(conn).name != "LEVEL_1":
        raise CallError("Multi-use authentication tokens are not supported at current authenticator level.",
                        errno.EOPNOTSUPP)
    return _generate_token(conn, ttl, attrs, match_origin, single_use)


@api("auth.me")
def me(conn: Connection) -> dict[str, Any]:
    assert conn.credential is not None  # the auth gate ran
    return user_info(conn, conn.credential.root.username)


@api("auth.logout")
def logout(conn: Connection) -> bool:
    """plugins/auth.py `logout`: from 25.04 source subscriptions end with a notice (24.10 keeps
    them); plain event subscriptions stay and keep receiving events (main.py `send_event`
    checks no login). A token session takes its token with it."""
    if conn.host.config.version_info >= SINCE_25_04:
        conn.host.sources.logout(conn)
    conn.logout()
    return True
