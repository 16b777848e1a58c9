"""Live rollout progress on stderr: a redrawn block on a terminal, one line per event in logs.

Shows, per stage and overall, hosts waiting / running / done / failed, the mean
and lowest job percent, the slowest host with its progress description, and a
warning when a job's progress has not changed for `stall_after` seconds.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import gevent

if TYPE_CHECKING:
    from ..rollout.engine import Rollout
    from ..rollout.journal import HostRecord

SUMMARY_EVERY = 10.0   # seconds between summary lines when stderr is a log


class RolloutView:
    """The progress hook of a rollout, plus a ticker for stalls and the redrawn display."""

    def __init__(self, stream: TextIO, tty: bool, stall_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.tty, self.stall_after, self.clock = stream, tty, stall_after, clock
        self._last_change: dict[str, tuple[Any, float]] = {}
        self._warned: set[str] = set()
        self._drawn = 0
        self._last_summary = clock()
        self._ticker: gevent.Greenlet | None = None

    def __call__(self, event: str, rollout: Rollout, record: HostRecord | None) -> None:
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick, rollout)
        if event == "progress" and record is not None:
            self._note_progress(rollout, record)
            return
        line = _event_line(event, rollout, record)
        if line:
            self._emit(line, rollout)

    def close(self, rollout: Rollout) -> None:
        if self._ticker is not None:
            self._ticker.kill()
        self._clear()
        self.stream.write(summary(rollout) + "\n")
        self.stream.flush()

    def _note_progress(self, rollout: Rollout, record: HostRecord) -> None:
        progress = rollout.job_progress.get(record.host, {})
        key = (progress.get("percent"), progress.get("description"))
        if self._last_change.get(record.host, (None, 0.0))[0] != key:
            self._last_change[record.host] = (key, self.clock())
            self._warned.discard(record.host)

    def _tick(self, rollout: Rollout) -> None:
        while True:
            gevent.sleep(1.0)
            self._check_stalls(rollout)
            if self.tty:
                self._redraw(rollout)
            elif self.clock() - self._last_summary >= SUMMARY_EVERY:
                self._emit(summary(rollout), rollout)

    def _check_stalls(self, rollout: Rollout) -> None:
        now = self.clock()
        for host, (key, since) in list(self._last_change.items()):
            running = rollout.records[host].state == "running"
            if running and host not in self._warned and now - since >= self.stall_after:
                self._warned.add(host)
                percent, description = key
                self._emit(f"WARNING {host}: job {rollout.records[host].job_id} has not progressed for "
                           f"{now - since:.0f} s (at {percent}% {description or ''})".rstrip(), rollout)

    def _emit(self, line: str, rollout: Rollout) -> None:
        self._clear()
        self.stream.write(line + "\n")
        self._last_summary = self.clock()
        if self.tty:
            self._redraw(rollout)
        self.stream.flush()

    def _redraw(self, rollout: Rollout) -> None:
        self._clear()
        block = summary(rollout)
        self.stream.write(block + "\n")
        self._drawn = block.count("\n") + 1
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\033[F\033[K" * self._drawn)
            self._drawn = 0


def _event_line(event: str, rollout: Rollout, record: HostRecord | None) -> str | None:
    if event == "stage":
        index = rollout.stage_index
        return f"stage {index + 1}/{len(rollout.plan.stages)}: {len(rollout.plan.stages[index])} hosts"
    if event == "halted":
        return f"HALTED: {rollout.halted}; no new job will start"
    if record is None:
        return None
    if event == "started":
        return f"{record.host}: started {rollout.plan.method}"
    if event == "finished":
        detail = "" if record.state == "ok" else f": {(record.error or {}).get('reason', '')}"
        return f"{record.host}: {record.state}{detail}"
    if event == "detached":
        return f"{record.host}: detached from job {record.job_id} (it keeps running)"
    return None


def _counts(records: list[HostRecord]) -> str:
    tally = {"waiting": 0, "running": 0, "done": 0, "failed": 0}
    for record in records:
        if record.state in ("waiting", "not_started"):
            tally["waiting"] += 1
        elif record.state in ("submitting", "running", "detached"):
            tally["running"] += 1
        elif record.state == "ok":
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
    running = {h: p for h, p in rollout.job_progress.items() if rollout.records[h].state == "running"}
    if running:
        percents = [p.get("percent") or 0 for p in running.values()]
        slowest = min(running, key=lambda h: running[h].get("percent") or 0)
        lines.append(f"jobs: mean {sum(percents) / len(percents):.0f}%, lowest {min(percents)}%; "
                     f"slowest {slowest} at {running[slowest].get('percent') or 0}% "
                     f"{running[slowest].get('description') or ''}".rstrip())
    return "\n".join(lines)
