"""Session tokens (auth.generate_token) as the middleware keeps them: in memory.

From plugins/auth.py (TokenManager, Token) and utils/origin.py (match): a
token lives while it is used within `ttl` seconds (every message of a session
logged in with it counts), dies with middlewared, and with `match_origin` is
only accepted from the same kind of origin with the same remote address (or
the same uid on a Unix socket). 25.04 added `single_use`. A session logged in
with a token destroys that token when it ends (auth.py TokenSessionManager-
Credentials.logout), on every version.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auth_session import Credential
    from .clock import SimClock

Origin = tuple[str, str]  # ("unix", "") or ("tcp", remote address)


@dataclass
class Token:
    value: str = field(repr=False)
    ttl: float
    attributes: dict[str, Any]
    origin: Origin | None            # None: usable from anywhere
    root: Credential                 # the credential that made it (a token's own root for a token session)
    single_use: bool
    last_used: float

    def valid(self, now: float) -> bool:
        return now < self.last_used + self.ttl


class TokenStore:
    """The tokens of one middlewared process; a restart starts an empty one."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._tokens: dict[str, Token] = {}

    def create(self, ttl: float, attributes: dict[str, Any], origin: Origin | None, root: Credential,
               single_use: bool) -> str:
        value = secrets.token_urlsafe(48)
        self._tokens[value] = Token(value, ttl, attributes, origin, root, single_use, self.clock.now())
        return value

    def get(self, value: str, origin: Origin) -> Token | None:
        token = self._tokens.get(value)
        if token is None:
            return None
        if not token.valid(self.clock.now()):
            del self._tokens[value]
            return None
        if token.origin is not None and token.origin != origin:
            return None
        return token

    def destroy(self, token: Token) -> None:
        self._tokens.pop(token.value, None)

    def __len__(self) -> int:
        return len(self._tokens)
