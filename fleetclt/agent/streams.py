"""`subscribe --hosts` through the agent: events of the shared sessions, relayed live to the clients listening.

The agent's sessions outlive every command, and the library has no way to take
a subscriber back; so the agent subscribes each session to an event once and
fans what arrives out to the clients listening now. A client that hangs up
stops listening; events nobody listens to are dropped. A session keeps its
subscription across reconnects (the library sends it again), so a client's
stream goes on through a host's reconnect (docs/agent.md).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.lock import Semaphore
from gevent.queue import Queue

from ..client.session import HostSession, SubscriptionEnded
from ..errors import FleetError
from ..fleet.results import HostResult
from ..protocol.jsonrpc import CollectionUpdate
from . import wire
from .work import ended_row, event_row, select_hosts

if TYPE_CHECKING:
    from .fleets import AgentFleet

log = logging.getLogger(__name__)

BACKLOG = 10_000  # events a client may be behind by; past that it is told so and its stream ends


class Out(Protocol):
    """Where a client's lines go (server.py's _Stream): whole lines, a client gone makes them no-ops."""

    def host(self, result: HostResult) -> None: ...

    def send(self, message: Mapping[str, Any]) -> None: ...


class Listener:
    """One client's stream: events queue here and one greenlet writes them, so a slow client never
    holds up a session's reader (which also reads the replies of everyone else's calls)."""

    def __init__(self, out: Out) -> None:
        self._out = out
        self._queue: Queue = Queue()
        self._writer = gevent.spawn(self._write)
        self._overflowed = False
        self.closed = False

    def event(self, row: Mapping[str, Any]) -> None:
        if self._overflowed or self.closed:
            return
        if self._queue.qsize() >= BACKLOG:
            self._overflowed = True
            log.warning("a subscriber fell %d events behind: its stream ends", BACKLOG)
            self._queue.put(wire.error(f"the command fell more than {BACKLOG} events behind the agent"))
            return
        self._queue.put(wire.host_event(row))

    def ended(self, host_name: str, notice: SubscriptionEnded) -> None:
        if not self.closed:
            failed = ended_row(host_name, notice)
            self._queue.put(wire.ended(host_name) if failed is None else failed)

    def close(self) -> None:
        self.closed = True
        self._writer.kill()

    def _write(self) -> None:
        while True:
            line: Mapping[str, Any] | HostResult = self._queue.get()
            if isinstance(line, HostResult):
                self._out.host(line)
            else:
                self._out.send(line)


class _Fan:
    """One session's subscription to one event, and the clients listening to it now."""

    def __init__(self, host_name: str, forget: Callable[[], None]) -> None:
        self.host_name = host_name
        self.listeners: set[Listener] = set()
        self._forget = forget

    def event(self, update: CollectionUpdate) -> None:
        if self.listeners:
            row = event_row(self.host_name, update)
            for listener in list(self.listeners):
                listener.event(row)

    def end(self, notice: SubscriptionEnded) -> None:
        if notice.resubscribing:  # the server ended the login: the session subscribes again by itself
            return
        self._forget()
        for listener in list(self.listeners):
            listener.ended(self.host_name, notice)
        self.listeners.clear()


class Subscriptions:
    """The agent's subscriptions: one per session and event, shared by every client listening to it."""

    def __init__(self) -> None:
        self._fans: dict[tuple[HostSession, str], _Fan] = {}
        self._subscribing: dict[tuple[HostSession, str], Semaphore] = {}

    def action(self, event: str, listener: Listener) -> Callable[[HostSession], None]:
        """What a subscribe run does on each host: join the session's subscription, subscribing it first.

        Two clients asking at once wait for one subscription: two on one connection would
        have the server send every event twice.
        """
        def join(session: HostSession) -> None:
            key = (session, event)
            with self._subscribing.setdefault(key, Semaphore()):
                fan = self._fans.get(key)
                if fan is None:
                    fan = _Fan(session.name, lambda: self._forget(key))
                    # listening first: a source's first events reach the fan inside subscribe (a
                    # file tail's lines come before the server's answer, and the session holds them)
                    fan.listeners.add(listener)
                    session.subscribe(event, fan.event, on_end=fan.end)  # a refusal raises: that host's failed row
                    self._fans[key] = fan
            fan.listeners.add(listener)
            if listener.closed:  # the client hung up while its host subscribed
                fan.listeners.discard(listener)
        return join

    def _forget(self, key: tuple[HostSession, str]) -> None:
        self._fans.pop(key, None)
        self._subscribing.pop(key, None)

    def leave(self, listener: Listener) -> None:
        for fan in self._fans.values():
            fan.listeners.discard(listener)
        listener.close()

    def session_closed(self, session: HostSession) -> None:
        """A session the agent closed (its host changed or left the inventory): its listeners hear an end."""
        for key in [key for key in self._fans if key[0] is session]:
            self._fans[key].end(SubscriptionEnded(key[1], None))


def relay_events(fleets: AgentFleet, request: wire.Request, out: Out, until_closed: Callable[[], None]) -> None:
    """Subscribe the selected hosts and relay their events to this client until it hangs up."""
    if request.work is None:
        raise FleetError("a subscribe request without its event")
    event = request.work.method
    inventory = fleets.inventory()
    names, unverified = select_hosts(inventory, request.hosts)
    fleet = fleets.fleet(request.forks, request.max_connecting)
    out.send(wire.selected(inventory.path, names, unverified))
    listener = Listener(out)

    def subscribe_all() -> None:
        result = fleet.run(fleets.subscriptions.action(event, listener), hosts=names,
                           on_result=lambda result: None if result.ok else out.host(result))
        out.send(wire.subscribed(len(result.ok)))
    subscribing = gevent.spawn(subscribe_all)
    try:
        until_closed()
    finally:
        subscribing.kill()
        fleets.subscriptions.leave(listener)
