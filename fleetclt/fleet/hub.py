"""Where a Fleet's greenlets run: inline in the caller's gevent hub, or in a hub thread of its own.

Why: a gevent hub only runs while its thread waits in gevent. Plain Python
(time.sleep, threads, a ThreadPoolExecutor) blocks it or never starts it, so
keepalives stop and drops go unnoticed between calls, and greenlets made in
one thread cannot be waited for from another. A HubThread runs the fleet's hub
in a daemon thread: each call is handed over with the loop's
`run_callback_threadsafe` (gevent's documented cross-thread entry, which also
wakes the loop) and runs in a greenlet there, while the caller waits on a
`concurrent.futures.Future`, an OS-level wait that blocks only the calling thread
(a caller with a gevent hub of its own waits from that hub's thread pool, so its
other greenlets, e.g. simulated hosts, keep running).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any, Literal, TypeVar

import gevent
from gevent._hub_local import get_hub_if_exists  # gevent's own test of "has this thread a hub?"
from gevent.event import Event

from ..errors import FleetError

HubMode = Literal["auto", "thread", "inline"]
T = TypeVar("T")
CLOSED = "this Fleet is closed; make a new one"


class InlineHub:
    """The gevent hub of the thread that made the fleet: calls run in the caller, as any gevent code."""

    mode = "inline"

    def __init__(self) -> None:
        self._hub = gevent.get_hub()
        self.closed = False

    def run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if get_hub_if_exists() is not self._hub:
            raise FleetError("this Fleet runs inline in the gevent hub of the thread that made it and cannot be "
                             "used from another thread; make it with Fleet(..., hub='thread') instead")
        if self.closed:
            raise FleetError(CLOSED)
        return func(*args, **kwargs)

    def share(self, target: T) -> T:
        return target

    def close(self) -> None:
        self.closed = True


class HubThread:
    """A daemon thread that runs a gevent hub for one fleet until `close()`."""

    mode = "thread"

    def __init__(self, name: str = "fleetclt-hub") -> None:
        self.closed = False
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        ready: Future[Any] = Future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=name, daemon=True)
        self._thread.start()
        self._hub, self._stop = ready.result()

    def _main(self, ready: Future[Any]) -> None:
        hub = gevent.get_hub()
        stopped = Event()
        stop = hub.loop.async_()  # an active, referenced watcher: the loop runs until it fires
        stop.start(stopped.set)
        ready.set_result((hub, stop))
        try:
            stopped.wait()
        finally:
            stop.close()
            self._abandon()
            hub.destroy(destroy_loop=True)

    def in_hub(self) -> bool:
        return get_hub_if_exists() is self._hub

    def run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)` in a greenlet of the hub thread; the calling thread waits for it.

        Called from the hub thread itself (a callback, an action) it runs at once:
        waiting there for the hub would wait forever.
        """
        if self.in_hub():
            return func(*args, **kwargs)
        done: Future[T] = Future()
        with self._lock:
            if self.closed:
                raise FleetError(CLOSED)
            self._pending.add(done)
        self._hub.loop.run_callback_threadsafe(gevent.spawn, _settle, done, partial(func, *args, **kwargs))
        caller = get_hub_if_exists()
        try:  # a thread with a hub of its own (a gevent program) keeps it running meanwhile
            return done.result() if caller is None else caller.threadpool.apply(done.result)
        finally:
            with self._lock:
                self._pending.discard(done)

    def share(self, target: T) -> T:
        """`target` itself inside the hub; elsewhere a proxy whose methods run in the hub."""
        return target if self.in_hub() else InHub(target, self)  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the hub and wait for its thread to end; calls still waiting get a FleetError."""
        if self.in_hub():
            raise FleetError("close() a thread-mode Fleet from outside its callbacks")
        with self._lock:
            if self.closed:
                return
            self.closed = True
        self._stop.send()
        self._thread.join()

    def _abandon(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, set()
        for done in pending:
            if not done.done():
                done.set_exception(FleetError("the Fleet was closed before this call ended"))


def _settle(done: Future[T], work: Callable[[], T]) -> None:
    """Runs in a greenlet of the hub thread: hand the outcome to the waiting thread."""
    try:
        done.set_result(work())
    except BaseException as exc:  # every outcome, GreenletExit too, belongs to the caller
        if not done.done():
            done.set_exception(exc)


class InHub:
    """An object of a thread-mode fleet seen from another thread: its methods run in the hub thread."""

    def __init__(self, target: Any, hub: HubThread) -> None:
        self._target, self._hub = target, hub

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        return partial(self._hub.run, value) if callable(value) else value

    def __repr__(self) -> str:
        return f"<InHub {self._target!r}>"


def make_hub(mode: HubMode) -> InlineHub | HubThread:
    """'auto' is inline when this thread already has a gevent hub (a gevent program), else a hub thread."""
    if mode not in ("auto", "thread", "inline"):
        raise ValueError(f"hub must be 'auto', 'thread' or 'inline', not {mode!r}")
    if mode == "thread" or (mode == "auto" and get_hub_if_exists() is None):
        return HubThread()
    return InlineHub()
