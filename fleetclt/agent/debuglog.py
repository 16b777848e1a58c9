"""`--debug` through the agent: its log records about a run's hosts, sent to the client that asked.

The frames are logged where they are sent and read, in the agent's sessions,
already masked (protocol/redact.py): the client prints the same lines as
without the agent. A session logs its frames only when debug logging was on as
it connected, and logging every frame costs every command, so the agent logs
frames only when started with `--debug` (`fleetclt --debug agent start`); a
debug command sent to another agent is told so once (docs/agent.md).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import wire

LIBRARY = logging.getLogger("fleetclt")
NO_FRAMES = ("this agent logs no frames (it was started without --debug): `fleetclt --debug -i {path} agent "
             "start` starts one that does (stop this one first), or --no-agent runs directly")


class _Relay(logging.Handler):
    """Records whose first argument is one of the run's hosts (every per-host record names its host
    first), sent as they are logged: in order, and all of them before the run's `end` line."""

    def __init__(self, names: set[str], send: Callable[[Mapping[str, Any]], None]) -> None:
        super().__init__(logging.DEBUG)
        self._names = names
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str) and args[0] in self._names:
            self._send(wire.log_record(record.name, record.levelno, record.getMessage()))


@contextmanager
def relayed_log(request: wire.Request, names: Callable[[], list[str]], path: str,
                send: Callable[[Mapping[str, Any]], None]) -> Iterator[None]:
    """While the body runs, the records about `names()` go to `send` if the request asked for them."""
    if not request.debug:
        yield
        return
    if not LIBRARY.isEnabledFor(logging.DEBUG):
        send(wire.log_record("fleetclt.agent", logging.WARNING, NO_FRAMES.format(path=path)))
        yield
        return
    relay = _Relay(set(names()), send)
    LIBRARY.addHandler(relay)
    try:
        yield
    finally:
        LIBRARY.removeHandler(relay)
