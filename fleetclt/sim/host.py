"""One simulated TrueNAS host: its state, its listener, and the fault switches.

A SimHost owns what middlewared owns: users and API keys, a job engine, a rate
limiter, a boot id, the open connections and their subscriptions. Tests reach
in through `faults`, `counters` and the fault actions (`drop_connections`,
`close_connections`, `restart`, `expire_sessions`, `inject`, `fail_over`).
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import gevent
from gevent.event import Event

from .auth_tokens import TokenStore
from .clock import SimClock
from .config import Counters, Faults, HostConfig
from .connection import Connection
from .data import HostData
from .event_sources import EventSources
from .failures import EHAUNAVAILABLE, EREBOOTREQUIRED, CallError
from .jobs import Job, JobEngine
from .ratelimit import RateLimiter
from .registry import Method
from .server import SimServer

log = logging.getLogger(__name__)

EVENTS = frozenset({"core.get_jobs", "user.query", "pool.query", "pool.dataset.query", "*"})
# Internal jobs a booting middleware starts: (seconds after the start, method, simulated duration).
BOOT_JOBS = ((0.0, "pool.import_on_boot", 2.0), (0.0, "disk.sync_all", 1.0), (3.0, "catalog.sync", 2.0))
_MIDDLEWARE_ONLY_25_10 = frozenset({"core.set_options"})


class SimHost:
    """A TrueNAS-like middleware on one address; cheap enough to run 1,000 per process."""

    def __init__(self, config: HostConfig, clock: SimClock | None = None,
                 faults: Faults | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock()
        self.faults = faults or Faults()
        self.counters = Counters()
        self.connections: set[Connection] = set()
        self.unstalled = Event()
        self.unstalled.set()
        self.jobs_released = Event()  # cleared: running jobs hold after their current step
        self.jobs_released.set()
        self.job_replies_released = Event()  # cleared: a job call's reply (its id) is held back
        self.job_replies_released.set()
        self._running_calls = 0
        self.revoked_keys: set[str] = set()
        self.failover_role = "SINGLE"       # MASTER or BACKUP once paired (pair_with)
        self.peer: SimHost | None = None    # the other controller of an HA pair
        self._update_applied_boot: str | None = None
        self._idle = Event()
        self._idle.set()
        self.middleware_up = Event()  # cleared while a restart's downtime lasts
        self.middleware_up.set()
        self._restarts = 0
        self._stopped = False
        self.sources = EventSources(self)
        self._server = SimServer(self)
        self._boot()

    def _boot(self) -> None:
        """Everything a middlewared restart resets."""
        self.boot_id = str(uuid.uuid4())
        self.booted_at = self.clock.wall()
        self.limiter = RateLimiter(self.clock)
        self.tokens = TokenStore(self.clock)  # auth.generate_token's tokens die with middlewared
        self.engine = JobEngine(self.clock, self._publish_job, self.counters, self.job_replies_released)
        if not hasattr(self, "data"):
            self.data = HostData.seed(self.config)

    def __repr__(self) -> str:
        return f"<SimHost {self.name} {self.address}:{self.port} v{self.config.version}>"

    # -- identity ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def address(self) -> str:
        return self.config.address

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def uri(self) -> str:
        """Where a client should connect: /api/current, or /websocket on 24.10."""
        scheme = "wss" if self.config.certfile else "ws"
        path = "/websocket" if self.config.legacy_only else "/api/current"
        if self.config.unix_path:
            return f"ws+unix://{self.config.unix_path}"
        return f"{scheme}://{self.address}:{self.port}{path}"

    def utcnow(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.wall(), dt.timezone.utc)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> SimHost:
        self._stopped = False
        self._server.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection (with close code 1001)."""
        self._stopped = True
        self._server.stop()
        self.close_connections(1001, "Server shutting down")
        self.engine.kill_all()

    def restart(self, downtime: float = 0.0) -> None:
        """A middlewared restart: connections drop, jobs vanish, ids and boot id reset.

        For `downtime` simulated seconds no middleware listens: nginx answers
        every request it proxies (/api..., /websocket) with 502 Bad Gateway, and a
        Unix socket refuses connections; `middleware_up` is set again once it is
        back. The new middleware starts its own jobs at once and a few seconds
        later (BOOT_JOBS), so the low ids go to jobs no client asked for (job.py
        `JobsDeque._get_next_id` counts from 1 in every process).
        """
        self.middleware_up.clear()
        self._restarts += 1
        self.drop_connections()
        self.engine.kill_all()
        if downtime > 0:
            if self.config.unix_path:
                self._server.stop()
            self.spawn_later(downtime, self._come_up, self._restarts)
        else:
            self._come_up(self._restarts)

    def _come_up(self, restart: int) -> None:
        """The new middleware process listens; a later restart or a stop supersedes this one."""
        if restart != self._restarts or self._stopped:
            return
        self._boot()
        if self.config.unix_path and not self._server.listening:
            self._server.start()
        self.middleware_up.set()
        for delay, method, duration in BOOT_JOBS:
            self.spawn_later(delay, self._boot_job, self.engine, method, duration)

    def _boot_job(self, engine: JobEngine, method: str, duration: float) -> None:
        if engine is self.engine:  # no restart since
            engine.submit(method, [], lambda job: self.clock.sleep(duration))

    # -- faults --------------------------------------------------------------
    def go_offline(self) -> None:
        """Close the listener: new connections are refused, open ones drop."""
        self._server.stop()
        self.drop_connections()

    def go_online(self) -> None:
        """Listen again on the same address and port."""
        self._server.start()

    def drop_connections(self) -> None:
        """Cut every connection with no close frame."""
        for conn in list(self.connections):
            conn.drop()

    def close_connections(self, code: int, reason: str = "") -> None:
        for conn in list(self.connections):
            conn.close(code, reason)

    def expire_sessions(self) -> None:
        """Sessions end silently: the next call on each connection gets 207."""
        for conn in self.connections:
            conn.user = None

    def inject(self, text: str) -> None:
        """Send a raw frame (e.g. an id:null error) to every open connection."""
        for conn in list(self.connections):
            conn.send(text)

    def set_stall(self, stalled: bool, methods: frozenset[str] = frozenset()) -> None:
        """Stalled hosts accept calls (all, or only `methods`) and answer none until released."""
        self.faults.stall, self.faults.stalled_methods = stalled and not methods, methods if stalled else frozenset()
        (self.unstalled.clear if stalled else self.unstalled.set)()

    def hold_jobs(self, held: bool) -> None:
        """Held jobs keep running at their current step until released: a test can act while
        they run without racing their duration."""
        (self.jobs_released.clear if held else self.jobs_released.set)()

    def hold_job_replies(self, held: bool) -> None:
        """Held, a job call starts its job but its reply (the job id) waits until released, as
        if still on the wire: a client killed meanwhile never learns the id."""
        (self.job_replies_released.clear if held else self.job_replies_released.set)()

    def delay_call(self, method: str) -> None:
        if self.faults.stall or method in self.faults.stalled_methods:
            self.unstalled.wait()
        if self.faults.latency:
            self.clock.sleep(self.faults.latency)

    @property
    def online(self) -> bool:
        """Listening for connections (not after `go_offline` or `stop`)."""
        return self._server.listening

    # -- HA pairs and updates ----------------------------------------------------
    def pair_with(self, backup: SimHost) -> None:
        """Make this host the MASTER and `backup` the BACKUP controller of one HA pair."""
        self.peer, backup.peer = backup, self
        self.failover_role, backup.failover_role = "MASTER", "BACKUP"

    def fail_over(self) -> None:
        """The BACKUP of this host's pair takes over; the old MASTER reboots and comes back as BACKUP."""
        assert self.peer is not None, f"{self.name} is not one of an HA pair"
        master, backup = (self, self.peer) if self.failover_role == "MASTER" else (self.peer, self)
        backup.failover_role, master.failover_role = "MASTER", "BACKUP"
        master.restart()

    def update_applied(self) -> None:
        """An update was installed: until middlewared restarts, 25.10+ refuses another (EREBOOTREQUIRED)."""
        self._update_applied_boot = self.boot_id

    def check_update_allowed(self) -> None:
        """update.status_internal's checks before an update (plugins/update_/status.py, 25.10+)."""
        if self._update_applied_boot == self.boot_id:
            raise CallError("System update was already applied, system reboot is required.", EREBOOTREQUIRED)
        if self.peer is not None and not self.peer.online:
            raise CallError("HA is configured but currently unavailable.", EHAUNAVAILABLE)

    # -- what connections ask ------------------------------------------------
    def has_method(self, name: str) -> bool:
        if name in _MIDDLEWARE_ONLY_25_10 and self.config.legacy_only:
            return False
        return not (name == "auth.login_ex" and self.config.legacy_only)

    def needs_auth(self, method: Method) -> bool:
        """core.ping needs no login only from 25.10 on."""
        if method.name == "core.ping" and self.config.version_info < (25, 10):
            return True
        return method.auth_required

    def is_event(self, name: str) -> bool:
        return name in EVENTS

    def note_inflight(self, count: int) -> None:
        self.counters.peak_inflight = max(self.counters.peak_inflight, count)

    def note_running_call(self, delta: int) -> None:
        self._running_calls += delta
        self.counters.peak_running_calls = max(self.counters.peak_running_calls, self._running_calls)

    # -- events --------------------------------------------------------------
    def publish(self, collection: str, msg: str, ident: Any, fields: Any = None) -> None:
        for conn in list(self.connections):
            if conn.wants(collection):
                conn.send_event(msg, collection, ident, fields)

    def _publish_job(self, msg: str, job: Job) -> None:
        self.publish("core.get_jobs", msg, job.id, job.encode(self.config.new_style_jobs))

    # -- connection registry (used by the server) ----------------------------
    def attach(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.counters.connections += 1
        self._idle.clear()

    def detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        conn.finish()
        if not self.connections:
            self._idle.set()

    def wait_disconnected(self, timeout: float) -> bool:
        """Wait until no connection is open; False on timeout."""
        return bool(self._idle.wait(timeout))

    def spawn_later(self, seconds: float, func: Any, *args: Any) -> None:
        """Run `func` after simulated `seconds` (e.g. a reboot after an update)."""
        def later() -> None:
            self.clock.sleep(seconds)
            func(*args)
        gevent.spawn(later)
