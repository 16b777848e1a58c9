"""Two-factor codes as TrueNAS checks them: RFC 6238 TOTP, 30 s steps, 6 digits (docs/protocol.md §5).

Pure: the caller passes the time and the secret. The server accepts only the
code of its current step by default, so a code computed at the very end of a
step can reach it in the next one and be refused although the secret is right;
``wait_for_fresh_code`` says how long to wait for a code that stays valid long
enough to arrive.
"""
from __future__ import annotations

import base64
import binascii

import pyotp

from .api_keys import KeySource

INTERVAL, DIGITS = 30, 6
FRESH_FOR = 2.0  # seconds a code must stay valid once computed: the round trip, with room for a busy server


def normalize_secret(text: str) -> str | None:
    """The base32 secret as pyotp takes it (upper case, no spaces, dashes or padding), or None when
    `text` is not base32: authenticator apps show secrets in groups, in either case."""
    cleaned = "".join(text.split()).replace("-", "").upper().rstrip("=")
    if not cleaned:
        return None
    try:
        base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        return None
    return cleaned


def totp_secret(source: KeySource) -> str:
    """The normalized secret `source` holds; a ConfigError naming where it was written (never
    the value) when it is not base32."""
    normalized = normalize_secret(source.reveal())
    if normalized is None:
        raise source.error("the TOTP secret is not base32 (letters A-Z and digits 2-7)")
    return normalized


def code_at(secret: str, epoch: float) -> str:
    """The code of the step holding `epoch` (seconds since 1970) for a normalized secret."""
    return str(pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).at(epoch))


def wait_for_fresh_code(epoch: float, fresh_for: float = FRESH_FOR) -> float:
    """Seconds to wait before computing a code at `epoch`: 0, or the rest of a step that ends
    within `fresh_for` seconds."""
    left = INTERVAL - epoch % INTERVAL
    return left if left < fresh_for else 0.0
