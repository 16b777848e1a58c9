"""A rollout whose journal cannot be written stops acting, and a resume once the disk is fixed finishes it.

The fault is the kernel's: the journal's path is swapped for a symlink to
/dev/full, which the journal's open(O_APPEND) follows, so its next write fails
with ENOSPC exactly as on a full disk. "Fixing the disk" puts the journal back.
The simulated hosts count the jobs submitted to them: the truth about what ran.
"""
from __future__ import annotations

from pathlib import Path

import gevent
import pytest

from fleetclt.rollout.engine import JOURNAL_FAILED, Rollout, run_rollout
from fleetclt.rollout.journal import Journal, JournalWriteError, journal_dir
from fleetclt.rollout.observer import BaseObserver, HostState
from fleetclt.rollout.plan import RolloutPlan
from tests.helpers import fill_disk, fix_disk, wait_until

SIM_HOSTS = (4, "127.9.12.1")


def started(sim):
    return [host.counters.jobs_started for host in sim.hosts]


def resume(fleet, run_id):
    journal, replay = Journal.open(run_id)
    return Rollout.resume(fleet, journal, replay).run()


class DiskFullAtStage(BaseObserver):
    """Fills the disk as stage `index` starts: after its `stage` line, before any of its hosts' lines."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.halts: list[str] = []

    def stage_started(self, rollout, index):
        if index == self.index:
            fill_disk(Path(rollout.journal.path))

    def halted(self, rollout, reason):
        self.halts.append(reason)


def test_a_host_whose_submitting_line_fails_gets_no_job_and_a_resume_finishes_the_run(sim, fleet):
    """The next step after the `submitting` line is the job call: unjournaled, it is never sent."""
    observer = DiskFullAtStage(1)
    result = run_rollout(fleet, "update.update", {}, hosts="all", batch="1", observers=[observer])
    path = journal_dir() / f"{result.run_id}.jsonl"
    assert started(sim) == [1, 0, 0, 0], "nothing was submitted after the failed write"
    assert result.stop_reason == (
        f"{JOURNAL_FAILED}: cannot write the rollout journal {path}: No space left on device; no new job was "
        f"started, 0 running job(s) go on unrecorded; once the disk is fixed, resume with: "
        f"fleetclt rollout --resume {result.run_id}")
    assert [r.state for r in result.hosts.values()] == [HostState.OK] + [HostState.NOT_STARTED] * 3
    assert observer.halts == [f"cannot write the rollout journal {path}: No space left on device; "
                              "nothing more can be recorded"]
    fix_disk(path)
    again = resume(fleet, result.run_id)
    assert again.stop_reason == "completed" and started(sim) == [1] * 4


def test_running_jobs_are_left_running_and_a_resume_picks_them_up_by_id(sim, fleet):
    """sim001's end cannot be journaled: sim002's job, running, is left alone; sim003 and 4 get none."""
    for host in sim.hosts:
        host.hold_jobs(True)
    rollout = Rollout.start(fleet, RolloutPlan("update.update", ({},), window=2), list(fleet.inventory.hosts))
    path = Path(rollout.journal.path)
    run = gevent.spawn(rollout.run)
    wait_until(lambda: all(rollout.records[n].state is HostState.RUNNING for n in ("sim001", "sim002")))
    fill_disk(path)
    sim["sim001"].hold_jobs(False)
    result = run.get(timeout=30)
    assert started(sim) == [1, 1, 0, 0], "the freed slot of the window started nothing"
    assert [job.state for job in sim["sim002"].engine.jobs.values()] == ["RUNNING"], "not aborted"
    states = {name: record.state for name, record in result.hosts.items()}
    assert states == {"sim001": HostState.OK, "sim002": HostState.DETACHED, "sim003": HostState.NOT_STARTED,
                      "sim004": HostState.NOT_STARTED}
    assert "1 running job(s) go on unrecorded" in result.stop_reason
    fix_disk(path)
    for host in sim.hosts:
        host.hold_jobs(False)
    again = resume(fleet, result.run_id)
    assert again.stop_reason == "completed" and started(sim) == [1] * 4, "no job was submitted twice"
    assert again.hosts["sim001"].job_id == result.hosts["sim001"].job_id


def test_a_journal_cut_mid_line_is_ended_before_a_resume_writes(sim, fleet):
    """A write the OS took only part of (a file size limit, a nearly full disk) leaves half a line."""
    result = run_rollout(fleet, "update.update", {}, hosts="sim001", batch="1")
    path = journal_dir() / f"{result.run_id}.jsonl"
    with path.open("ab") as journal:
        journal.write(b'{"kind":"host","host":"sim0')
    again = resume(fleet, result.run_id)
    assert again.stop_reason == "completed" and started(sim) == [1, 0, 0, 0]
    _, replay = Journal.open(result.run_id)
    assert [note["event"] for note in replay.notes][-2:] == ["resumed", "stopped"], "no line was glued to it"


def test_run_rollout_has_no_default_hosts(fleet):
    """The CLI refuses a rollout without --hosts; the library must not update the whole fleet either."""
    with pytest.raises(TypeError, match="hosts"):
        run_rollout(fleet, "update.update", {})  # type: ignore[call-arg]


def test_after_a_failed_write_the_journal_writes_nothing_more():
    """A line may be half on disk after a failure: the process that failed never adds to it; a resume does."""
    journal = Journal.create({"plan": {}})
    kept = journal.path.read_bytes()
    fill_disk(journal.path)
    with pytest.raises(JournalWriteError, match="No space left on device"):
        journal.note("stage", stage=0)
    fix_disk(journal.path)
    with pytest.raises(JournalWriteError, match=f"cannot write the rollout journal {journal.path}: No space"):
        journal.note("stage", stage=0)
    journal.close()
    assert journal.path.read_bytes() == kept
