"""What a logged-in connection holds: its credential, with the limits of its
assurance level, and the state of a login still in progress.

From auth.py (UserSessionManagerCredentials, TokenSessionManagerCredentials)
and plugins/auth.py (SessionManager._app_on_message): every message first
checks the session; one past its age or idle limit is logged out silently,
so the call gets 207. A message refreshes the idle timer only while it has
not run out. A token session is valid while both the session the token came
from and the token itself are; its messages keep both alive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auth_levels import AssuranceLevel
    from .auth_tokens import Token


@dataclass
class Credential:
    """One authenticated credential (LOGIN_PASSWORD, LOGIN_TWOFACTOR, API_KEY, SCRAM, TOKEN)."""

    username: str
    kind: str
    level: AssuranceLevel
    login_at: float
    last_used: float = 0.0
    token: Token | None = None       # for TOKEN: the token it logged in with

    def __post_init__(self) -> None:
        self.last_used = self.login_at

    @property
    def root(self) -> Credential:
        """The credential that authorizes: for a token session, the one that made the token."""
        return self.token.root if self.token is not None else self

    def valid(self, now: float) -> bool:
        if self.token is not None:
            return self.root.valid(now) and self.token.valid(now)
        if now > self.login_at + self.level.max_session_age:
            return False
        idle = self.level.max_inactivity
        return idle is None or now <= self.last_used + idle

    def notify_used(self, now: float) -> None:
        if self.token is not None:
            self.root.notify_used(now)
            self.token.last_used = now
            return
        idle = self.level.max_inactivity
        if idle is not None and now < self.last_used + idle:
            self.last_used = now


@dataclass
class LoginInProgress:
    """AuthenticationContext: what a multi-step login (OTP, SCRAM) expects next."""

    next_mech: str | None = None
    username: str | None = None      # the user an OTP_TOKEN answers for
    otp_failures: int = 0
    scram: Any = None                # the exchange a CLIENT_FINAL_MESSAGE continues

    def reset(self) -> None:
        self.next_mech, self.username, self.otp_failures, self.scram = None, None, 0, None
