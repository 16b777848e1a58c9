"""Masking credentials in wire frames before they reach a log line.

`--debug` logs every frame; a login frame carries the password or API key in
clear. Frames are masked by meaning, not by pattern matching on text: any
value under a key that names a secret, and every positional argument of the
login methods that take secrets positionally. One secret travels inside a
string: the `auth_token=` of a download URL (core.download's answer), masked
wherever it appears.
"""
from __future__ import annotations

import re
from typing import Any

from . import ejson

MASK = "********"
SECRET_KEYS = frozenset({"password", "api_key", "token", "otp_token", "rfc_str", "key", "secret",
                         "passphrase", "old_password", "reconnect_token"})
POSITIONAL_SECRETS = frozenset({"auth.login", "auth.login_with_api_key", "auth.login_with_token",
                                "auth.login_ex", "auth.login_ex_continue"})
_URL_TOKEN = re.compile(r"(auth_token=)[^&#\s\"']+")


def mask_tokens(text: str) -> str:
    """`text` with the value of every `auth_token=` masked (docs/protocol.md §15)."""
    return _URL_TOKEN.sub(rf"\g<1>{MASK}", text)


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-named field masked."""
    if isinstance(value, dict):
        return {k: MASK if k.lower() in SECRET_KEYS and v is not None else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and "auth_token=" in value:
        return mask_tokens(value)
    return value


def redact_frame(text: str | bytes) -> str:
    """A frame fit for a log line: secret fields and login arguments masked."""
    try:
        message = ejson.loads(text)
    except ejson.DecodeError:
        return f"<{len(text)} characters, not JSON>"
    if isinstance(message, dict) and message.get("method") in POSITIONAL_SECRETS:
        params = message.get("params")
        if isinstance(params, list):
            message = {**message, "params": [p if isinstance(p, dict) else MASK for p in params]}
    return ejson.dumps(redact(message))
