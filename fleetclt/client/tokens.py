"""Session tokens: a reconnect logs in with a token, not with the password or API key again.

After every login a session asks for a token (auth.generate_token: no
attributes, bound to our address, multi-use) and holds it in memory only,
wrapped in a Secret; its next connect logs in with it, so PAM and the audit
log see the credential itself once per session. What the design rests on
(docs/protocol.md §5):
- a token unused for its ttl dies, and a session logged in with a token
  destroys it when it ends: every token serves one connect, and a new one is
  asked for after every login;
- every generate_token is an audited call (from 25.04): the token held is
  replaced once half its ttl old only while the session is used (a caller's
  call since it was made). An idle session lets it lapse rather than write an
  audit record every few minutes for every host; its next connect, if the link
  drops, logs in with the credential, as it would have without tokens;
- tokens die with the middleware: a connect that finds a new boot id logs in
  with the credential without trying the token;
- a STIG host (assurance level 2) makes no multi-use tokens (EOPNOTSUPP): the
  session stops asking, quietly;
- a token only pays for a session that lives on: the first one is asked for
  `first_after` seconds (10 by default) after the session's first login, so a
  one-shot command (`fleetclt call` without the agent) never asks, and no host
  audits a token nobody will use. After a reconnect's login, at once.
The request goes out from the session's background greenlet once the caller's
first call is on the wire, outside the call window, and nobody waits for it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gevent.event import AsyncResult

from ..errors import ProtocolError, RemoteCallError
from ..secret import Secret
from .link import Link

log = logging.getLogger(__name__)

GENERATE_TOKEN = "auth.generate_token"
RETRY = 5.0  # seconds before asking again when a request could not be sent


def token_request(ttl: int, *, single_use: bool, has_single_use: bool) -> list[Any]:
    """auth.generate_token's arguments on a host of that kind: no attributes (a token with
    some cannot log in), bound to the caller's address; `single_use` exists from 25.04
    (without it a token lives its ttl, and 25.04's default is multi-use)."""
    return [ttl, {}, True, single_use] if has_single_use else [ttl, {}, True]


def token_of(reply: Any, host: str) -> Secret:
    """The token in a generate_token answer, wrapped at once; a bad answer never shows it."""
    if not isinstance(reply, str) or not reply:
        raise ProtocolError(f"{GENERATE_TOKEN} answered no token ({type(reply).__name__})", host)
    return Secret(reply)


@dataclass
class _Held:
    value: Secret = field(repr=False)
    boot_id: str | None   # tokens of another boot of the middleware are gone
    asked_at: float       # the server counts its ttl from about then


class SessionTokens:
    """The token one HostSession logs in again with.

    `ttl` None: no tokens at all. Every method runs in the session's greenlets or
    the connection's reader; none blocks.
    """

    def __init__(self, host: str, ttl: int | None, on_made: Callable[[], None], *, first_after: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._host, self._ttl, self._on_made, self._clock = host, ttl, on_made, clock
        self._first_after = first_after
        self._held: _Held | None = None
        self._asking: float | None = None  # since when a request is out
        self._retry_at = 0.0                # with no token held: when to ask (now, unless a send just failed)
        self._refused = ttl is None         # the host makes none (STIG), or the session wants none
        self._used = False                  # a caller's call since the token held (or asked for) was asked

    def take(self, boot_id: AsyncResult, timeout: float) -> Secret | None:
        """The token for this connect's login, if it may still work; None: log in with the credential.

        Taken either way: the session logged in with it destroys it when it ends.
        `boot_id` is the connect's system.boot_id reply, waited for only when a token is held.
        """
        held, self._held = self._held, None
        if held is None or self._clock() - held.asked_at >= self._lifetime():
            return None
        boot_id.wait(timeout)
        if not boot_id.successful() or boot_id.value != held.boot_id:
            log.debug("%s: the middleware restarted; its tokens are gone", self._host)
            return None
        return held.value

    def due_in(self, link: Link) -> float | None:
        """Seconds until a token should be asked for on `link`; None: none will be."""
        if self._refused or not link.is_logged_in:
            return None
        now = self._clock()
        if self._asking is not None:  # the next is due half a ttl after this request, answered or not
            due = self._asking + self._lifetime() / 2
            return due - now if due > now else None
        if self._held is None:
            return max(0.0, self._retry_at - now)
        if not self._used:
            return None  # idle: the token lapses (see the module's docstring)
        return max(0.0, self._held.asked_at + self._lifetime() / 2 - now)

    def logged_in(self, first: bool) -> None:
        """A login on a new connection: the next token is due now, or `first_after` from the first."""
        self._retry_at = self._clock() + (self._first_after if first else 0.0)

    def used(self, link: Link) -> None:
        """A caller's call goes out on `link`: the session is in use, so its token is kept fresh."""
        self._used = True
        if self._asking is None and not self._refused and self.due_in(link) == 0.0:
            self.ask(link)

    def ask(self, link: Link) -> None:
        """Ask for the next token on a logged-in connection, without waiting for the answer."""
        if self._refused or self._asking is not None or not link.is_logged_in:
            return
        assert self._ttl is not None
        params = token_request(self._ttl, single_use=False, has_single_use=link.dialect.has_login_ex)
        asked_at, boot_id = self._clock(), link.boot_id
        self._asking, self._used = asked_at, False
        settle = partial(self._settle, boot_id=boot_id, asked_at=asked_at)
        if not link.start_background(GENERATE_TOKEN, params, settle):
            self._asking = None
            self._retry_at = asked_at + min(RETRY, self._lifetime() / 2)

    def ask_if_due(self, link: Link) -> None:
        if self.due_in(link) == 0.0:
            self.ask(link)

    def _settle(self, reply: Any, error: BaseException | None, boot_id: str | None, asked_at: float) -> None:
        """In the connection's reader: hold the new token; a refusal ends tokens for this session."""
        self._asking = None
        if isinstance(error, RemoteCallError):
            self._refused = True  # EOPNOTSUPP: STIG makes no multi-use tokens
            log.debug("%s: no session tokens from this host (errno %s); logging in with the credential",
                      self._host, error.errno)
            return
        if error is not None:
            return  # the connection went: the next one asks again
        try:
            self._held = _Held(token_of(reply, self._host), boot_id, asked_at)
        except ProtocolError as exc:
            self._refused = True
            log.debug("%s", exc)
            return
        self._on_made()

    def _lifetime(self) -> float:
        assert self._ttl is not None
        return float(self._ttl)
