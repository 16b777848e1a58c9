"""The agent's sessions: one HostSession per host, kept between commands, and the inventory they come from.

The agent runs the library's Fleet (docs/agent.md): a Fleet per `--forks` /
`--max-connecting` setting asked for, every one of them over the same sessions,
so a host is logged in once whatever the flags. When the inventory file changes
it is read again: the sessions of hosts removed or changed are closed (those of a
running rollout's hosts once it ends), and the next command opens them from the new
settings. A file that no longer loads is
the error of every command until it is fixed, as it would be without the agent.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Iterable

from ..client.session import HostSession
from ..errors import ConfigError, FleetError
from ..fleet.fleet import Fleet, session_for
from ..fleet.results import HostResult
from ..fleet.runner import DEFAULT_FORKS, DEFAULT_MAX_CONNECTING, FanOut, GeventRunner
from ..inventory.load import HostSpec, Inventory, load_inventory
from .streams import Subscriptions

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int, int] | None


def _stamp(path: str) -> Stamp:
    """What tells a changed file: inode (replaced by an editor), size, modification and change times."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class StoppableRunner:
    """The fleet's runner, and a run whose caller is killed (its client hung up) starts no more hosts.

    Killing the greenlet that waits for a fan-out does not stop the pool that
    works through it; without this, every host not started yet would still be
    connected to and called, for nobody. A host already started goes on, as
    after Ctrl-C without the agent: its job may be running.
    """

    def __init__(self, runner: GeventRunner) -> None:
        self._runner = runner
        self.forks = runner.forks

    def connect(self, session: HostSession, within: float | None = None) -> None:
        self._runner.connect(session, within)

    def run(self, fan_out: FanOut) -> None:
        stopped = False
        attempt = fan_out.attempt

        def unless_stopped(name: str) -> HostResult:
            if stopped:
                return HostResult.from_error(name, FleetError("not started: the client went away", name), 0.0)
            return attempt(name)
        try:
            self._runner.run(dataclasses.replace(fan_out, attempt=unless_stopped))
        except BaseException:  # GreenletExit: the agent stopped waiting for this run
            stopped = True
            raise


class AgentFleet:
    """Sessions that outlive one command, over the inventory at `path` (loaded now: a broken one raises)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: Stamp = _stamp(path)
        self._inventory: Inventory = load_inventory(path)
        self._broken: ConfigError | None = None
        self._sessions: dict[str, HostSession] = {}
        self._specs: dict[str, HostSpec] = {}  # what each session was made from
        self._fleets: dict[tuple[int | None, int | None], Fleet] = {}
        self._closed_logins = 0  # logins of sessions closed since, for `agent status`
        self._held: Counter[str] = Counter()  # hosts of running rollouts: their sessions follow jobs
        self._stale: set[str] = set()  # held hosts the inventory changed: closed once released
        self.subscriptions = Subscriptions()
        self.reloads = 0

    def inventory(self) -> Inventory:
        """The inventory as the file says now; a file that does not load raises its error."""
        self.reload_if_changed()
        if self._broken is not None:
            raise self._broken
        return self._inventory

    def fleet(self, forks: int | None, max_connecting: int | None) -> Fleet:
        """The Fleet for these settings (None: the defaults), over the shared sessions."""
        key = (forks, max_connecting)
        fleet = self._fleets.get(key)
        if fleet is None:
            runner = StoppableRunner(GeventRunner(DEFAULT_FORKS if forks is None else forks,
                                                  DEFAULT_MAX_CONNECTING if max_connecting is None else max_connecting))
            fleet = self._fleets[key] = Fleet(self._inventory, runner=runner, hub="inline",
                                              session_factory=self._session)
        return fleet

    def reload_if_changed(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            inventory = load_inventory(self.path)
        except ConfigError as exc:
            if self._broken is None:
                log.warning("the inventory no longer loads, commands fail until it is fixed: %s", exc)
            self._broken = exc
            return
        self._broken = None
        self._inventory = inventory
        self._fleets.clear()  # they hold the old inventory; the sessions they share stay in _sessions
        gone = [name for name, spec in self._specs.items() if inventory.hosts.get(name) != spec]
        held = {name for name in gone if self._held[name]}
        self._stale |= held
        for name in gone:
            if name not in held:
                self._drop(name)
        self.reloads += 1
        log.warning("inventory re-read: %d hosts, %d sessions closed (host removed or changed)%s",
                    len(inventory.hosts), len(gone) - len(held),
                    f", {len(held)} kept until their rollout ends" if held else "")

    def hold(self, names: Iterable[str]) -> None:
        """A rollout runs on these hosts: an inventory change does not close their sessions under
        its jobs (it would lose them: the host would end failed while its job goes on)."""
        for name in names:
            self._held[name] += 1

    def release(self, names: Iterable[str]) -> None:
        """The rollout ended: the sessions an inventory change was waiting for are closed now."""
        for name in names:
            self._held[name] -= 1
            if self._held[name] > 0:
                continue
            del self._held[name]
            if name in self._stale:
                self._stale.discard(name)
                if name in self._specs and self._inventory.hosts.get(name) != self._specs[name]:
                    self._drop(name)

    def figures(self) -> dict[str, object]:
        """Sessions by state and logins so far, for `agent status`."""
        states = Counter("connected" if session.connected else "disconnected" for session in self._sessions.values())
        states["not_opened"] = len(self._inventory.hosts) - len(self._sessions)
        logins = self._closed_logins + sum(session.stats.logins for session in self._sessions.values())
        return {"hosts": len(self._inventory.hosts), "sessions": dict(states), "logins": logins}

    def close(self) -> None:
        """Close every session (each logs out by closing its socket)."""
        for name in list(self._sessions):
            self._drop(name)
        self._fleets.clear()

    def _session(self, spec: HostSpec) -> HostSession:
        session = self._sessions.get(spec.name)
        if session is None:
            session = session_for(spec)  # a host that cannot log in raises here, as without the agent
            self._sessions[spec.name], self._specs[spec.name] = session, spec
        return session

    def _drop(self, name: str) -> None:
        session = self._sessions.pop(name)
        del self._specs[name]
        self._closed_logins += session.stats.logins
        self.subscriptions.session_closed(session)
        session.close()
