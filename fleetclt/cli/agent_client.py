"""The CLI's side of the agent: find the agent of an inventory, hand it a command, read its answers.

`call`, `ping` and `hosts` in fleet mode go through a running agent for their
inventory unless `--no-agent` or `FLEETCLT_AGENT=off`; `auto` starts one first,
`require` fails without one (docs/agent.md). An agent that is gone, stale or
refuses is said once on stderr and the command runs directly: the agent may
only ever make a command faster, never fail it.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import gevent
from gevent import socket, subprocess

from .. import __version__
from ..agent import wire
from ..errors import ConfigError, FleetError, OutcomeUnknown
from ..fleet.results import FleetResult, HostResult, ResultCallback, Status
from ..inventory import vault
from ..inventory.load import DEFAULT_PATH, ENV_VAR, load_inventory
from ..local.state import AgentFiles, agent_files, ensure_dir, state_dir

MODE_ENV = "FLEETCLT_AGENT"
MODES = ("on", "off", "auto", "require")
DEFAULT_IDLE = 30 * 60.0
ANSWER_TIMEOUT = 10.0   # an agent that accepts but does not answer the first line in this long is stale
START_TIMEOUT = 60.0    # loading a big inventory takes a while; a start that takes longer is a failure

Execute = Callable[[ResultCallback], FleetResult]


class NoAgent(Exception):
    """Nothing answers for this inventory: the message says why (and is shown once)."""


def inventory_file(args: argparse.Namespace) -> str:
    """The inventory's absolute path, found as load_inventory finds it: one agent per path."""
    return os.path.abspath(args.inventory or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def agent_mode(args: argparse.Namespace) -> str:
    if getattr(args, "no_agent", False):
        return "off"
    value = os.environ.get(MODE_ENV, "").strip().lower() or "on"
    if value not in MODES:
        raise ConfigError(f"${MODE_ENV} is {value!r}: it is one of {', '.join(MODES)}")
    return value


def add_agent_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-agent", action="store_true",
                        help=f"run directly, not through a running agent (also: {MODE_ENV}=off)")


# -- one connection -------------------------------------------------------------------
class Connection:
    """One request to the agent, and the lines it answers with."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._decoder = wire.LineDecoder()
        self._pending: list[dict[str, Any]] = []

    @classmethod
    def open(cls, files: AgentFiles) -> Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(os.fspath(files.socket))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
                raise NoAgent("") from None  # none started (or no state dir to start one in): nothing to say
            raise NoAgent(f"no agent answers on {files.socket} ({exc.strerror}){_removed_if_stale(files)}") \
                from None
        return cls(sock)

    def send(self, request: wire.Request) -> None:
        self._sock.sendall(wire.encode(request.to_message()))

    def tell(self, message: Mapping[str, Any]) -> None:
        """A line after the request (a foreground rollout's `interrupt`)."""
        self._sock.sendall(wire.encode(message))

    def next(self) -> dict[str, Any]:
        """The next line; NoAgent when the agent went away first."""
        while not self._pending:
            try:
                data = self._sock.recv(65536)
            except OSError as exc:
                raise NoAgent(f"the connection to the agent broke ({exc.strerror})") from None
            if not data:
                raise NoAgent("the agent closed the connection")
            try:
                self._pending = self._decoder.feed(data)
            except wire.WireError as exc:
                raise NoAgent(f"the agent sent something unreadable ({exc})") from None
            self._pending = [message for message in self._pending if not _relogged(message)]
        return self._pending.pop(0)

    def close(self) -> None:
        self._sock.close()


def _relogged(message: Mapping[str, Any]) -> bool:
    """A `log` line (--debug) goes to this process's log, as the record would without the agent."""
    if message.get("kind") != wire.LOG:
        return False
    level = int(message.get("level", logging.DEBUG))
    record = logging.makeLogRecord({"name": str(message.get("name", "fleetclt.agent")), "levelno": level,
                                    "levelname": logging.getLevelName(level), "msg": str(message.get("message"))})
    logging.getLogger(record.name).handle(record)
    return True


def _removed_if_stale(files: AgentFiles) -> str:
    """Remove a socket no agent serves (its lock is free), so the next command is quiet; says so."""
    try:
        fd = os.open(files.lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(files.socket)
        return "; the stale socket is removed"
    except OSError:
        return ""
    finally:
        os.close(fd)  # closing releases the lock


def ask(args: argparse.Namespace, request: wire.Request,
        needed_by: str | None = None) -> tuple[Connection, dict[str, Any]] | None:
    """`request` sent to the agent of the command's inventory, and its first answer; None: run directly.

    The command's own error (no host matched) raises ConfigError, as it would without the agent.
    `needed_by`: what cannot run directly (`rollout --detach`): no agent is an error saying how to get one.
    """
    mode = agent_mode(args)
    path = inventory_file(args)
    if mode == "off":
        if needed_by:
            raise ConfigError(f"{needed_by} runs in the agent, and {MODE_ENV}=off or --no-agent says not to use it")
        return None
    try:
        return _exchange(agent_files(path), request)
    except NoAgent as exc:
        reason = str(exc)
    if mode == "require":
        raise ConfigError(f"no agent for {path}: {reason or 'none is running'} "
                          f"(FLEETCLT_AGENT=require; fleetclt -i {path} agent start starts one)")
    if mode == "auto":
        try:
            pid = start_agent(path, DEFAULT_IDLE)
            _say(f"started an agent for {path} (pid {pid}; it stops after {DEFAULT_IDLE / 60:g} min unused)")
            return _exchange(agent_files(path), request)
        except (FleetError, NoAgent, OSError) as exc:
            reason = f"could not start an agent: {exc}"
    if needed_by:
        raise ConfigError(f"{needed_by} runs in the agent, and {reason or 'none is running'} for {path}: start "
                          f"one with fleetclt -i {path} agent start (or set {MODE_ENV}=auto)")
    if reason:
        _say(f"{reason}; running directly")
    return None


def ask_running(args: argparse.Namespace, request: wire.Request) -> tuple[Connection, dict[str, Any]] | None:
    """`request` to the agent if one runs and may be used, and its first answer; None otherwise, silently.

    For what also works without an agent (`rollout list`, `attach`, `stop` read the journals): no agent
    is started for it, and none answering is no news.
    """
    if agent_mode(args) == "off":
        return None
    try:
        return _exchange(agent_files(inventory_file(args)), request)
    except NoAgent:
        return None


def _exchange(files: AgentFiles, request: wire.Request) -> tuple[Connection, dict[str, Any]]:
    connection = Connection.open(files)
    try:
        with suppress(OSError):  # an agent that refuses answers before it reads: its line says why
            connection.send(request)
        with gevent.Timeout(ANSWER_TIMEOUT, NoAgent(f"the agent did not answer in {ANSWER_TIMEOUT:g} s")):
            first = connection.next()
    except BaseException:
        connection.close()
        raise
    if first.get("kind") == wire.ERROR:
        connection.close()
        if first.get("why") == wire.USAGE:
            raise ConfigError(str(first.get("message")))
        raise NoAgent(f"the agent refused the command: {first.get('message')}")
    return connection, first


def _say(message: str) -> None:
    print(f"fleetclt: {message}", file=sys.stderr, flush=True)


def request(op: str, args: argparse.Namespace | None = None, work: wire.HostWork | None = None,
            **fields: Any) -> wire.Request:
    """A request carrying the command's --hosts and fan-out settings (`fields`: the rest of the op's)."""
    if args is None:
        return wire.Request(op, version=__version__, **fields)
    return wire.Request(op, hosts=args.hosts, work=work, deadline=getattr(args, "deadline", None),
                        forks=getattr(args, "forks", None), max_connecting=getattr(args, "max_connecting", None),
                        debug=bool(getattr(args, "debug", False)), version=__version__, **fields)


# -- fleet commands through the agent -------------------------------------------------
class RemoteRun:
    """A run the agent has accepted: the hosts it selected, then their outcomes as they end."""

    def __init__(self, connection: Connection, selected: Mapping[str, Any]) -> None:
        self._connection = connection
        self.inventory: str = selected["inventory"]
        self.names: list[str] = list(selected["names"])
        self.unverified: list[str] = list(selected["unverified"])

    @contextmanager
    def execution(self) -> Iterator[Execute]:
        try:
            yield self._results
        finally:
            self._connection.close()  # before the end (Ctrl-C): the agent stops waiting for these hosts

    def _results(self, on_result: ResultCallback) -> FleetResult:
        results: dict[str, HostResult] = {}
        try:
            while True:
                message = self._connection.next()
                if message.get("kind") == wire.END:
                    break
                if message.get("kind") == wire.ERROR:
                    raise ConfigError(str(message.get("message")))
                result = relayed_result(wire.expect(message, wire.HOST))
                results[result.host] = result
                on_result(result)
        except (NoAgent, wire.WireError) as exc:
            left = [name for name in self.names if name not in results]
            _say(f"the agent went away mid-run ({exc}): the outcome of {len(left)} of {len(self.names)} "
                 "hosts is unknown (a call may have run there); the next command runs directly")
            for name in left:
                result = HostResult.from_error(name, OutcomeUnknown("the agent went away before this host's "
                                                                    "outcome came back: it may have run", name), 0.0)
                results[name] = result
                on_result(result)
        return FleetResult(results, self.names)

    def relay_events(self, put: Callable[[tuple[str, Any]], None]) -> None:
        """A subscription's lines as (kind, value): events, failed hosts (HostResult), clean ends, `subscribed`.

        The agent going away ends it with (ERROR, why): a stream cannot go on directly unseen.
        """
        try:
            while True:
                message = self._connection.next()
                kind = message.get("kind")
                if kind == wire.EVENT:
                    put((kind, message["row"]))
                elif kind == wire.HOST:
                    put((kind, relayed_result(message)))
                elif kind in (wire.ENDED, wire.SUBSCRIBED):
                    put((kind, message.get("host", message.get("count"))))
                else:
                    put((wire.ERROR, message.get("message") or f"the agent sent a {kind!r} line"))
                    return
        except (NoAgent, KeyError) as exc:
            put((wire.ERROR, f"the agent went away: {exc}"))


def start_run(args: argparse.Namespace, work: wire.HostWork, op: str = wire.RUN) -> RemoteRun | None:
    """The run of `work` over --hosts in the agent (`op`: a run or a subscription), or None to run directly."""
    answer = ask(args, request(op, args, work))
    if answer is None:
        return None
    connection, first = answer
    try:
        return RemoteRun(connection, wire.expect(first, wire.SELECTED))
    except (wire.WireError, KeyError) as exc:
        connection.close()
        _say(f"the agent answered out of turn ({exc}); running directly")
        return None


def host_rows(args: argparse.Namespace) -> dict[str, Any] | None:
    """`hosts`: the selected hosts' settings from the agent, or None to read the inventory here."""
    answer = ask(args, request(wire.HOSTS, args))
    if answer is None:
        return None
    connection, first = answer
    connection.close()
    return dict(first["rows"]) if first.get("kind") == wire.ROWS else None


class RelayedError(FleetError):
    """A host's error as the agent reported it; it renders as the original did (cli/output.py)."""

    def __init__(self, fields: Mapping[str, Any], text: str) -> None:
        super().__init__(text)
        self.errno = fields.get("errno")
        self.errname = fields.get("errname")
        self.reason = fields.get("reason")
        self.extra = fields.get("extra")


_RELAYED: dict[str, type[RelayedError]] = {}


def relayed_result(message: Mapping[str, Any]) -> HostResult:
    """A HostResult from a `host` line; its error keeps the original's class name for the `type` field."""
    fields = message["result"]
    error = fields.get("error")
    if error is not None:
        name = str(error.get("type") or "FleetError")
        kind = _RELAYED.get(name) or _RELAYED.setdefault(name, type(name, (RelayedError,), {}))
        error = kind(error, str(message.get("text", "")))
    return HostResult(fields["host"], Status(fields["status"]), fields.get("result"), error=error,
                      elapsed=float(fields["elapsed"]))


# -- starting one ---------------------------------------------------------------------
def start_agent(path: str, idle: float) -> int:
    """Start the agent of the inventory at `path` and return its pid once it serves (or the one already serving).

    Secret references resolve in the agent's environment, which is this one, copied
    now: an `env:` reference to an unset variable is refused here rather than failing
    every login later (docs/agent.md).
    """
    inventory = load_inventory(path)
    for spec in inventory.hosts.values():
        for secret in spec.secrets:
            if secret.source.startswith("env:"):
                try:
                    secret.reveal()
                except ConfigError as exc:
                    raise ConfigError(f"{exc}: the agent resolves secrets in the environment it starts with; "
                                      "set it, then start the agent") from None
    files = agent_files(path)
    ensure_dir(state_dir())
    log_fd = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        process = subprocess.Popen([sys.executable, "-m", "fleetclt.agent", "--idle", repr(idle), path],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_fd,
                                   env={**os.environ, **vault.child_environment()},
                                   start_new_session=True, close_fds=True)
    finally:
        os.close(log_fd)
    assert process.stdout is not None
    with gevent.Timeout(START_TIMEOUT, FleetError(f"the agent did not start in {START_TIMEOUT:g} s; "
                                                  f"its log: {files.log}")):
        line = process.stdout.readline().decode(errors="replace").strip()
    process.stdout.close()
    word, _, rest = line.partition(" ")
    if word == "READY":
        return int(rest)
    if word == "RUNNING":
        return int(agent_status(path)["pid"])
    if word == "ERROR":
        raise ConfigError(f"the agent did not start: {rest}")
    raise FleetError(f"the agent exited at start; its log: {files.log}")


def agent_status(path: str) -> dict[str, Any]:
    """The `status` answer of the agent of `path`; NoAgent if none answers."""
    connection, first = _exchange(agent_files(path), request(wire.STATUS))
    connection.close()
    return dict(wire.expect(first, wire.STATE))


def stop_agent(path: str) -> int:
    """Ask the agent of `path` to stop, and return its pid once it has closed its sessions and exited."""
    connection, first = _exchange(agent_files(path), request(wire.STOP))
    try:
        pid = int(wire.expect(first, wire.STOPPING)["pid"])
        with gevent.Timeout(30, FleetError(f"agent {pid} did not stop within 30 s")), suppress(NoAgent):
            connection.next()  # answered by the connection closing: the agent's process has ended
    finally:
        connection.close()
    return pid
