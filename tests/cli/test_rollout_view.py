"""The rollout progress displays, driven through their observer events with a fake clock
and a rollout-shaped object."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from fleetclt.cli.rollout_view import LogView, TerminalView, summary
from fleetclt.rollout.journal import HostRecord
from fleetclt.rollout.plan import RolloutPlan


@dataclass
class FakeRollout:
    plan: RolloutPlan
    records: dict
    job_progress: dict = field(default_factory=dict)
    stage_index: int = 1
    halted: str | None = None


def make_rollout():
    plan = RolloutPlan("update.update", stages=(("a",), ("b", "c", "d")))
    records = {"a": HostRecord("a", 0, "ok"), "b": HostRecord("b", 1, "running", job_id=7),
               "c": HostRecord("c", 1, "running", job_id=8), "d": HostRecord("d", 1, "failed")}
    progress = {"b": {"percent": 40, "description": "Downloading"}, "c": {"percent": 10, "description": "Verifying"}}
    return FakeRollout(plan, records, progress)


def test_summary_shows_stage_overall_and_the_slowest_job():
    text = summary(make_rollout())
    assert text.splitlines()[0] == ("stage 2/2: 0 waiting, 2 running, 0 done, 1 failed | "
                                    "overall: 0 waiting, 2 running, 1 done, 1 failed")
    assert text.splitlines()[1] == "jobs: mean 25%, lowest 10%; slowest c at 10% Verifying"


def test_stall_warning_once_per_stall():
    now = [0.0]
    stream = io.StringIO()
    rollout = make_rollout()
    view = LogView(stream, stall_after=300, clock=lambda: now[0])
    view.host_progress(rollout, rollout.records["c"], rollout.job_progress["c"])
    now[0] = 299.0
    view._check_stalls(rollout)
    assert "WARNING" not in stream.getvalue()
    now[0] = 301.0
    view._check_stalls(rollout)
    view._check_stalls(rollout)
    assert stream.getvalue().count("WARNING c: job 8 has not progressed for 301 s (at 10% Verifying)") == 1


def test_log_view_prints_one_line_per_event_then_the_summary():
    stream = io.StringIO()
    rollout = make_rollout()
    rollout.records["d"].error = {"reason": "job 1 (update.update) failed"}
    view = LogView(stream, stall_after=300)
    view.stage_started(rollout, 1)
    view.host_started(rollout, rollout.records["b"])
    view.host_finished(rollout, rollout.records["a"])
    view.host_finished(rollout, rollout.records["d"])
    view.host_detached(rollout, rollout.records["c"])
    view.halted(rollout, "1 of 3 started hosts failed")
    view.finished(rollout, None)
    assert stream.getvalue().splitlines() == [
        "stage 2/2: 3 hosts",
        "b: started update.update",
        "a: ok",
        "d: failed: job 1 (update.update) failed",
        "c: detached from job 8 (it keeps running)",
        "HALTED: 1 of 3 started hosts failed; no new job will start",
        *summary(rollout).splitlines(),
    ]
    assert "\033[" not in stream.getvalue()


def test_terminal_view_keeps_the_block_below_the_event_lines(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    stream = io.StringIO()
    view = TerminalView(stream, stall_after=300)
    rollout = make_rollout()
    view.host_started(rollout, rollout.records["b"])
    view.host_started(rollout, rollout.records["c"])
    text = stream.getvalue()
    assert text.count("\033[F\033[K") == 2, "the two-line block was erased once, to print the second line"
    assert text.endswith("c: started update.update\n" + summary(rollout) + "\n")


def test_terminal_view_fits_each_line_to_the_width_and_erases_every_row_it_drew(monkeypatch):
    """At 80 columns the 93-character summary line is split at its ' | ', a long event line cut with '…'."""
    monkeypatch.setenv("COLUMNS", "80")
    stream = io.StringIO()
    view = TerminalView(stream, stall_after=300)
    rollout = make_rollout()
    rollout.records["d"].error = {"reason": "job 1 (update.update) failed: " + "x" * 100}
    view.host_started(rollout, rollout.records["b"])
    view.host_finished(rollout, rollout.records["d"])
    rows = stream.getvalue().replace("\033[F\033[K", "\n").splitlines()
    assert max(len(row) for row in rows) <= 79
    assert "stage 2/2: 0 waiting, 2 running, 0 done, 1 failed" in rows and \
        "overall: 0 waiting, 2 running, 1 done, 1 failed" in rows
    assert any(row.startswith("d: failed: job 1 (update.update) failed: xxx") and row.endswith("…") for row in rows)
    assert stream.getvalue().count("\033[F\033[K") == 3, "the three-row block was erased row by row, once"
