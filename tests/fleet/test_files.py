"""fleetclt.download and fleetclt.backup over simulated fleets: files, checks, manifest, retention, secrecy."""
from __future__ import annotations

import hashlib
import logging
import re
import stat
import tarfile
import threading
from pathlib import Path

import gevent
import orjson
import pytest

from fleetclt import ConfigError, Status
from fleetclt.fleet.files import PartFile
from fleetclt.sim import Faults, SimClock
from fleetclt.sim.api_files import change_config, debug_pieces
from tests.helpers import four_versions, inline_fleet

DEBUG_SIZE = 2 * 1024 * 1024 + 3


@pytest.fixture
def sim(monkeypatch):
    with four_versions(monkeypatch, "FILES_PW", "127.16.0.1",
                       clock=SimClock(speed=10), faults=Faults(job_duration=0.2, debug_size=DEBUG_SIZE)) as fleet:
        yield fleet


@pytest.fixture
def fleet(sim):
    with inline_fleet(sim, "FILES_PW") as fleet:
        yield fleet


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part") or p.name.endswith(".link")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_from_every_version_lands_complete_and_private(sim, fleet, tmp_path):
    result = fleet.download("system.debug", dest=tmp_path)
    assert set(result.ok) == {h.name for h in sim.hosts}
    for host in sim.hosts:
        row = result[host.name].result
        path = tmp_path / host.name / "debug.tgz"
        assert row["path"] == str(path) and row["size"] == DEBUG_SIZE == path.stat().st_size
        assert row["sha256"] == sha256(path) and path.read_bytes() == b"".join(debug_pieces(host, DEBUG_SIZE))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert leftovers(tmp_path) == []


def test_a_failed_job_leaves_no_file_at_all(sim, fleet, tmp_path):
    sim["sim002"].faults.job_failure = "error"
    sim["sim002"].faults.fail_at_percent = 0
    result = fleet.download("system.debug", dest=tmp_path, hosts="sim001,sim002")
    assert result["sim001"].ok and result["sim002"].status is Status.FAILED
    assert "Simulated failure of system.debug" in str(result["sim002"].error)
    assert not (tmp_path / "sim002").exists() or list((tmp_path / "sim002").iterdir()) == []


def test_the_name_template_and_the_filename(sim, fleet, tmp_path):
    result = fleet.download("config.save", {"secretseed": True}, dest=tmp_path, hosts="sim003",
                      template="{method}/{host}-{job_id}-{filename}", filename="../evil/cfg.tar")
    path = Path(result["sim003"].result["path"])
    assert path.parent == tmp_path / "config.save" and re.fullmatch(r"sim003-\d+-_evil_cfg\.tar", path.name)
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["freenas-v1.db", "pwenc_secret"]
    with pytest.raises(ConfigError, match="not a plain relative path"):
        fleet.download("system.debug", dest=tmp_path, template="../{host}")


def test_no_token_reaches_logs_results_or_errors(sim, fleet, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="fleetclt")
    sim["sim004"].faults.job_failure = "error"
    result = fleet.download("system.debug", dest=tmp_path)
    assert result["sim004"].status is Status.FAILED
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("fleetclt.sim"))
    text += repr(result) + "".join(str(r.to_dict()) for r in result.values())
    assert "auth_token=********" in text, "the frames were logged, masked"
    assert not re.search(r"auth_token=(?!\*{8})", text)


def test_backup_manifest_links_unchanged_and_keeps_n(sim, fleet, tmp_path):
    first = fleet.backup(tmp_path, hosts="sim001,sim002")
    assert set(first.ok) == {"sim001", "sim002"} and not first["sim001"].result["unchanged"]
    second = fleet.backup(tmp_path, hosts="sim001,sim002")
    one, two = Path(first["sim001"].result["path"]), Path(second["sim001"].result["path"])
    assert second["sim001"].result["unchanged"] and one != two and one.stat().st_ino == two.stat().st_ino
    change_config(sim["sim002"])
    third = fleet.backup(tmp_path, hosts="sim001,sim002", keep=2)
    assert not third["sim002"].result["unchanged"]
    manifest = orjson.loads((tmp_path / "manifest.json").read_bytes())["backups"]
    assert [(e["host"], e["file"]) for e in manifest] == sorted(
        (host, f"{host}/{p.name}") for host in ("sim001", "sim002") for p in (tmp_path / host).iterdir())
    assert len(manifest) == 4
    for entry in manifest:
        path = tmp_path / entry["file"]
        assert entry["sha256"] == sha256(path) and entry["size"] == path.stat().st_size
        assert entry["version"] == sim[entry["host"]].config.version and entry["time"].endswith("Z")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with tarfile.open(tmp_path / manifest[0]["file"]) as tar:
        assert "pwenc_secret" not in tar.getnames() and "root_authorized_keys" in tar.getnames()
    assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o600


def test_a_broken_manifest_stops_the_backup_before_any_host(sim, fleet, tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="move it away"):
        fleet.backup(tmp_path)
    assert sum(h.counters.jobs_started for h in sim.hosts) == 0


def test_a_killed_writer_s_last_step_ends_before_its_part_is_removed(tmp_path):
    """PartFile writes in the thread pool: a kill must not close the descriptor under a running write."""
    part = PartFile(tmp_path / "debug.tgz")
    started, release, order = threading.Event(), threading.Event(), []

    def slow_step() -> None:
        started.set()
        release.wait(10)
        order.append("step ended")
    writer = gevent.spawn(part._off_hub, slow_step)
    gevent.get_hub().threadpool.apply(started.wait, (10,))
    writer.kill()
    gevent.spawn(release.set)  # runs once discard() waits
    part.discard()
    order.append("discarded")
    assert order == ["step ended", "discarded"] and not part.path.exists()
