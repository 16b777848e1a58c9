"""What a fleet command does, defined once: the CLI's direct path and the agent both run this.

Output and exit codes are the same with and without the agent (docs/agent.md)
because the selection and the per-host action are these functions in both.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..client.session import HostSession
from ..errors import ConfigError
from ..inventory.load import Inventory
from ..local.state import last_failed
from .wire import HostWork


def select_hosts(inventory: Inventory, pattern: str | None) -> tuple[list[str], list[str]]:
    """The names `--hosts` selects (no match is a usage error), and those whose certificates go unchecked."""
    pattern = "all" if pattern is None else pattern  # '' (an unset $HOSTS) is an error, not all
    specs = inventory.select(pattern, failed=last_failed(inventory.path))
    if not specs:
        raise ConfigError(f"no host of {inventory.path} matches {pattern!r}")
    unverified = [spec.name for spec in specs
                  if not spec.verify_tls and not spec.tls_fingerprint and spec.uri.startswith("wss:")]
    return [spec.name for spec in specs], unverified


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
