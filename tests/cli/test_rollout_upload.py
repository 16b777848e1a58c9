"""`fleetclt rollout --upload`: a staged manual update of 20 mixed hosts, killed (SIGKILL) mid-rollout
with jobs running and one upload half sent, then resumed: every host gets the image exactly once."""
from __future__ import annotations

import orjson
import pytest

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.api_files import files_of
from fleetclt.sim.api_upload import write_update_image
from fleetclt.sim.http_upload import hold_uploads
from tests.cli.rollout_helpers import cli_env, finish, first_line, fleetclt, kill, running_in_journal, served
from tests.helpers import wait_until

VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")
NAMES = [f"sim{i:03d}" for i in range(1, 21)]


@pytest.fixture
def sim(tmp_path):
    with served(tmp_path, 20, "127.18.2.1", clock=SimClock(speed=100), faults=Faults(job_duration=20),
                versions=VERSIONS) as fleet:
        yield fleet


def test_a_killed_upload_rollout_resumes_without_sending_anything_twice(sim, tmp_path):
    env = cli_env(tmp_path)
    image = tmp_path / "TrueNAS-26.0.1.update"
    write_update_image(image, "26.0.1", 32 * 1024 * 1024)  # beyond what loopback's socket buffers hold
    stage_two = NAMES[2:7]                       # --batch 2,25%,100%: stages of 2, 5 and 13 hosts
    for name in stage_two[:4]:
        sim[name].hold_jobs(True)               # these have their image; their jobs wait
    hold_uploads(sim[stage_two[4]], 300 * 1024)  # this one's upload stops a third of the way
    process = fleetclt(env, "-i", str(sim.inventory_path), "rollout", "--hosts", "all", "--batch", "2,25%,100%",
                       "--upload", str(image), "-o", "json", "update.file", "{}")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, stage_two[:4], stage=1)
               and files_of(sim[stage_two[4]]).upload_held.is_set(), timeout=60)
    kill(process)
    assert [files_of(sim[name]).uploads for name in NAMES] == [1] * 7 + [0] * 13
    for name in stage_two[:4]:
        sim[name].hold_jobs(False)
    hold_uploads(sim[stage_two[4]], None)        # the rest of that body never comes: its job fails
    code, out, err = finish(fleetclt(env, "rollout", "--resume", run_id, "--max-fail", "1", "-o", "json"))
    report = orjson.loads(out)
    assert code == 2, err
    assert report["summary"] == {"ok": 19, "failed": 1} and report["stop_reason"] == "completed"
    assert "Checksum mismatch" in report["hosts"][stage_two[4]]["error"]["reason"], "its own job, adopted"
    assert [files_of(sim[name]).uploads for name in NAMES] == [1] * 20, "each host received the image once"
    assert [files_of(sim[name]).images_installed for name in NAMES] == [int(n != stage_two[4]) for n in NAMES]
    assert [report["hosts"][name]["stage"] for name in NAMES] == [1] * 2 + [2] * 5 + [3] * 13


def test_a_resume_refuses_a_changed_file_and_a_new_upload_flag(sim, tmp_path):
    env = cli_env(tmp_path)
    image = tmp_path / "img"
    write_update_image(image, "26.0.1", 1000)
    for host in sim.hosts:
        host.hold_jobs(True)
    process = fleetclt(env, "-i", str(sim.inventory_path), "rollout", "--hosts", "sim001,sim002", "--upload",
                       str(image), "-o", "json", "update.file", "{}")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, ["sim001", "sim002"], stage=0), timeout=60)
    kill(process)
    code, _, err = finish(fleetclt(env, "rollout", "--resume", run_id, "--upload", str(image)))
    assert code == 1 and "a resume sends the files it started with" in err
    write_update_image(image, "26.0.2", 1001)
    code, _, err = finish(fleetclt(env, "rollout", "--resume", run_id))
    assert code == 1 and "changed since it started" in err and len(err.strip().splitlines()) == 1, err
