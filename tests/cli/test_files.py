"""`fleetclt download` and `fleetclt backup` in a subprocess: the output contract, a mixed fleet with broken
hosts, retention over runs, and SIGKILL mid-download."""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import replace
from pathlib import Path

import gevent
import orjson
import pytest
import yaml
from gevent import subprocess

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.api_files import files_of
from fleetclt.sim.fleet import SimFleet
from fleetclt.sim.http_files import hold_downloads
from tests.helpers import wait_until

VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")


def start(tmp_path, count, base_address, **faults):
    fleet = SimFleet.create(count, base_address=base_address, users={"admin": "pw"}, clock=SimClock(speed=10),
                            faults=Faults(job_duration=0.2, **faults), versions=VERSIONS).start()
    fleet.inventory_path = tmp_path / "inventory.yaml"
    fleet.inventory_path.write_text(yaml.safe_dump(fleet.inventory({"env": "FILES_PW"})))
    return fleet


def fleetclt(sim, *args):
    """The command in a subprocess, on the fleet's inventory, with a state directory of its own."""
    state = sim.inventory_path.parent / "state"
    command = [sys.executable, "-m", "fleetclt.cli", "-i", str(sim.inventory_path), *args]
    environment = {**os.environ, "FILES_PW": "pw", "FLEETCLT_STATE_DIR": str(state)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def finish(process, timeout=120):
    with gevent.Timeout(timeout):
        out, err = process.communicate()
    return process.returncode, out, err


def test_backup_of_fifty_mixed_hosts_reports_the_broken_ones(tmp_path):
    sim = start(tmp_path, 50, "127.17.0.1")
    try:
        sim["sim007"].go_offline()
        sim["sim013"].config = replace(sim["sim013"].config, users={"admin": "changed"})
        dest = tmp_path / "backups"
        code, out, err = finish(fleetclt(sim, "backup", "--hosts", "all", "--dest", str(dest), "-o", "json"))
    finally:
        sim.stop()
    assert code == 2, err
    report = orjson.loads(out)
    assert report["summary"] == {"ok": 48, "unreachable": 1, "auth_failed": 1}
    assert report["hosts"]["sim007"]["status"] == "unreachable"
    assert report["hosts"]["sim013"]["status"] == "auth_failed"
    files = sorted(p for p in dest.rglob("*.tar"))
    assert len(files) == 48 and not list(dest.rglob("*.part"))
    manifest = orjson.loads((dest / "manifest.json").read_bytes())["backups"]
    assert sorted(dest / e["file"] for e in manifest) == files
    versions = {e["version"] for e in manifest}
    assert versions == set(VERSIONS)
    for entry in manifest:
        assert hashlib.sha256((dest / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
        assert report["hosts"][entry["host"]]["result"]["sha256"] == entry["sha256"]
    assert oct(dest.stat().st_mode & 0o777) == "0o700"


def test_keep_three_after_five_runs_leaves_three_per_host(tmp_path):
    sim = start(tmp_path, 4, "127.17.1.1")
    dest = tmp_path / "backups"
    try:
        for _ in range(5):
            code, _, err = finish(fleetclt(sim, "backup", "--hosts", "all", "--dest", str(dest),
                                           "--keep", "3", "-o", "json"))
            assert code == 0, err
    finally:
        sim.stop()
    for host in sim.hosts:
        assert len(list((dest / host.name).glob("*.tar"))) == 3
    assert len(orjson.loads((dest / "manifest.json").read_bytes())["backups"]) == 12


def test_download_prints_paths_and_sizes(tmp_path):
    sim = start(tmp_path, 2, "127.17.2.1", debug_size=300_000)
    try:
        code, out, err = finish(fleetclt(sim, "download", "--hosts", "all", "--dest", str(tmp_path / "d"),
                                         "-o", "json", "system.debug"))
    finally:
        sim.stop()
    assert code == 0, err
    rows = orjson.loads(out)["hosts"]
    assert {name: row["result"]["size"] for name, row in rows.items()} == {"sim001": 300_000, "sim002": 300_000}
    assert Path(rows["sim001"]["result"]["path"]) == tmp_path / "d" / "sim001" / "debug.tgz"
    assert "auth_token" not in out + err


@pytest.mark.parametrize("args, message", [
    (["download", "--dest", "d", "--name", "/{host}", "system.debug"], "not a plain relative path"),
    (["download", "--dest", "d", "--name", "{nope}", "system.debug"], "unknown field {nope}"),
    (["backup", "--dest", "d", "--keep", "0"], "argument --keep: must be 1 or more, not 0"),
])
def test_usage_errors_are_one_line_and_run_nothing(tmp_path, args, message):
    sim = start(tmp_path, 1, "127.17.3.1")
    try:
        code, out, err = finish(fleetclt(sim, *args))
    finally:
        sim.stop()
    assert code == 1 and out == "" and message in err and "Traceback" not in err
    assert sim.hosts[0].counters.connections == 0


def test_sigkill_mid_download_leaves_no_file_under_its_final_name(tmp_path):
    sim = start(tmp_path, 1, "127.17.4.1", debug_size=8 * 1024 * 1024)
    host, dest = sim.hosts[0], tmp_path / "d"
    hold_downloads(host, 3 * 1024 * 1024)
    try:
        process = fleetclt(sim, "download", "--hosts", "all", "--dest", str(dest), "system.debug")
        assert files_of(host).held.wait(60), "the download never got to its pause"
        wait_until(lambda: [p for p in dest.rglob("*.part") if p.stat().st_size >= 1024 * 1024], timeout=30)
        process.kill()
        finish(process)
    finally:
        hold_downloads(host, None)
        sim.stop()
    assert process.returncode == -9
    assert not (dest / "sim001" / "debug.tgz").exists()
    parts = list(dest.rglob("*.part"))
    assert len(parts) == 1 and parts[0].name.startswith(".debug.tgz.") and parts[0].stat().st_size < 8 * 1024 * 1024
