"""`subscribe --hosts` through the agent: events of the shared sessions, relayed live to the clients listening.

The agent's sessions outlive every command: each client subscribes its own
subscriber to each session, and its hang-up takes them back, so a session ends
its server subscription once no client listens (nothing accumulates) and the
next client gets what a new subscription gets. A session keeps a subscription
across reconnects (the library sends it again), so a client's stream goes on
through a host's reconnect (docs/agent.md).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.event import AsyncResult
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


class _Joined:
    """One client's subscriber on one session: what it hears, and how it takes itself back."""

    def __init__(self, session: HostSession, event: str, listener: Listener) -> None:
        self.session, self.event, self.listener = session, event, listener
        self.over = False

    def on_event(self, update: CollectionUpdate) -> None:
        self.listener.event(event_row(self.session.name, update))

    def on_end(self, notice: SubscriptionEnded) -> None:
        if notice.resubscribing:  # the server ended the login: the session subscribes again by itself
            return
        self.over = True
        self.listener.ended(self.session.name, notice)

    def leave(self) -> None:
        if not self.over:
            self.over = True
            self.session.unsubscribe(self.event, self.on_event)


class Subscriptions:
    """The agent's subscribers: each client's own on each session, taken back when it hangs up.

    Clients listening to one event on one session share the session's one
    subscription on the server (HostSession.subscribe); it ends when the last
    of them leaves, so the next client subscribes afresh and gets what a source
    sends a new subscription (a file tail's last lines), as a direct run would.
    """

    def __init__(self) -> None:
        self._joined: dict[Listener, list[_Joined]] = {}

    def action(self, event: str, listener: Listener) -> Callable[[HostSession], None]:
        """What a subscribe run does on each host: subscribe this client's own subscriber to the session.

        The subscriber is in place before subscribe() sends anything: a source's first
        events reach it inside subscribe (a file tail's lines come before the server's
        answer, and the session holds them). The subscribe runs on in its own greenlet
        when the client hangs up meanwhile, so it is taken back once it is in.
        """
        joined = self._joined.setdefault(listener, [])

        def join(session: HostSession) -> None:
            subscriber = _Joined(session, event, listener)
            outcome = AsyncResult()
            gevent.spawn(self._subscribe, subscriber, joined, outcome)
            outcome.get()  # a refusal raises: that host's failed row

        return join

    @staticmethod
    def _subscribe(subscriber: _Joined, joined: list[_Joined], outcome: AsyncResult) -> None:
        try:
            subscriber.session.subscribe(subscriber.event, subscriber.on_event, on_end=subscriber.on_end)
        except Exception as exc:  # the run's greenlet raises it
            outcome.set_exception(exc)
            return
        joined.append(subscriber)
        outcome.set(None)
        if subscriber.listener.closed:  # the client hung up while its host subscribed
            subscriber.leave()

    def leave(self, listener: Listener) -> None:
        """The client hung up: its subscribers leave every session (the last one ends the server's)."""
        listener.close()
        gevent.joinall([gevent.spawn(subscriber.leave) for subscriber in self._joined.pop(listener, [])])

    def session_closed(self, session: HostSession) -> None:
        """A session the agent closed (its host changed or left the inventory): its listeners hear an end."""
        for joined in list(self._joined.values()):
            for subscriber in joined:
                if subscriber.session is session and not subscriber.over:
                    subscriber.on_end(SubscriptionEnded(subscriber.event, None))


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
