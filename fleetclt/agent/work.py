"""What a fleet command does, defined once: the CLI's direct path and the agent both run this.

Output and exit codes are the same with and without the agent (docs/agent.md)
because the selection and the per-host action are these functions in both.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..client.session import HostSession, SubscriptionEnded
from ..errors import ConfigError
from ..fleet.fleet import Fleet
from ..fleet.results import FleetResult, HostResult, ResultCallback
from ..inventory.load import Inventory
from ..local.state import last_failed
from ..protocol.jsonrpc import CollectionUpdate
from .wire import HostWork

OnEvent = Callable[[str, CollectionUpdate], None]     # (host, event)
OnEnd = Callable[[str, SubscriptionEnded], None]      # (host, the server's end)


def select_hosts(inventory: Inventory, pattern: str | None) -> tuple[list[str], list[str]]:
    """The names `--hosts` selects (no match is a usage error), and those whose certificates go unchecked."""
    pattern = "all" if pattern is None else pattern  # '' (an unset $HOSTS) is an error, not all
    specs = inventory.select(pattern, failed=last_failed(inventory.path))
    if not specs:
        raise ConfigError(f"no host of {inventory.path} matches {pattern!r}")
    unverified = [spec.name for spec in specs
                  if not spec.verify_tls and not spec.tls_fingerprint and spec.uri.startswith("wss:")]
    return [spec.name for spec in specs], unverified


def run_work(fleet: Fleet, work: HostWork, names: list[str], deadline: float | None,
             on_result: ResultCallback) -> FleetResult:
    """`work` over `names`. A plain call without -t is the Fleet's call, sent at once to every connected
    host from one greenlet (docs/performance.md); the rest take a pool greenlet per host. A greenlet per
    host parks its stack while it waits: at 1,000 connected hosts the agent's RSS grew ~6 KiB a session
    more than with the Fleet's call. (With -t the Fleet's call would bound the connect by it too.)"""
    if work.command == "call" and work.timeout is None:
        return fleet.call(work.method, *work.params, hosts=names, job=work.job, deadline=deadline,
                          on_result=on_result)
    return fleet.run(action(work), hosts=names, deadline=deadline, on_result=on_result)


def action(work: HostWork) -> Callable[[HostSession], Any]:
    """The action of `call` (the method, maybe its job) or `ping` (round trip, version, dialect)."""
    if work.command == "ping":
        return lambda session: _ping(session, work.timeout)
    return lambda session: session.call(work.method, *work.params, timeout=work.timeout, job=work.job)


def _ping(session: HostSession, timeout: float | None) -> dict[str, Any]:
    started = time.monotonic()
    session.call("core.ping", timeout=timeout)
    rtt = time.monotonic() - started
    return {"rtt_ms": round(rtt * 1000, 2), "version": session.call("system.version_short"),
            "api": session.dialect}


def subscription(event: str, on_event: OnEvent, on_end: OnEnd) -> Callable[[HostSession], None]:
    """The action of `subscribe --hosts`: each host's events and end, told with the host's name."""
    def subscribe(session: HostSession) -> None:
        name = session.name
        session.subscribe(event, lambda update: on_event(name, update), on_end=lambda notice: on_end(name, notice))
    return subscribe


def event_row(host: str, update: CollectionUpdate) -> dict[str, Any]:
    """One event as `subscribe --hosts` prints it: a JSON line tagged with its host, as `call -o jsonl` rows are."""
    return {"host": host, "msg": update.msg, "collection": update.collection, "id": update.id,
            "fields": update.fields}


def ended_row(host: str, notice: SubscriptionEnded) -> HostResult | None:
    """The server ended a host's subscription with an error: that host's failed row; None for a clean end."""
    return None if notice.error is None else HostResult.from_error(host, notice.error, 0.0)
