"""One client connection to a simulated host, whatever its dialect.

The dialects (rpc.py for /api/current, ddp.py for the legacy /websocket) only
frame messages; everything a call goes through on the real server lives here:
method lookup, the auth gate (207), the rate limiter for unauthenticated calls,
argument checks, injected latency or stalls, and job start / new-style wait.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import random
import socket
import uuid
from typing import TYPE_CHECKING, Any

import gevent
from gevent.lock import Semaphore

from ..protocol import ejson
from .auth_session import Credential, LoginInProgress
from .failures import ENOMETHOD, ENOTAUTHENTICATED, CallError
from .registry import Method, lookup
from .versions import endpoint_api_version
from .workers import CallWorkers

if TYPE_CHECKING:
    from .host import SimHost
    from .jobs import Job

log = logging.getLogger(__name__)

ANON_LIMIT, AUTH_LIMIT, EXTENDED_LIMIT = 8192, 65536, 2097152  # utils/limits.py MsgSizeLimit


class MethodMissing(Exception):
    """No such method: -32601 on JSON-RPC."""


class Connection:
    """State the server keeps per websocket: login, options, subscriptions."""

    def __init__(self, host: SimHost, ws: Any, environ: dict[str, Any]) -> None:
        self.host, self.ws = host, ws
        self.ip: str = environ.get("REMOTE_ADDR") or ""
        self.unix = not self.ip
        self.tls = environ.get("wsgi.url_scheme") == "https"
        if host.config.proxied_from and not self.unix:
            # What middlewared sees behind a port forward or a TLS-ending proxy (HostConfig.proxied_from).
            self.ip, self.tls = host.config.proxied_from, False
        self.api_version = endpoint_api_version(environ.get("PATH_INFO", ""), host.config.version)
        self.user: dict[str, Any] | None = None
        self.credential: Credential | None = None
        self.login_ctx = LoginInProgress()
        self.legacy_jobs = True
        self.subscriptions: dict[str, str] = {}
        self.closed = False
        self._send_lock = Semaphore()
        self._calls = CallWorkers()

    # -- transport ---------------------------------------------------------
    def serve(self) -> None:
        """Read frames until the socket closes or a size limit closes it (docs/protocol.md §2)."""
        while not self.closed:
            frame = self._receive()
            if frame is None:
                return
            if not isinstance(frame, str):
                return self.close(1003, "Invalid websocket message type: BINARY")
            if len(frame) > AUTH_LIMIT or (self.user is None and len(frame) > ANON_LIMIT):
                refusal = self._too_big(frame)
                if refusal:
                    return self.close(*refusal)
            self.handle_text(frame)

    def _too_big(self, frame: str) -> tuple[int, str] | None:
        """utils/limits.py parse_message, in its order: the close code and reason, or None to go on.

        8192 before login (1007); 2 MiB for anything; 65536 except for the few
        methods that carry files (1009). A message that does not parse is left to
        the dialect (its usual parse error) as the server does.
        """
        if self.user is None and len(frame) > ANON_LIMIT:
            return 1007, "Anonymous connection max message length is 8 kB"
        if len(frame) > EXTENDED_LIMIT:
            return 1009, "Max message length is 64 kB"
        try:
            message = ejson.loads(frame)
        except ejson.DecodeError:
            return None
        if isinstance(message, dict) and message.get("method") in self._extended_methods():
            return None
        return 1009, "Max message length is 64 kB"

    def _extended_methods(self) -> frozenset[str]:
        """limits.py MSG_SIZE_EXTENDED_METHODS: failover.datastore.sql joined in 25.04.1."""
        if self.host.config.version_info >= (25, 4, 1):
            return frozenset({"filesystem.file_receive", "failover.datastore.sql"})
        return frozenset({"filesystem.file_receive"})

    def _receive(self) -> Any:
        """The next frame, or None when the socket closed or sat idle past `faults.idle_timeout`.

        The idle cut is no middlewared rule: it models a reverse proxy or load
        balancer in front of the host (nginx's proxy_read_timeout, a cloud load
        balancer's idle timeout), which closes the TCP connection with no close frame.
        """
        idle = self.host.faults.idle_timeout
        if not idle:
            return self.ws.receive()
        with gevent.Timeout(idle / self.host.clock.speed, False):
            return self.ws.receive()
        self.drop()
        return None

    def handle_text(self, frame: str) -> None:
        raise NotImplementedError

    @property
    def secure(self) -> bool:
        """utils/origin.py `secure_transport`: TLS, a Unix socket, or loopback (unless the host plays remote)."""
        loopback = self.ip.startswith("127.") or self.ip == "::1"
        return self.tls or self.unix or (loopback and self.host.config.loopback_secure)

    @property
    def origin(self) -> tuple[str, str]:
        """What a token's `match_origin` compares: the remote address, or the Unix socket."""
        return ("unix", "") if self.unix else ("tcp", self.ip)

    def send(self, text: str) -> None:
        """Send one text frame; a dead socket just ends the connection."""
        if self.closed:
            return
        with self._send_lock:
            try:
                self.ws.send(text)
            except Exception:  # geventwebsocket raises WebSocketError or socket errors
                self.closed = True

    def close(self, code: int, reason: str = "") -> None:
        """Close with a close frame carrying `code`."""
        if not self.closed:
            self.closed = True
            with self._send_lock, contextlib.suppress(Exception):
                self.ws.close(code, reason)
        self._kill_socket()

    def drop(self) -> None:
        """Vanish without a close frame, as a crashed host or a cut cable does."""
        self.closed = True
        self.ws.closed = True
        self._kill_socket()

    def _kill_socket(self) -> None:
        sock = getattr(self.ws.handler, "socket", None)
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def spawn_call(self, func: Any, *args: Any) -> None:
        """Run one call concurrently with the others; they die with the connection."""
        self._calls.submit(func, args)

    def finish(self) -> None:
        """The socket is gone: cancel pending calls (26.0 behaviour), forget the login."""
        self.closed = True
        self._calls.kill()
        self.logout()
        self.subscriptions.clear()
        self.host.sources.drop(self)

    # -- calls ---------------------------------------------------------------
    def invoke(self, name: str, params: list[Any], message_id: Any) -> Any:
        """Run a method as the real server would; raises CallError / ValidationErrors."""
        self._check_session()
        method = lookup(name, self.host.config.version_info)
        if method is None or not self.host.has_method(name):
            raise MethodMissing(name)
        counters = self.host.counters
        counters.calls += 1
        counters.calls_by_method[name] += 1
        if self.user is None:
            counters.unauthenticated_calls += 1
        if self.host.needs_auth(method) and self.user is None:
            raise CallError("Not authenticated", ENOTAUTHENTICATED)
        if self._counts_against_limiter(method):
            self._rate_limit(name)
        if self.api_version is not None and method.since > self.api_version:
            # No model of it in that API version: LegacyAPIMethod._adapt_params raises MethodNotFoundError.
            service, _, attribute = name.rpartition(".")
            raise CallError(f"Method {attribute!r} not found in {service!r}", ENOMETHOD)
        args = method.bind(params)
        self.host.delay_call(name)
        if method.job:
            return self._start_job(method, args, message_id)
        return method.func(self, *args)

    def _counts_against_limiter(self, method: Method) -> bool:
        if method.auth_required or not method.rate_limit or self.unix:
            return False
        return self.user is None or self.host.config.legacy_only

    def _rate_limit(self, name: str) -> None:
        if self.host.limiter.allow(name, self.ip):
            return
        self.host.counters.rate_limited += 1
        self.host.clock.sleep(round(random.uniform(1.0, 10.0), 2))
        raise CallError("Rate Limit Exceeded", errno.EBUSY)

    def submit_job(self, method: Method, args: list[Any], message_id: Any = None) -> Job:
        """Queue `method` as this connection's job, through its lock queue like any job call.

        core.bulk's sub-jobs come here too: the middleware runs each one through
        `call_with_audit`, i.e. the same job queue and locks (service/core_service.py `bulk`).
        """
        return self.host.engine.submit(
            method.name, args, lambda job: method.func(self, job, *args),
            message_id=message_id, credentials=self.job_credentials(), limited=not self.full_admin(),
            transient=method.transient or self.host.faults.transient_jobs,
            lock=method.lock(*args) if method.lock else None, lock_queue_size=method.lock_queue_size,
            description=method.description(*args) if method.description else None,
            message_ids=self.host.config.new_style_jobs)

    def _start_job(self, method: Method, args: list[Any], message_id: Any) -> Any:
        job = self.submit_job(method, args, message_id)
        if self.legacy_jobs:
            return job.id
        job.finished.wait()
        if job.failure is not None:
            raise job.failure
        return job.result

    def job_credentials(self) -> dict[str, Any] | None:
        if self.user is None:
            return None
        data = {k: self.user[k] for k in ("username", "login_id", "login_at")}
        return {"type": self.user["type"], "data": data}

    def login(self, credential: Credential) -> None:
        """Bind this connection to a user session."""
        self.credential = credential
        self.user = {"username": credential.root.username, "type": credential.kind, "login_id": str(uuid.uuid4()),
                     "login_at": self.host.utcnow()}

    def logout(self) -> None:
        """End the session; one logged in with a token destroys that token (auth.py)."""
        credential, self.credential, self.user = self.credential, None, None
        if credential is not None and credential.token is not None:
            self.host.tokens.destroy(credential.token)

    def _check_session(self) -> None:
        """plugins/auth.py `_app_on_message`: a session past its limits ends silently; else it was used."""
        if self.credential is None or self.user is None:
            return
        now = self.host.clock.now()
        if self.credential.valid(now):
            self.credential.notify_used(now)
        else:
            self.logout()

    # -- events --------------------------------------------------------------
    def can_subscribe(self, name: str) -> bool:
        """main.py can_subscribe: a full admin may subscribe to any name, registered or not.

        Other users (API keys act as their owner) get core.get_jobs (no
        authorization needed) and, with a read-only role, the registered events.
        """
        if self.user is None:
            return False
        short = name.split(":", 1)[0]
        if self.full_admin() or short == "core.get_jobs":
            return True
        return "READONLY_ADMIN" in self._roles() and self.host.is_event(short) and short != "*"

    def full_admin(self) -> bool:
        """utils/privilege.py `credential_has_full_admin`; internal calls (no user) are not limited."""
        return self.user is None or "FULL_ADMIN" in self._roles()

    def _roles(self) -> list[str]:
        assert self.user is not None
        user = next((u for u in self.host.data.users if u["username"] == self.user["username"]), {})
        return list(user.get("roles", []))

    def wants(self, collection: str) -> bool:
        """One message per connection however many subscriptions match.

        Events do not need a login (main.py `send_event`); only job events do
        (job.py `should_send_job_event`), which matters after auth.logout.
        """
        if self.closed or (self.user is None and collection == "core.get_jobs"):
            return False
        names = self.subscriptions.values()
        return collection in names or "*" in names

    def send_event(self, msg: str, collection: str, ident: Any, fields: Any) -> None:
        raise NotImplementedError

    def send_unsubscribed(self, collection: str, error: BaseException | None) -> None:
        """An event-source subscription ended (notify_unsubscribed, or DDP nosub)."""
        raise NotImplementedError
