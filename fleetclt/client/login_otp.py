"""Two-factor logins: which code to send, when, and how often (docs/protocol.md §5).

A password login of an account with two-factor authentication answers
OTP_REQUIRED (25.04 and later); the code then goes to `auth.login_ex_continue`
on the same connection. Each of those calls is unauthenticated and rate-limited
like the login itself, so the caller spends a token of the auth budget on each
(docs/protocol.md §6). 24.10 has no continuation: `auth.login` takes the code as
its third argument, so a code goes up front whenever one is configured.

Where codes come from, in order: `otp_secret` (a base32 TOTP secret: the code is
computed when it is needed), `otp_code` (one code given for this run), then
`otp_prompt` (a person at a terminal, asked again for as long as the server keeps
answering OTP_REQUIRED: 3 wrong codes on 25.04 and 25.10, one on 26.0). A
computed code is sent once per login and never retried: the server refused the
code of its own current step, so the next code from the same secret and clock
would be refused too, and each wrong code counts towards the account's lockout
on a STIG host. Instead of retrying, a code is only computed when it stays valid
for the round trip (protocol/otp.py `wait_for_fresh_code`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent

from ..errors import AuthError
from ..protocol.otp import code_at, totp_secret, wait_for_fresh_code
from ..secret import Secret

if TYPE_CHECKING:
    from .login import Credentials

Call = Callable[[str, list[Any]], Any]  # an unauthenticated call, its auth-budget token spent
Prompt = Callable[[str], str | None]      # asks a person for a code for this host; None: none given

NO_CODE = ("login failed: the account needs a two-factor code: set otp_secret (docs/inventory.md) "
           "or give --otp-code")
SECRET_REFUSED = ("login failed: the two-factor code computed from otp_secret was refused: check "
                  "otp_secret and this machine's clock (codes change every 30 s)")
CODE_REFUSED = "login failed: two-factor code refused"
LEGACY_REFUSED = ("login failed: username, password or two-factor code refused; if the password is right, "
                  "check otp_secret (or --otp-code) and this machine's clock")


def password_calls(creds: Credentials) -> int:
    """Unauthenticated calls a password login is expected to make: two with a code configured,
    where the server asks for it (the code prompted for is not known to be needed, so its call
    takes its token when it comes)."""
    configured = creds.otp_secret is not None or creds.otp_code is not None
    return 2 if creds.password is not None and configured else 1


def asks_for_code(reply: Any) -> bool:
    return isinstance(reply, dict) and reply.get("response_type") == "OTP_REQUIRED"


def totp_code(secret: Secret) -> str:
    """The current code of `secret`, once it stays valid long enough to reach the server."""
    normalized = totp_secret(secret)
    wait = wait_for_fresh_code(time.time())
    if wait:
        gevent.sleep(wait)
    return code_at(normalized, time.time())


def upfront_code(creds: Credentials) -> str | None:
    """The code for a login that cannot be continued (24.10's `auth.login`), if one is configured;
    no prompt: 24.10 never says whether the account needs a code."""
    if creds.otp_secret is not None:
        return totp_code(creds.otp_secret)
    return creds.otp_code.reveal() if creds.otp_code is not None else None


def continue_login(host: str, creds: Credentials, call: Call) -> Any:
    """Answer OTP_REQUIRED until the server stops asking; its last answer, unless that refuses.

    The server bounds the loop: it stops asking after a few wrong codes (docs/protocol.md §5).
    """
    computed = creds.otp_secret is not None
    code = upfront_code(creds)
    if code is None and creds.otp_prompt is not None:
        code = creds.otp_prompt(host)
    if not code:
        raise AuthError(NO_CODE, host)
    while code:
        reply = call("auth.login_ex_continue", [{"mechanism": "OTP_TOKEN", "otp_token": code}])
        if not asks_for_code(reply):
            if isinstance(reply, dict) and reply.get("response_type") == "AUTH_ERR":
                raise AuthError(_refused(computed), host)
            return reply
        if computed or creds.otp_prompt is None:
            break  # a prompt cannot fix the secret or the clock
        code = creds.otp_prompt(host)
    raise AuthError(_refused(computed), host)


def _refused(computed: bool) -> str:
    return SECRET_REFUSED if computed else CODE_REFUSED
