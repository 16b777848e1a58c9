"""`subscribe --hosts PATTERN EVENT`: the events of every selected host as JSON lines, each tagged with its host.

Through the running agent when there is one (its sessions stream the events
live over its socket), directly otherwise, with the same lines either way
(docs/cli.md, docs/agent.md). A host that cannot subscribe gets the failed
row `call -o jsonl` would print for it, and the others stream on.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gevent.queue import Empty, Queue

from ..agent import wire
from ..agent.wire import HostWork
from ..agent.work import ended_row, event_row, subscription
from ..client.session import SubscriptionEnded
from ..fleet.results import HostResult
from ..protocol.jsonrpc import CollectionUpdate
from . import agent_client, output, stdout
from .fleet import fleet_for, selection
from .options import warn_unverified
from .status import ExitStatus

log = logging.getLogger(__name__)

Put = Callable[[tuple[str, Any]], None]


def run_subscribe(args: argparse.Namespace) -> int:
    lines: Queue = Queue()
    remote = agent_client.start_run(args, HostWork("subscribe", args.event), wire.SUBSCRIBE)
    if remote is None:
        inventory, names = selection(args)
        stream = _direct(args, inventory, names, lines.put)
    else:
        if remote.unverified:
            warn_unverified(remote.unverified, "verify_tls: false")
        names, stream = remote.names, _relayed(remote, lines.put)
    with stream:
        return _print_lines(lines, args.event, len(names), args.number, args.timeout)


@contextmanager
def _direct(args: argparse.Namespace, inventory: Any, names: list[str], put: Put) -> Iterator[None]:
    def on_event(host: str, update: CollectionUpdate) -> None:
        put((wire.EVENT, event_row(host, update)))

    def on_end(host: str, notice: SubscriptionEnded) -> None:
        if not notice.resubscribing:  # the session subscribes again by itself after a new login
            failed = ended_row(host, notice)
            put((wire.ENDED, host) if failed is None else (wire.HOST, failed))

    with fleet_for(inventory, args) as fleet:
        def subscribe_all() -> None:
            result = fleet.run(subscription(args.event, on_event, on_end), hosts=names,
                               on_result=lambda result: None if result.ok else put((wire.HOST, result)))
            put((wire.SUBSCRIBED, len(result.ok)))
        subscribing = gevent.spawn(subscribe_all)
        try:
            yield
        finally:
            subscribing.kill()


@contextmanager
def _relayed(remote: agent_client.RemoteRun, put: Put) -> Iterator[None]:
    with remote.execution():  # closing the connection is the agent's sign to stop relaying
        reading = gevent.spawn(remote.relay_events, put)
        try:
            yield
        finally:
            reading.kill()


def _print_lines(lines: Queue, event: str, total: int, number: int | None, timeout: float | None) -> int:
    """Print until `number` events arrived, `timeout` passed (exit 1, as one host's subscribe) or no host is left.

    Exit 0, or 2 when a host could not subscribe or its server ended the subscription with an error.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    left, failed, seen = total, 0, 0
    while left and (number is None or seen < number):
        try:
            kind, value = lines.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except Empty:
            print(timed_out(seen, number, timeout or 0.0), file=sys.stderr)
            return ExitStatus.FAILED
        if kind == wire.EVENT:
            print(output.to_json(value, indent=False), flush=True)
            if stdout.lost():  # the reader went away (`| head`)
                return ExitStatus.OK
            seen += 1
        elif kind == wire.HOST:
            result: HostResult = value
            print(output.to_json(result.to_dict(), indent=False), flush=True)
            left, failed = left - 1, failed + 1
        elif kind == wire.ENDED:
            log.debug("%s: the server ended the subscription to %s", value, event)
            left -= 1
        elif kind == wire.SUBSCRIBED:
            log.debug("subscribed to %s on %d of %d hosts", event, value, total)
        else:
            print(f"fleetclt: {value}", file=sys.stderr, flush=True)
            return ExitStatus.FAILED
    return ExitStatus.SOME_FAILED if failed else ExitStatus.OK


def timed_out(seen: int, number: int | None, timeout: float) -> str:
    """The line `subscribe -t` ends with when the events took longer."""
    return f"Timeout: {seen} of {number or 'the'} events within {timeout:g} s"
