"""`--debug` through the agent: its log records about a run's hosts, sent to the client that asked.

The frames are logged where they are sent and read, in the agent's sessions,
already masked (protocol/redact.py): the client prints the same lines as
without the agent. Masking every frame costs (about 36 µs per call and reply),
so the library logs at DEBUG only while a `--debug` request is being served;
the agent's log file keeps warnings only (docs/agent.md).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import wire

LIBRARY = logging.getLogger("fleetclt")
_debugging = [0]  # requests with `debug` being served: the library logs at DEBUG while there is one


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
def relayed_log(request: wire.Request, names: Callable[[], list[str]],
                send: Callable[[Mapping[str, Any]], None]) -> Iterator[None]:
    """While the body runs, the records about `names()` go to `send` if the request asked for them."""
    if not request.debug:
        yield
        return
    relay = _Relay(set(names()), send)
    LIBRARY.addHandler(relay)
    _debugging[0] += 1
    LIBRARY.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        _debugging[0] -= 1
        if not _debugging[0]:
            LIBRARY.setLevel(logging.NOTSET)
        LIBRARY.removeHandler(relay)
