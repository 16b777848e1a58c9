"""Two-factor codes: TOTP (RFC 6238) as the middleware checks them, and how
many wrong codes one login may send.

From plugins/account_/2fa.py `verify_twofactor_token`: pyotp's TOTP with the
user's secret, 30 s steps, 6 digits, `valid_window` from the two-factor
settings (0 by default: only the current step). Wrong codes per login:
- 24.10: `auth.login(user, password, otp_token)` answers false; nothing to continue.
- 25.04 and 25.10 (plugins/auth.py, MAX_OTP_ATTEMPTS = 3): a wrong code
  answers OTP_REQUIRED again three times, the fourth AUTH_ERR; each after
  the level's failure delay.
- 26.0 (plugins/auth_/login_ex_impl.py `login_ex_oath_token`): the PAM
  conversation ends at the first wrong code with AUTH_ERR.
"""
from __future__ import annotations

import pyotp

from .config import HostConfig

MAX_OTP_ATTEMPTS = 3


def code_is_valid(config: HostConfig, username: str, code: str | None, now_epoch: float) -> bool:
    secret = config.otp_secrets.get(username)
    if secret is None:
        return False
    return bool(pyotp.TOTP(secret).verify(code or "", for_time=now_epoch, valid_window=config.otp_window))


def retries_left(config: HostConfig, failures: int) -> bool:
    """After `failures` wrong codes in this login, may the client send another?"""
    if config.version_info >= (26,):
        return False
    return failures <= MAX_OTP_ATTEMPTS


def provisioning_uri(secret: str, username: str, hostname: str) -> str:
    """user.provisioning_uri_internal: the otpauth:// URI an authenticator app scans."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=f"{username}-{hostname}@TrueNAS", issuer_name="iXsystems"))
