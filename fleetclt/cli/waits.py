"""The CLI's login-budget wait lines: one when a wait starts, not one per host.

Every session that finds its server's budget spent logs a wait (client.throttle's
WAIT_LOGGER). Hosts that hit a spent budget together wait about as long as the
first: its line says it all, and 500 more would bury the output. A line whose
wait ends more than a second after every wait already shown is news (the queue
behind a budget that many hosts share grows), so it is shown.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..client.throttle import WAIT_LOGGER


class NewWaitsOnly(logging.Filter):
    """Passes a wait line only if it ends over a second after the last one shown."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._shown_until = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        ends = self._clock() + float(getattr(record, "wait_seconds", 0.0))
        if ends <= self._shown_until + 1.0:
            return False
        self._shown_until = ends
        return True


def announce_waits(debug: bool) -> None:
    """Print wait lines plainly on stderr; with --debug they go to the debug log like the rest."""
    waits = logging.getLogger(WAIT_LOGGER)
    waits.setLevel(logging.INFO)
    waits.propagate = debug
    handler = logging.StreamHandler()
    handler.addFilter(NewWaitsOnly())
    waits.handlers = [] if debug else [handler]
