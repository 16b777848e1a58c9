"""Greenlets that run a connection's calls and are kept for its next ones.

Why not a greenlet per call: on CPython 3.11 every new greenlet maps a fresh
frame stack and unmaps it when it ends, a large share of the simulator's CPU
per call (docs/performance.md §6). Workers grow
to the connection's peak concurrency (20 calls at most on /api/current) and
die with it.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
from gevent.lock import Semaphore

log = logging.getLogger(__name__)


class CallWorkers:
    """Runs submitted calls concurrently: an idle worker takes one, or a new worker starts."""

    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake = Semaphore(0)
        self._idle = 0
        self._workers: set[gevent.Greenlet] = set()

    def submit(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._queue.append((func, args))
        if self._idle:
            self._idle -= 1
            self._wake.release()
        else:
            self._workers.add(gevent.spawn(self._work))

    def kill(self) -> None:
        """Cancel every call, running or queued (the connection is gone)."""
        self._queue.clear()
        gevent.killall(list(self._workers), block=False)

    def _work(self) -> None:
        try:
            while True:
                while self._queue:
                    func, args = self._queue.popleft()
                    try:
                        func(*args)
                    except Exception:
                        log.exception("simulated call %r failed", func)
                self._idle += 1
                self._wake.acquire()
        finally:
            self._workers.discard(gevent.getcurrent())
