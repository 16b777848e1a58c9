"""Live rollout progress on stderr: a redrawn block on a terminal, one line per event in logs.

Both views are rollout observers. They print a line per stage, host start, end
or detach and halt, and show, per stage and overall, hosts waiting / running /
done / failed, the mean and lowest job percent and the slowest host with its
progress description: the terminal view as a block redrawn in place every
second, the log view as a summary line every SUMMARY_EVERY seconds. Both warn
when a job's progress has not changed for `stall_after` seconds.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import gevent

from ..rollout.observer import ACTIVE, UNSTARTED, BaseObserver, HostState

if TYPE_CHECKING:
    from ..rollout.engine import Rollout, RolloutResult
    from ..rollout.journal import HostRecord

SUMMARY_EVERY = 10.0   # seconds between summary lines when stderr is a log
SHOWN_RUNNING = ACTIVE | {HostState.DETACHED}   # counted as running: their jobs go on


def progress_view(stream: TextIO, stall_after: float) -> LogView:
    """The view that suits `stream`: redrawn in place on a terminal, plain lines otherwise."""
    return (TerminalView if stream.isatty() else LogView)(stream, stall_after)


class LogView(BaseObserver):
    """One line per event, a summary line now and then, stall warnings: for logs and pipes."""

    def __init__(self, stream: TextIO, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.stall_after, self.clock = stream, stall_after, clock
        self._last_change: dict[str, tuple[Any, float]] = {}
        self._warned: set[str] = set()
        self._last_summary = clock()
        self._ticker: gevent.Greenlet | None = None

    # -- observer events -------------------------------------------------------------------
    def stage_started(self, rollout: Rollout, index: int) -> None:
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick, rollout)
        self._emit(f"stage {index + 1}/{len(rollout.plan.stages)}: {len(rollout.plan.stages[index])} hosts",
                   rollout)

    def host_started(self, rollout: Rollout, record: HostRecord) -> None:
        self._emit(f"{record.host}: started {rollout.plan.method}", rollout)

    def host_progress(self, rollout: Rollout, record: HostRecord, progress: dict[str, Any]) -> None:
        key = (progress.get("percent"), progress.get("description"))
        if self._last_change.get(record.host, (None, 0.0))[0] != key:
            self._last_change[record.host] = (key, self.clock())
            self._warned.discard(record.host)

    def host_finished(self, rollout: Rollout, record: HostRecord) -> None:
        detail = "" if record.state is HostState.OK else f": {(record.error or {}).get('reason', '')}"
        self._emit(f"{record.host}: {record.state.value}{detail}", rollout)

    host_unhealthy = host_finished

    def host_detached(self, rollout: Rollout, record: HostRecord) -> None:
        self._emit(f"{record.host}: detached from job {record.job_id} (it keeps running)", rollout)

    def halted(self, rollout: Rollout, reason: str) -> None:
        self._emit(f"HALTED: {reason}; no new job will start", rollout)

    def finished(self, rollout: Rollout, result: RolloutResult) -> None:
        if self._ticker is not None:
            self._ticker.kill()
        self._clear()
        self.stream.write(summary(rollout) + "\n")
        self.stream.flush()

    # -- display ---------------------------------------------------------------------------
    def _tick(self, rollout: Rollout) -> None:
        while True:
            gevent.sleep(1.0)
            self._check_stalls(rollout)
            self._refresh(rollout)

    def _refresh(self, rollout: Rollout) -> None:
        if self.clock() - self._last_summary >= SUMMARY_EVERY:
            self._emit(summary(rollout), rollout)

    def _check_stalls(self, rollout: Rollout) -> None:
        now = self.clock()
        for host, (key, since) in list(self._last_change.items()):
            running = rollout.records[host].state is HostState.RUNNING
            if running and host not in self._warned and now - since >= self.stall_after:
                self._warned.add(host)
                percent, description = key
                self._emit(f"WARNING {host}: job {rollout.records[host].job_id} has not progressed for "
                           f"{now - since:.0f} s (at {percent}% {description or ''})".rstrip(), rollout)

    def _emit(self, line: str, rollout: Rollout) -> None:
        self.stream.write(line + "\n")
        self._last_summary = self.clock()
        self.stream.flush()

    def _clear(self) -> None:
        """Nothing to erase in a log."""


class TerminalView(LogView):
    """The same lines, with the summary block kept below them and redrawn in place every second."""

    def __init__(self, stream: TextIO, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, stall_after, clock)
        self._drawn = 0

    def _refresh(self, rollout: Rollout) -> None:
        self._redraw(rollout)

    def _emit(self, line: str, rollout: Rollout) -> None:
        self._clear()
        super()._emit(line, rollout)
        self._redraw(rollout)

    def _redraw(self, rollout: Rollout) -> None:
        self._clear()
        block = summary(rollout)
        self.stream.write(block + "\n")
        self._drawn = block.count("\n") + 1
        self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\033[F\033[K" * self._drawn)
            self._drawn = 0


def _counts(records: list[HostRecord]) -> str:
    tally = {"waiting": 0, "running": 0, "done": 0, "failed": 0}
    for record in records:
        if record.state in UNSTARTED:
            tally["waiting"] += 1
        elif record.state in SHOWN_RUNNING:
            tally["running"] += 1
        elif record.state is HostState.OK:
            tally["done"] += 1
        else:
            tally["failed"] += 1
    return ", ".join(f"{value} {name}" for name, value in tally.items())


def summary(rollout: Rollout) -> str:
    """Two lines: the current stage and the whole rollout, then the jobs' progress."""
    index = rollout.stage_index
    stage = [r for r in rollout.records.values() if r.stage == index]
    lines = [f"stage {index + 1}/{len(rollout.plan.stages)}: {_counts(stage)} | "
             f"overall: {_counts(list(rollout.records.values()))}"]
    running = {h: p for h, p in rollout.job_progress.items() if rollout.records[h].state is HostState.RUNNING}
    if running:
        percents = [p.get("percent") or 0 for p in running.values()]
        slowest = min(running, key=lambda h: running[h].get("percent") or 0)
        lines.append(f"jobs: mean {sum(percents) / len(percents):.0f}%, lowest {min(percents)}%; "
                     f"slowest {slowest} at {running[slowest].get('percent') or 0}% "
                     f"{running[slowest].get('description') or ''}".rstrip())
    return "\n".join(lines)
