"""The agent's wire: JSON lines over a Unix socket, and the shape of every message (no I/O).

One JSON object per line, UTF-8, each way (docs/agent.md, "Wire"). A client sends
one request per connection; the agent answers with one or more lines. A run
streams one `host` line per host as each ends, so `-o jsonl` prints live. Values
that JSON has no type for (datetimes, sets) are written as plain JSON, as the
CLI's output does, so a relayed result prints byte for byte as a direct one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ..protocol.ejson import plain

VERSION = 1
MAX_LINE = 64 * 1024 * 1024  # one host's result is one line; a bigger one is refused, not buffered forever

# request ops
RUN, HOSTS, STATUS, STOP = "run", "hosts", "status", "stop"
ROLLOUT, ATTACH, ROLLOUT_STOP = "rollout", "attach", "rollout_stop"   # fleetclt/agent/rollouts.py
INTERRUPT = "interrupt"   # sent by a foreground rollout's client on Ctrl-C, on the same connection
SUBSCRIBE = "subscribe"  # `subscribe --hosts`: work.method is the event; events stream until the client hangs up
# reply kinds
SELECTED, HOST, END, ROWS, STATE, STOPPING, ERROR = "selected", "host", "end", "rows", "state", "stopping", "error"
# an event: of a rollout (its run), or of one host's subscription
EVENT = "event"
# rollout replies: the run as it stands, not a run of this agent, a stop taken
RUN_INFO, NOT_HERE, STOP_TAKEN = "run_info", "not_here", "stop_taken"
# replies of a subscription: a host whose server ended it cleanly, all hosts tried
ENDED, SUBSCRIBED = "ended", "subscribed"
LOG = "log"  # a debug log record of the agent, for a client that asked for them (`--debug`); any time
# why an ERROR reply: the request itself (exit 1 as direct), a client the agent will not serve
USAGE, STALE, REFUSED = "usage", "stale", "refused"


class WireError(ValueError):
    """A line that is not a message of this wire (too long, not JSON, not an object, unknown op)."""


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as one line."""
    return orjson.dumps(message, default=plain, option=orjson.OPT_NON_STR_KEYS) + b"\n"


class LineDecoder:
    """Bytes in, whole messages out; a partial line waits for the rest."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        *lines, rest = self._buffer.split(b"\n")
        if len(rest) > self._max_line:
            raise WireError(f"a line longer than {self._max_line} bytes")
        self._buffer = bytearray(rest)
        return [decode(line) for line in lines if line.strip()]

    @property
    def pending(self) -> bool:
        """Part of a line arrived and the rest did not (the peer went away mid-line)."""
        return bool(self._buffer.strip())


def decode(line: bytes | bytearray) -> dict[str, Any]:
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError("not a JSON object")
    return message


# -- requests ----------------------------------------------------------------------
@dataclass(frozen=True)
class HostWork:
    """What `call` or `ping` does on each host (fleetclt/agent/work.py runs it)."""

    command: str                  # "call", "ping" or "subscribe"
    method: str = "core.ping"     # subscribe: the event
    params: list[Any] = field(default_factory=list)
    job: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class RolloutWork:
    """What `rollout` asks (fleetclt/agent/rollout_work.py runs it): a new run, or a resume of `resume`."""

    method: str | None = None
    params: list[Any] | None = None   # None: a resume without the method and arguments given again
    options: dict[str, Any] = field(default_factory=dict)   # RolloutPlan options given on the command line
    upload: list[str] = field(default_factory=list)         # absolute paths
    resume: str | None = None         # the run id
    detach: bool = False              # the client goes once the run started; the run goes on


@dataclass(frozen=True)
class Request:
    """One request: `op`, and for `run` and `hosts` the pattern and the run's settings."""

    op: str
    hosts: str | None = None      # --hosts as given (None: all)
    work: HostWork | None = None  # run only
    deadline: float | None = None
    forks: int | None = None
    max_connecting: int | None = None
    rollout: RolloutWork | None = None  # rollout only
    run_id: str | None = None           # attach and rollout_stop
    abort: bool = False                 # rollout_stop: abort the running jobs too
    debug: bool = False           # --debug: the agent sends its log records about the run's hosts
    version: str = ""             # the client's fleetclt version: another one is a stale agent

    def to_message(self) -> dict[str, Any]:
        message = {"v": VERSION, **asdict(self)}
        return {key: value for key, value in message.items() if value is not None}


_OPS = (RUN, HOSTS, STATUS, STOP, SUBSCRIBE, ROLLOUT, ATTACH, ROLLOUT_STOP)


def parse_request(message: Mapping[str, Any]) -> Request:
    """A request from its message; WireError for another wire version or a malformed one."""
    if message.get("v") != VERSION:
        raise WireError(f"wire version {message.get('v')!r}, this agent speaks {VERSION}")
    op = message.get("op")
    if op not in _OPS:
        raise WireError(f"unknown op {op!r}")
    try:
        work, rollout = message.get("work"), message.get("rollout")
        return Request(op=op, hosts=_optional(message, "hosts", str),
                       work=None if work is None else HostWork(**work),
                       rollout=None if rollout is None else RolloutWork(**rollout),
                       run_id=_optional(message, "run_id", str), abort=message.get("abort") is True,
                       deadline=_optional(message, "deadline", (int, float)),
                       forks=_optional(message, "forks", int), max_connecting=_optional(message, "max_connecting", int),
                       debug=message.get("debug") is True, version=str(message.get("version", "")))
    except TypeError as exc:
        raise WireError(f"malformed {op} request: {exc}") from None


def _optional(message: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = message.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise WireError(f"{key} is {type(value).__name__}")
    return value


# -- replies -----------------------------------------------------------------------
def selected(inventory: str, names: list[str], unverified: list[str]) -> dict[str, Any]:
    """A run's first line: the hosts the pattern selected, and those whose certificates go unchecked."""
    return {"kind": SELECTED, "inventory": inventory, "names": names, "unverified": unverified}


def host(result: Mapping[str, Any], elapsed: float, text: str) -> dict[str, Any]:
    """One host's outcome: HostResult.to_dict(), its unrounded time, and an error's one-line text."""
    return {"kind": HOST, "result": {**result, "elapsed": elapsed}, "text": text}


def host_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """One event of one host, as the CLI prints it (work.event_row)."""
    return {"kind": EVENT, "row": row}


def ended(host_name: str) -> dict[str, Any]:
    """The server of `host_name` ended the subscription cleanly (its source finished); an error is a `host` line."""
    return {"kind": ENDED, "host": host_name}


def subscribed(count: int) -> dict[str, Any]:
    """Every selected host was tried; `count` of them are subscribed (the others had a `host` line)."""
    return {"kind": SUBSCRIBED, "count": count}


def log_record(name: str, level: int, text: str) -> dict[str, Any]:
    """One log record of the agent, its message formatted there (frames masked as they were logged)."""
    return {"kind": LOG, "name": name, "level": level, "message": text}


def end() -> dict[str, Any]:
    return {"kind": END}


def rows(inventory: str, host_rows: Mapping[str, Any]) -> dict[str, Any]:
    """`hosts`: the selected hosts' settings (secrets as their source only)."""
    return {"kind": ROWS, "inventory": inventory, "rows": host_rows}


def state(**figures: Any) -> dict[str, Any]:
    """`status`: pid, uptime, inventory, sessions by state, logins."""
    return {"kind": STATE, **figures}


def stopping(pid: int) -> dict[str, Any]:
    return {"kind": STOPPING, "pid": pid}


def error(message: str, why: str = USAGE) -> dict[str, Any]:
    """The request was not carried out: `usage` is the command's own error (exit 1, as without the
    agent); `stale` and `refused` are about the agent, and the CLI then runs directly."""
    return {"kind": ERROR, "why": why, "message": message}


def expect(message: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """`message` if it is of `kind`; a WireError otherwise (an ERROR reply is the caller's to read first)."""
    if message.get("kind") != kind:
        raise WireError(f"expected a {kind} line, got {message.get('kind')!r}")
    return message


def run_info(**fields: Any) -> dict[str, Any]:
    """A rollout as it stands (run id, journal, plan, every host's record): a viewer starts from it."""
    return {"kind": RUN_INFO, **fields}


def run_event(name: str, **fields: Any) -> dict[str, Any]:
    """One observer event of a rollout (fleetclt/rollout/observer.py), `finished` last."""
    return {"kind": EVENT, "event": name, **fields}


def not_here(run_id: str) -> dict[str, Any]:
    """This agent does not drive that rollout (ended, never its, or driven by another process)."""
    return {"kind": NOT_HERE, "run_id": run_id}


def stop_taken(run_id: str, running: int) -> dict[str, Any]:
    return {"kind": STOP_TAKEN, "run_id": run_id, "running": running}
