"""Live rollout progress on stderr: a redrawn block on a terminal, one line per event in logs.

Both views are rollout observers. They print a line per stage, host start, end
or detach and halt, and show, per stage and overall, hosts waiting / running /
done / failed, the mean and lowest job percent and the slowest host with its
progress description: the terminal view as a block redrawn in place every
second, the log view as a summary line every SUMMARY_EVERY seconds. Both warn
when a job's progress has not changed for `stall_after` seconds. On a terminal
every line is fitted to its width (read again at each redraw), so a line never
wraps into a second row the redraw would not erase. They read a RolloutState:
the engine's Rollout when the CLI drives the run, or its mirror kept from the
agent's events (cli/rollout_remote.py), so both look the same.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import gevent

from ..rollout.observer import ACTIVE, UNSTARTED, BaseObserver, HostState

if TYPE_CHECKING:
    from ..rollout.engine import RolloutResult
    from ..rollout.journal import HostRecord
    from ..rollout.plan import RolloutPlan

SUMMARY_EVERY = 10.0   # seconds between summary lines when stderr is a log
SHOWN_RUNNING = ACTIVE | {HostState.DETACHED}   # counted as running: their jobs go on
DEFAULT_WIDTH = 80     # columns, when the terminal does not say


class RolloutState(Protocol):
    """What the views read of a run."""

    plan: RolloutPlan
    records: dict[str, HostRecord]
    stage_index: int
    job_progress: dict[str, dict[str, Any]]


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
    def stage_started(self, rollout: RolloutState, index: int) -> None:
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick, rollout)
        self._emit(f"stage {index + 1}/{len(rollout.plan.stages)}: {len(rollout.plan.stages[index])} hosts",
                   rollout)

    def host_started(self, rollout: RolloutState, record: HostRecord) -> None:
        self._emit(f"{record.host}: started {rollout.plan.method}", rollout)

    def host_progress(self, rollout: RolloutState, record: HostRecord, progress: dict[str, Any]) -> None:
        key = (progress.get("percent"), progress.get("description"))
        if self._last_change.get(record.host, (None, 0.0))[0] != key:
            self._last_change[record.host] = (key, self.clock())
            self._warned.discard(record.host)

    def host_finished(self, rollout: RolloutState, record: HostRecord) -> None:
        detail = "" if record.state is HostState.OK else f": {(record.error or {}).get('reason', '')}"
        self._emit(f"{record.host}: {record.state.value}{detail}", rollout)

    host_unhealthy = host_finished

    def host_detached(self, rollout: RolloutState, record: HostRecord) -> None:
        self._emit(f"{record.host}: detached from job {record.job_id} (it keeps running)", rollout)

    def halted(self, rollout: RolloutState, reason: str) -> None:
        self._emit(f"HALTED: {reason}; no new job will start", rollout)

    def finished(self, rollout: RolloutState, result: RolloutResult) -> None:
        if self._ticker is not None:
            self._ticker.kill()
        self._clear()
        self.stream.write("".join(line + "\n" for line in self._lines(summary(rollout))))
        self.stream.flush()

    # -- display ---------------------------------------------------------------------------
    def _tick(self, rollout: RolloutState) -> None:
        while True:
            gevent.sleep(1.0)
            self._check_stalls(rollout)
            self._refresh(rollout)

    def _refresh(self, rollout: RolloutState) -> None:
        if self.clock() - self._last_summary >= SUMMARY_EVERY:
            self._emit(summary(rollout), rollout)

    def _check_stalls(self, rollout: RolloutState) -> None:
        now = self.clock()
        for host, (key, since) in list(self._last_change.items()):
            running = rollout.records[host].state is HostState.RUNNING
            if running and host not in self._warned and now - since >= self.stall_after:
                self._warned.add(host)
                percent, description = key
                self._emit(f"WARNING {host}: job {rollout.records[host].job_id} has not progressed for "
                           f"{now - since:.0f} s (at {percent}% {description or ''})".rstrip(), rollout)

    def _emit(self, line: str, rollout: RolloutState) -> None:
        self.stream.write("".join(row + "\n" for row in self._lines(line)))
        self._last_summary = self.clock()
        self.stream.flush()

    def _lines(self, text: str) -> list[str]:
        """A log keeps every line whole."""
        return text.splitlines()

    def _clear(self) -> None:
        """Nothing to erase in a log."""


class TerminalView(LogView):
    """The same lines, with the summary block kept below them and redrawn in place every second."""

    def __init__(self, stream: TextIO, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream, stall_after, clock)
        self._drawn = 0

    def _refresh(self, rollout: RolloutState) -> None:
        self._redraw(rollout)

    def _emit(self, line: str, rollout: RolloutState) -> None:
        self._clear()
        super()._emit(line, rollout)
        self._redraw(rollout)

    def _redraw(self, rollout: RolloutState) -> None:
        self._clear()
        block = self._lines(summary(rollout))
        self.stream.write("".join(line + "\n" for line in block))
        self._drawn = len(block)   # one row each: _lines fits them to the width
        self.stream.flush()

    def _lines(self, text: str) -> list[str]:
        """Lines that fit the terminal: a wide summary line is split at its ' | ', then cut with '…'.

        One column is left free: some terminals wrap as soon as the last one is written.
        """
        width = max(terminal_width(self.stream) - 1, 10)
        lines = []
        for line in text.splitlines():
            parts = line.split(" | ") if len(line) > width else [line]
            lines += [part if len(part) <= width else part[:width - 1] + "…" for part in parts]
        return lines

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\033[F\033[K" * self._drawn)
            self._drawn = 0


def terminal_width(stream: TextIO) -> int:
    """$COLUMNS if set (as shutil honours it), else the terminal's own width, else 80."""
    try:
        return max(int(os.environ["COLUMNS"]), 1)
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_WIDTH
    except (OSError, ValueError, AttributeError):
        return DEFAULT_WIDTH


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


def summary(rollout: RolloutState) -> str:
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
