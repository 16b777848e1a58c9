"""The agent's Unix socket server: same user only, JSON lines, many clients at once.

One greenlet per connection, one request per connection (docs/agent.md). A run
streams each host's outcome the moment it ends; a client that goes away stops
its run (a job already started goes on on its host, as after Ctrl-C without the
agent). Rollouts are rollouts.py's: they outlive the connection that started
them. The agent stops on `stop`, on SIGTERM, or when nobody used it for `idle`
seconds (a running rollout is use), and then leaves no socket behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import gevent
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.server import StreamServer

from .. import __version__
from ..errors import FleetError, without_host
from ..fleet.results import HostResult
from ..local.state import AgentFiles
from . import wire
from .debuglog import relayed_log
from .fleets import AgentFleet
from .peer import peer_uid, refusal
from .rollouts import AgentRollouts
from .streams import relay_events
from .work import run_work, select_hosts

log = logging.getLogger(__name__)

FIRST_LINE_TIMEOUT = 10.0  # a client that connects and says nothing is dropped after this long
WATCH_EVERY = 2.0          # how often the inventory file and the idle time are looked at
SOCKET_PATH_MAX = 107      # sun_path holds 108 bytes, the last a NUL


class AlreadyRunning(Exception):
    """Another agent holds this inventory's lock."""


def take_lock(path: os.PathLike[str], attempts: int = 20) -> int:
    """The inventory's agent lock, held while this process lives; AlreadyRunning if another agent has it.

    Tried for a second: a CLI that found a stale socket holds the lock briefly while it removes it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    for _ in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            gevent.sleep(0.05)
    os.close(fd)
    raise AlreadyRunning()


def listen(path: os.PathLike[str]) -> socket.socket:
    """A listening Unix socket at `path`, mode 0600 from the start; a stale one (the lock is ours) is replaced."""
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise FleetError(f"the agent's socket path {path} is longer than {SOCKET_PATH_MAX} bytes: "
                         "set FLEETCLT_STATE_DIR to a shorter directory")
    _check_private(os.path.dirname(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the agent process is single-threaded here: no other file is being made
    try:
        listener.bind(os.fspath(path))
    finally:
        os.umask(old_mask)
    listener.listen(128)
    return listener


def _check_private(folder: str) -> None:
    """The socket's directory must be ours and closed to others: the socket is the sessions' front door."""
    st = os.stat(folder)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise FleetError(f"the state dir {folder} is open to others (mode {st.st_mode & 0o777:04o}, owner uid "
                         f"{st.st_uid}): the agent needs it private to this user; run: chmod 700 {folder}")


class Agent:
    """Serves one inventory's sessions on `files.socket` until stopped."""

    def __init__(self, fleets: AgentFleet, files: AgentFiles, idle: float, listener: socket.socket) -> None:
        self.fleets, self.files, self.idle = fleets, files, idle
        self._server = StreamServer(listener, self._handle)
        self._started = time.time()
        self._last_used = time.monotonic()
        self._active = 0
        self._requests = 0
        self._stopped = Event()
        self._stop_waiters: list[socket.socket] = []  # `agent stop` clients: answered by the process ending
        self.rollouts = AgentRollouts(fleets)

    def serve(self) -> str:
        """Serve until stopped; returns why it stopped. Sessions are closed and the socket removed first."""
        self._server.start()
        why = "stopped"
        while not self._stopped.wait(WATCH_EVERY):
            self.fleets.reload_if_changed()
            if self.rollouts.runs:  # a detached rollout is use enough
                self._last_used = time.monotonic()
            if self._active == 0 and time.monotonic() - self._last_used >= self.idle:
                why = f"idle for {self.idle:g} s"
                break
        self._shut_down()
        return why

    def stop(self) -> None:
        self._stopped.set()

    def _shut_down(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.files.socket)
        self.rollouts.stop_all()  # interrupted as by Ctrl-C: their jobs go on, --resume continues them
        self._server.stop(timeout=1.0)  # no new clients; runs in progress are cut off
        self.fleets.close()

    # -- one connection ----------------------------------------------------------------
    def _handle(self, sock: socket.socket, _address: Any) -> None:
        reason = refusal(peer_uid(sock), os.getuid())
        if reason is not None:
            log.warning("connection refused: %s", reason)
            _send(sock, wire.error(reason, wire.REFUSED))
            sock.close()
            return
        self._active += 1
        self._requests += 1
        try:
            self._serve_one(sock)
        finally:
            self._active -= 1
            self._last_used = time.monotonic()
            sock.close()

    def _serve_one(self, sock: socket.socket) -> None:
        decoder = wire.LineDecoder()
        try:
            with gevent.Timeout(FIRST_LINE_TIMEOUT):
                request = wire.parse_request(_first_message(sock, decoder))
        except (wire.WireError, gevent.Timeout, OSError) as exc:
            _send(sock, wire.error(f"not a request: {exc}", wire.REFUSED))
            return
        if request.version != __version__:
            _send(sock, wire.error(f"this agent runs fleetclt {__version__}, the command {request.version}",
                                   wire.STALE))
            return
        try:
            self._dispatch(request, sock)
        except FleetError as exc:  # the command's own error: the CLI exits 1 with it, as without the agent
            _send(sock, wire.error(str(exc)))

    def _dispatch(self, request: wire.Request, sock: socket.socket) -> None:
        if request.op == wire.STATUS:
            _send(sock, wire.state(pid=os.getpid(), started=self._started, uptime=time.time() - self._started,
                                   inventory=self.fleets.path, idle=self.idle, clients=self._active - 1,
                                   requests=self._requests, reloads=self.fleets.reloads, version=__version__,
                                   rollouts=list(self.rollouts.runs), **self.fleets.figures()))
        elif request.op == wire.STOP:
            log.warning("stop asked by a client")
            _send(sock, wire.stopping(os.getpid()))
            self._stop_waiters.append(sock.dup())
            self.stop()
        elif request.op == wire.HOSTS:
            inventory = self.fleets.inventory()
            names, _ = select_hosts(inventory, request.hosts)
            _send(sock, wire.rows(inventory.path, {name: inventory.hosts[name].to_dict() for name in names}))
        elif request.op in (wire.ROLLOUT, wire.ATTACH, wire.ROLLOUT_STOP):
            self.rollouts.serve(request, sock)
        else:
            out = _Stream(sock)
            selection = lambda: select_hosts(self.fleets.inventory(), request.hosts)[0]  # noqa: E731
            with relayed_log(request, selection, out.send):
                if request.op == wire.SUBSCRIBE:
                    relay_events(self.fleets, request, out, lambda: _until_closed(sock))
                else:
                    self._run(request, sock, out)

    def _run(self, request: wire.Request, sock: socket.socket, out: _Stream) -> None:
        if request.work is None:
            raise FleetError("a run request without work")
        inventory = self.fleets.inventory()
        names, unverified = select_hosts(inventory, request.hosts)
        fleet = self.fleets.fleet(request.forks, request.max_connecting)
        out.send(wire.selected(inventory.path, names, unverified))
        work = gevent.spawn(run_work, fleet, request.work, names, request.deadline, out.host)
        hangup = gevent.spawn(_until_closed, sock)
        gevent.wait([work, hangup], count=1)
        hangup.kill()
        if not work.ready():  # the client went away (Ctrl-C, killed): stop waiting for its hosts
            work.kill()
            return
        work.get()
        fleet.last_result = None  # the client has them all; kept, each setting's Fleet would hold a run's results
        out.send(wire.end())


class _Stream:
    """Lines to one client from many greenlets, each line whole; a client gone makes the rest a no-op."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = Semaphore()
        self._gone = False

    def host(self, result: HostResult) -> None:
        text = without_host(result.error) if result.error is not None else ""
        self.send(wire.host(result.to_dict(), result.elapsed, text))

    def send(self, message: Mapping[str, Any]) -> None:
        with self._lock:
            if not self._gone:
                self._gone = not _send(self._sock, message)


def _send(sock: socket.socket, message: Mapping[str, Any]) -> bool:
    try:
        sock.sendall(wire.encode(message))
        return True
    except OSError:
        return False


def _first_message(sock: socket.socket, decoder: wire.LineDecoder) -> dict[str, Any]:
    while True:
        data = sock.recv(65536)
        if not data:
            raise wire.WireError("the client closed the connection before a whole request")
        messages = decoder.feed(data)
        if messages:
            return messages[0]


def _until_closed(sock: socket.socket) -> None:
    """Returns when the client closes its end (it sends nothing after its request)."""
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def run_agent(path: str, files: AgentFiles, idle: float, ready: Callable[[Agent], None]) -> str:
    """Lock, load, bind, `ready(agent)`, serve until stopped; why it stopped. AlreadyRunning if another has it."""
    lock = take_lock(files.lock)
    try:
        agent = Agent(AgentFleet(path), files, idle, listen(files.socket))
        ready(agent)
        return agent.serve()
    finally:
        os.close(lock)
