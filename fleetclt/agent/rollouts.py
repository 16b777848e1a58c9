"""Rollouts in the agent: the library's engine on the agent's own sessions, watched by any number of clients.

`rollout` starts or resumes a run (fleetclt/agent/rollout_work.py, as the CLI's
direct path does); the agent's pid holds the run's lock and the journal is the
same file. A foreground client owns its run: Ctrl-C (an `interrupt` line) or
hanging up interrupts it, as Ctrl-C or the end of the process does without the
agent. `--detach` gets the run's first line and goes; the run goes on. `attach`
watches a run: hanging up only stops watching. `rollout_stop` starts no new
job and lets running ones finish, or aborts them. The journal stays the source
of truth: an agent that dies loses nothing a `--resume` needs (docs/agent.md).

Each viewer's lines are queued and sent by its own connection's greenlet, so a
slow or stuck client never holds up the engine; one that falls MAX_BACKLOG
lines behind is dropped.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import gevent
from gevent import socket
from gevent.queue import Queue

from ..errors import FleetError
from ..rollout.engine import Rollout, RolloutResult
from ..rollout.journal import HostRecord, writable_dir
from ..rollout.observer import ACTIVE, BaseObserver
from . import wire
from .fleets import AgentFleet
from .rollout_work import open_rollout, remember
from .work import select_hosts

log = logging.getLogger(__name__)

MAX_BACKLOG = 10_000   # lines a viewer may fall behind before it is dropped
STOP_WAIT = 10.0       # seconds a stopping agent gives its interrupted rollouts to journal their end


class _Viewer:
    """One client's queue of encoded lines; None ends it."""

    def __init__(self) -> None:
        self.lines: Queue[bytes | None] = Queue()
        self.closed = False

    def put(self, line: bytes) -> None:
        if self.closed:
            return
        if self.lines.qsize() >= MAX_BACKLOG:
            log.warning("a rollout viewer fell %d lines behind: dropped", MAX_BACKLOG)
            self.close()
            return
        self.lines.put(line)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.lines.put(None)


def _record(record: HostRecord) -> dict[str, Any]:
    return dict(record.__dict__)


class AgentRun(BaseObserver):
    """One rollout the agent drives, and its viewers: every engine event goes to each of them."""

    def __init__(self, rollout: Rollout, inventory: str) -> None:
        self.rollout, self.inventory = rollout, inventory
        self.viewers: list[_Viewer] = []
        self.result: RolloutResult | None = None
        self.greenlet: gevent.Greenlet | None = None

    def info(self, **extra: Any) -> bytes:
        rollout = self.rollout
        return wire.encode(wire.run_info(
            run_id=rollout.run_id, journal=str(rollout.journal.path), pid=os.getpid(), method=rollout.plan.method,
            stages=[list(stage) for stage in rollout.plan.stages], stall_after=rollout.plan.stall_after,
            stage_index=rollout.stage_index, records=[_record(r) for r in rollout.records.values()],
            job_progress=dict(rollout.job_progress),
            halted=rollout.stop_asked or rollout.halted or rollout.journal_failed, **extra))

    def watch(self, **extra: Any) -> _Viewer:
        """A new viewer: the run as it stands, then its events; an ended run's last event at once."""
        viewer = _Viewer()
        viewer.put(self.info(**extra))
        if self.result is not None:
            viewer.put(self._finished_line(self.result))
            viewer.close()
        else:
            self.viewers.append(viewer)
        return viewer

    def unwatch(self, viewer: _Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)

    def close_viewers(self) -> None:
        for viewer in self.viewers:
            viewer.close()
        self.viewers.clear()

    def _send(self, name: str, **fields: Any) -> None:
        line = wire.encode(wire.run_event(name, **fields))
        for viewer in list(self.viewers):
            viewer.put(line)

    # -- observer events (called in the engine's greenlets) ------------------------------
    def stage_started(self, rollout: Rollout, index: int) -> None:
        self._send("stage_started", index=index)

    def host_started(self, rollout: Rollout, record: HostRecord) -> None:
        self._send("host_started", record=_record(record))

    def host_progress(self, rollout: Rollout, record: HostRecord, progress: dict[str, Any]) -> None:
        self._send("host_progress", host=record.host, progress=progress)

    def host_finished(self, rollout: Rollout, record: HostRecord) -> None:
        self._send("host_finished", record=_record(record))

    def host_unhealthy(self, rollout: Rollout, record: HostRecord) -> None:
        self._send("host_unhealthy", record=_record(record))

    def host_detached(self, rollout: Rollout, record: HostRecord) -> None:
        self._send("host_detached", record=_record(record))

    def halted(self, rollout: Rollout, reason: str) -> None:
        self._send("halted", reason=reason)

    def finished(self, rollout: Rollout, result: RolloutResult) -> None:
        self.result = result  # told to the viewers once the run let go of its lock (AgentRollouts._drive)

    def tell_end(self) -> None:
        """The run is over and its lock free: record @failed, then tell every viewer, so that a client's
        next command (a --resume, `--hosts @failed`) finds both done."""
        if self.result is not None:
            remember(self.inventory, self.result)
            line = self._finished_line(self.result)
            for viewer in self.viewers:
                viewer.put(line)
        self.close_viewers()

    @staticmethod
    def _finished_line(result: RolloutResult) -> bytes:
        return wire.encode(wire.run_event("finished", stop_reason=result.stop_reason,
                                      records=[_record(r) for r in result.hosts.values()]))


class AgentRollouts:
    """The rollouts one agent drives, by run id, and the requests about them."""

    def __init__(self, fleets: AgentFleet) -> None:
        self.fleets = fleets
        self.runs: dict[str, AgentRun] = {}

    def serve(self, request: wire.Request, sock: socket.socket) -> None:
        if request.op == wire.ROLLOUT:
            self._start(request, sock)
            return
        run = self.runs.get(request.run_id or "")
        if run is None or (run.result is not None and request.op == wire.ROLLOUT_STOP):
            _reply(sock, wire.encode(wire.not_here(str(request.run_id))))
        elif request.op == wire.ATTACH:
            self._view(run, run.watch(), sock, owner=False)
        else:
            log.warning("rollout %s: stop asked%s", run.rollout.run_id, " (abort)" if request.abort else "")
            run.rollout.stop_new(request.abort)
            running = sum(1 for r in run.rollout.records.values() if r.state in ACTIVE)
            _reply(sock, wire.encode(wire.stop_taken(run.rollout.run_id, running)))

    def stop_all(self) -> None:
        """The agent stops: interrupt every run (their jobs go on, as after Ctrl-C) and let them journal it."""
        for run in self.runs.values():
            run.rollout.stop()
        gevent.joinall([run.greenlet for run in self.runs.values() if run.greenlet is not None], timeout=STOP_WAIT)

    def _start(self, request: wire.Request, sock: socket.socket) -> None:
        work = request.rollout
        if work is None:
            raise FleetError("a rollout request without its rollout")
        if work.resume is None:
            writable_dir()
        inventory = self.fleets.inventory()
        names, unverified = select_hosts(inventory, request.hosts) if request.hosts is not None or \
            work.resume is None else (None, [])
        plain = [name for name in names or () if inventory.hosts[name].sends_plain_api_key]
        rollout = open_rollout(self.fleets.fleet(request.forks, request.max_connecting), work, names)
        run = AgentRun(rollout, inventory.path)
        rollout.observers.append(run)
        self.runs[rollout.run_id] = run
        log.warning("rollout %s %s: %s on %d hosts%s", rollout.run_id, "resumed" if work.resume else "started",
                    rollout.plan.method, len(rollout.records), ", detached" if work.detach else "")
        viewer = None if work.detach else run.watch(unverified=unverified, plain=plain)
        self.fleets.hold(rollout.records)
        run.greenlet = gevent.spawn(self._drive, run)
        if viewer is None:
            _reply(sock, run.info(unverified=unverified, plain=plain))  # gone already: the run goes on all the same
        else:
            self._view(run, viewer, sock, owner=True)

    def _drive(self, run: AgentRun) -> None:
        try:
            result = run.rollout.run()
            log.warning("rollout %s: %s", run.rollout.run_id, result.stop_reason)
        except Exception:
            log.exception("rollout %s failed in the agent", run.rollout.run_id)
        finally:
            self.runs.pop(run.rollout.run_id, None)
            self.fleets.release(run.rollout.records)
            run.tell_end()

    def _view(self, run: AgentRun, viewer: _Viewer, sock: socket.socket, *, owner: bool) -> None:
        """Send the viewer's lines until the run ends or the client goes; the owner's going interrupts it."""
        listener = gevent.spawn(_listen, sock, run, viewer, owner)
        try:
            while (line := viewer.lines.get()) is not None:
                sock.sendall(line)
        except OSError:
            if owner:
                _interrupt(run)
        finally:
            listener.kill()
            run.unwatch(viewer)


def _listen(sock: socket.socket, run: AgentRun, viewer: _Viewer, owner: bool) -> None:
    """The client's lines while it watches: the owner's `interrupt`; the end of the connection."""
    decoder = wire.LineDecoder()
    try:
        while data := sock.recv(4096):
            for message in decoder.feed(data):
                if owner and message.get("op") == wire.INTERRUPT:
                    _interrupt(run)
    except (OSError, wire.WireError):
        pass
    if owner:
        _interrupt(run)  # its events still end with `finished`, which nobody reads now
    viewer.close()


def _reply(sock: socket.socket, line: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(line)


def _interrupt(run: AgentRun) -> None:
    if run.result is None:
        log.warning("rollout %s: interrupted by its client", run.rollout.run_id)
        run.rollout.stop()
