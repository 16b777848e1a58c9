"""`fleetclt upload` in a subprocess: the output contract, and the confirmation a restore needs."""
from __future__ import annotations

import orjson
import pytest

from fleetclt.sim.api_files import config_tar, files_of
from fleetclt.sim.api_upload import write_update_image
from tests.cli.test_files import finish, fleetclt, start
from tests.helpers import wait_until


@pytest.fixture
def sim(tmp_path):
    fleet = start(tmp_path, 4, "127.18.1.1")
    yield fleet
    fleet.stop()


def test_an_image_to_every_host_reports_job_and_bytes(sim, tmp_path):
    image = tmp_path / "update.img"
    write_update_image(image, "26.0.1", 2 * 1024 * 1024)
    code, out, err = finish(fleetclt(sim, "upload", "--hosts", "all", "--file", str(image), "--rate", "500M",
                                     "--forks", "2", "update.file", "{}", "-o", "json"))
    assert code == 0, err
    report = orjson.loads(out)
    assert report["summary"] == {"ok": 4}
    for host in sim.hosts:
        row = report["hosts"][host.name]["result"]
        assert row["bytes"] == image.stat().st_size and isinstance(row["job_id"], int) and row["result"] is None
        assert files_of(host).uploads == 1


def test_a_restore_without_a_terminal_needs_yes(sim, tmp_path):
    host = sim["sim002"]
    saved = tmp_path / "backup.tar"
    saved.write_bytes(config_tar(host, {"root_authorized_keys": True}))
    code, out, err = finish(fleetclt(sim, "upload", "--hosts", "sim002", "--file", str(saved), "config.upload"))
    assert (code, out) == (1, "") and len(err.strip().splitlines()) == 1, err
    assert "reboots every host it is sent to (sim002): give --yes" in err
    assert files_of(host).uploads == 0
    boot = host.boot_id
    code, out, err = finish(fleetclt(sim, "upload", "--hosts", "sim002", "--file", str(saved), "--yes",
                                     "config.upload", "-o", "json"))
    assert code == 0, err
    assert orjson.loads(out)["hosts"]["sim002"]["status"] == "ok"
    wait_until(lambda: host.boot_id != boot, timeout=30)


def test_a_missing_file_is_one_line_before_any_host_is_asked(sim, tmp_path):
    code, out, err = finish(fleetclt(sim, "upload", "--hosts", "all", "--file", str(tmp_path / "nope.img"),
                                     "update.file", "{}"))
    assert code == 1 and "cannot read" in err and len(err.strip().splitlines()) == 1, err
    assert sum(h.counters.connections for h in sim.hosts) == 0
