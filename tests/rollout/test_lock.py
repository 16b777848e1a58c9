"""One process drives a rollout at a time: the run's lock, its holder and stale lock files."""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from gevent import subprocess

from fleetclt.errors import ConfigError
from fleetclt.rollout.journal import Journal, lock_path
from fleetclt.rollout.lock import Holder, RolloutRunning, RunLock, boot_id, is_locked, process_start_time


def test_a_second_open_of_a_running_rollout_refuses_naming_the_pid():
    journal = Journal.create({"plan": {}, "inventory": "x.yaml"})
    with pytest.raises(RolloutRunning) as info:
        Journal.open(journal.run_id)
    assert str(info.value) == f"rollout {journal.run_id} is running (pid {os.getpid()})"
    assert isinstance(info.value, ConfigError), "the CLI prints it as one line, exit 1"
    journal.close()
    reopened, _ = Journal.open(journal.run_id)
    reopened.close()


def test_release_empties_the_file_so_a_reused_pid_means_nothing():
    journal = Journal.create({"plan": {}, "inventory": "x.yaml"})
    assert json.loads(lock_path(journal.run_id).read_text())["pid"] == os.getpid()
    journal.close()
    assert lock_path(journal.run_id).read_text() == "" and not is_locked(lock_path(journal.run_id))


def holder_file(path, holder):
    path.write_text(json.dumps({"pid": holder.pid, "boot_id": holder.boot_id, "started": holder.started}))


@pytest.fixture
def other_process():
    """A live process that is not this one."""
    # blocks on its stdin until the test kills it: no fixed sleep
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield process
    process.kill()
    process.wait()
    process.stdin.close()


def test_an_unlocked_file_whose_holder_lives_on_this_boot_refuses(tmp_path, other_process):
    """What a file system whose locks do not reach this machine would show: the pid decides."""
    path = tmp_path / "r.lock"
    holder_file(path, Holder(other_process.pid, boot_id(), process_start_time(other_process.pid)))
    with pytest.raises(RolloutRunning, match=rf"\(pid {other_process.pid}\)"):
        RunLock.acquire(path, "r")


@pytest.mark.parametrize("stale", ["dead pid", "reused pid", "earlier boot"])
def test_a_stale_lock_file_is_taken_over(tmp_path, other_process, stale):
    path = tmp_path / "r.lock"
    live = Holder(other_process.pid, boot_id(), process_start_time(other_process.pid))
    if stale == "dead pid":
        other_process.send_signal(signal.SIGKILL)
        other_process.wait()
        holder = live
    elif stale == "reused pid":
        holder = Holder(live.pid, live.boot_id, str(int(live.started) + 1))
    else:
        holder = Holder(live.pid, "00000000-0000-0000-0000-000000000000", live.started)
    holder_file(path, holder)
    lock = RunLock.acquire(path, "r")
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_the_lock_goes_with_its_process_even_on_sigkill(tmp_path):
    path = tmp_path / "r.lock"
    code = ("import sys; from pathlib import Path; from fleetclt.rollout.lock import RunLock; "
            "lock = RunLock.acquire(Path(sys.argv[1]), 'r'); print('locked', flush=True); sys.stdin.read()")
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "locked\n"
    with pytest.raises(RolloutRunning, match=rf"\(pid {process.pid}\)"):
        RunLock.acquire(path, "r")
    process.kill()
    process.wait()
    process.stdin.close()
    process.stdout.close()
    RunLock.acquire(path, "r").release()
