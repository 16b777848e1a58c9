"""One step of `auth.login_ex` per mechanism, with the answers and delays of each version.

From plugins/auth.py `login_ex` (25.04, 25.10) and plugins/auth_/login_ex_impl.py
(26.0); docs/protocol.md §5 states the rules. Each step returns the login_ex
answer; a failure waits the assurance level's failure delay first.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from .auth_levels import AssuranceLevel, assurance_level
from .auth_otp import code_is_valid, provisioning_uri, retries_left
from .auth_scram import ScramLogin, ScramRefused
from .auth_session import Credential
from .failures import CallError

if TYPE_CHECKING:
    from .connection import Connection

AUTH_ERR = {"response_type": "AUTH_ERR"}
DEFAULT_TOKEN_TTL = 600
LOGIN_COUNTERS = {"PASSWORD_PLAIN": "logins_password", "API_KEY_PLAIN": "logins_api_key",
                  "TOKEN_PLAIN": "logins_token", "OTP_TOKEN": "logins_two_factor", "SCRAM": "logins_scram"}


def level(conn: Connection) -> AssuranceLevel:
    return assurance_level(conn.host.config)


def refuse(conn: Connection, delay: float) -> dict[str, Any]:
    conn.host.counters.logins_failed += 1
    conn.host.clock.sleep(delay)
    return dict(AUTH_ERR)


def user_info(conn: Connection, username: str) -> dict[str, Any]:
    """The auth.me / user_info object of a logged-in user; two_factor_config as user.twofactor_config shows it
    (its provisioning URI carries the TOTP secret, plugins/account_/2fa.py)."""
    user = next((u for u in conn.host.data.users if u["username"] == username), None) or {}
    secret = conn.host.config.otp_secrets.get(username)
    uri = None if secret is None else provisioning_uri(secret, username, conn.host.name)
    attributes = ["LOCAL", "PASSWORD"] + (["2FA"] if secret else [])
    return {
        "pw_name": username, "pw_gecos": user.get("full_name", ""), "pw_dir": user.get("home", "/var/empty"),
        "pw_shell": user.get("shell", "/usr/bin/zsh"), "pw_uid": user.get("uid", 950),
        "pw_gid": user.get("uid", 950), "grouplist": [544], "sid": None, "source": "LOCAL", "local": True,
        "attributes": {},
        "two_factor_config": {"provisioning_uri": uri, "secret_configured": secret is not None,
                              "interval": 30, "otp_digits": 6},
        "privilege": {"roles": {"$set": ["FULL_ADMIN"]}, "web_shell": True},
        "account_attributes": attributes,
    }


def succeed(conn: Connection, credential: Credential, mechanism: str, options: dict[str, Any]) -> dict[str, Any]:
    """Log the connection in; the SUCCESS answer (26.0 adds `reconnect_token`)."""
    conn.login(credential)
    counters = conn.host.counters
    counters.logins_ok += 1
    setattr(counters, LOGIN_COUNTERS[mechanism], getattr(counters, LOGIN_COUNTERS[mechanism]) + 1)
    info = user_info(conn, credential.root.username) if options.get("user_info", True) else None
    reply: dict[str, Any] = {"response_type": "SUCCESS", "user_info": info, "authenticator": credential.level.name}
    if conn.host.config.version_info >= (26,):
        reply["reconnect_token"] = _reconnect_token(conn, credential) if options.get("reconnect_token") else None
    return reply


def _reconnect_token(conn: Connection, credential: Credential) -> str:
    """plugins/auth.py (26.0): a single-use token bound to the origin, ttl 600 s (at most the session age)."""
    ttl = min(DEFAULT_TOKEN_TTL, credential.level.max_session_age)
    return conn.host.tokens.create(ttl, {}, conn.origin, credential.root, single_use=True)


def _credential(conn: Connection, username: str, kind: str) -> Credential:
    return Credential(username, kind, level(conn), conn.host.clock.now())


def password_plain(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """PASSWORD_PLAIN: OTP_REQUIRED for a user with a TOTP secret; refused at level 2 without one.

    25.04 and 25.10 at level 2 wait twice for a wrong password: PAM's pam_faildelay,
    then the middleware's own delay (plugins/auth.py); 26.0 only once.
    """
    config, lvl, username = conn.host.config, level(conn), data["username"]
    if config.users.get(username) != data["password"]:
        if lvl.otp_mandatory and config.version_info < (26,):
            conn.host.clock.sleep(lvl.fail_delay())
        return refuse(conn, lvl.fail_delay())
    if username in config.otp_secrets:
        conn.login_ctx.reset()
        conn.login_ctx.next_mech, conn.login_ctx.username = "OTP_TOKEN", username
        return {"response_type": "OTP_REQUIRED", "username": username}
    if lvl.otp_mandatory:
        return refuse(conn, lvl.fail_delay())
    return succeed(conn, _credential(conn, username, "LOGIN_PASSWORD"), "PASSWORD_PLAIN",
                   data.get("login_options") or {})


def otp_token(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """OTP_TOKEN, only after OTP_REQUIRED: a wrong code may be retried as far as the version allows."""
    ctx, config = conn.login_ctx, conn.host.config
    username = ctx.username or ""
    ctx.next_mech = None
    if code_is_valid(config, username, data["otp_token"], conn.host.clock.wall()):
        ctx.reset()
        return succeed(conn, _credential(conn, username, "LOGIN_TWOFACTOR"), "OTP_TOKEN",
                       data.get("login_options") or {})
    ctx.otp_failures += 1
    refused = refuse(conn, level(conn).fail_delay())
    if not retries_left(config, ctx.otp_failures):
        ctx.reset()
        return refused
    ctx.next_mech = "OTP_TOKEN"
    return {"response_type": "OTP_REQUIRED", "username": username}


def api_key_plain(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """API_KEY_PLAIN: a key that works over an origin the server thinks insecure is revoked for good
    and answers EXPIRED, at once on 25.04 and 25.10, after the failure delay on 26.0."""
    host, key = conn.host, data["api_key"]
    owner = host.config.api_keys.get(key)
    if owner is None or owner != data["username"] or key in host.revoked_keys:
        return refuse(conn, level(conn).fail_delay())
    if not conn.secure:
        host.revoked_keys.add(key)  # 'Attempt to use over an insecure transport'
        host.counters.logins_failed += 1
        if host.config.version_info >= (26,):
            host.clock.sleep(level(conn).fail_delay())
        return {"response_type": "EXPIRED"}
    return succeed(conn, _credential(conn, owner, "API_KEY"), "API_KEY_PLAIN", data.get("login_options") or {})


def token_plain(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """TOKEN_PLAIN: an unknown, expired, foreign-origin or attribute-carrying token is AUTH_ERR."""
    tokens = conn.host.tokens
    token = tokens.get(data["token"], conn.origin)
    if token is None or token.attributes:
        return refuse(conn, level(conn).fail_delay())
    credential = _credential(conn, token.root.username, "TOKEN")
    credential.token = token
    if token.single_use:
        tokens.destroy(token)
    return succeed(conn, credential, "TOKEN_PLAIN", data.get("login_options") or {})


def scram(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    """SCRAM (26.0): SERVER_FIRST_RESPONSE, then SERVER_FINAL_RESPONSE with user_info on success."""
    ctx = conn.login_ctx
    if data["scram_type"] == "CLIENT_FIRST_MESSAGE":
        if conn.unix:
            raise CallError("unexpected origin for ScramPamAuthenticator")
        ctx.scram = ScramLogin(conn.host, conn.tls)
        try:
            server_first = ctx.scram.first(data["rfc_str"])
        except ScramRefused:
            ctx.reset()
            return refuse(conn, level(conn).fail_delay())
        ctx.next_mech = "SCRAM"
        return {"response_type": "SCRAM_RESPONSE", "scram_type": "SERVER_FIRST_RESPONSE",
                "rfc_str": server_first, "user_info": None}
    if ctx.next_mech != "SCRAM":
        raise CallError("SCRAM authentication is not in progress")
    exchange = ctx.scram
    ctx.reset()
    try:
        server_final = exchange.final(data["rfc_str"])
    except ScramRefused:
        return refuse(conn, level(conn).fail_delay())
    succeed(conn, _credential(conn, exchange.username, "API_KEY"), "SCRAM", {"user_info": False})
    return {"response_type": "SCRAM_RESPONSE", "scram_type": "SERVER_FINAL_RESPONSE", "rfc_str": server_final,
            "user_info": user_info(conn, exchange.username)}


STEPS = {"PASSWORD_PLAIN": password_plain, "API_KEY_PLAIN": api_key_plain, "TOKEN_PLAIN": token_plain,
         "OTP_TOKEN": otp_token, "SCRAM": scram}


def check_mechanism(conn: Connection, mechanism: str) -> None:
    """plugins/auth.py `check_auth_mechanism`: a step out of turn abandons the login in progress;
    OTP_TOKEN only when asked for; the level's mechanisms only (EOPNOTSUPP)."""
    ctx = conn.login_ctx
    if ctx.next_mech and mechanism != ctx.next_mech:
        ctx.reset()
    if ctx.next_mech is None and mechanism == "OTP_TOKEN":
        raise CallError(f"{mechanism}: no authentication in progress", errno.EINVAL)
    if mechanism != "OTP_TOKEN" and mechanism not in level(conn).mechanisms:
        raise CallError(f"{mechanism}: mechanism is not supported at current authenticator level.",
                        errno.EOPNOTSUPP)
