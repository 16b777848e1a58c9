"""fleetclt.upload over simulated hosts: every version, TLS, the rate cap, refusals, restores, secrecy."""
from __future__ import annotations

import json
import logging
import tarfile
import time

import pytest

from fleetclt import ConfigError, Fleet, Status, TransferError, parse_inventory
from fleetclt.sim import Faults, SimClock
from fleetclt.sim.api_files import files_of
from fleetclt.sim.api_upload import write_update_image
from tests.helpers import four_versions, inline_fleet, record_tokens, wait_until

MIB = 1024 * 1024


@pytest.fixture
def sim(monkeypatch):
    with four_versions(monkeypatch, "UPLOAD_PW", "127.18.0.1",
                       clock=SimClock(speed=20), faults=Faults(job_duration=0.2)) as fleet:
        yield fleet


@pytest.fixture
def fleet(sim):
    with inline_fleet(sim, "UPLOAD_PW") as fleet:
        yield fleet


def database(tar_path):
    with tarfile.open(tar_path) as tar:
        return tar.extractfile("freenas-v1.db").read()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "TrueNAS-26.0.1.update"
    write_update_image(path, "26.0.1", 3 * MIB + 17)
    return path


def test_an_image_reaches_every_version_once_and_installs(sim, fleet, image):
    sent: dict[str, int] = {}
    result = fleet.upload("update.file", {}, files=image,
                    on_sent=lambda host, count: sent.__setitem__(host, sent.get(host, 0) + count))
    assert set(result.ok) == {h.name for h in sim.hosts}
    size = image.stat().st_size
    for host in sim.hosts:
        row = result[host.name].result
        assert row["bytes"] == size and row["result"] is None and isinstance(row["job_id"], int)
        assert files_of(host).uploads == 1 and files_of(host).images_installed == 1
        assert size < sent[host.name] < size + 1024, "the file and its multipart framing, once"


def test_a_tls_host_gets_the_same_bytes_through_buffered_reads(make_host, tls_files, tmp_path, image, monkeypatch):
    host = make_host("tls", version="25.10.1", certfile=tls_files["cert"], keyfile=tls_files["key"],
                     faults=Faults(job_duration=0.1))
    monkeypatch.setenv("PW", "fleetclt-sim")
    inventory = parse_inventory(f"hosts:\n  tls: {{uri: '{host.uri}', username: admin, password: {{env: PW}}, "
                                f"ca_file: '{tls_files['ca']}'}}\n")
    with Fleet(inventory, hub="inline") as fleet:
        result = fleet.upload("update.file", {}, files=str(image))
    assert host.uri.startswith("wss://") and result["tls"].ok, result["tls"].error
    assert files_of(host).images_installed == 1


def test_the_rate_caps_all_uploads_together(sim, fleet, tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"\0" * MIB)
    started = time.monotonic()
    result = fleet.upload("update.file", {}, files=blob, hosts="sim001,sim002", rate=2 * MIB)
    # 2 MiB at 2 MiB/s: the last piece (1/20 s of the rate) starts no earlier than 0.95 s in.
    assert time.monotonic() - started >= 0.9
    assert set(result.failed) == {"sim001", "sim002"}, "no image: the jobs fail, the bytes were sent"
    with pytest.raises(ConfigError, match="above 0"):
        fleet.upload("update.file", {}, files=blob, rate=0)


def test_a_refused_upload_and_a_failed_job_are_told_apart(sim, fleet, image, tmp_path):
    sim["sim002"].data.users[0]["roles"] = []        # admin is no full admin there any more
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a configuration")
    result = fleet.upload("config.upload", files=garbage, hosts="sim001,sim002")
    refused = result["sim002"].error
    assert isinstance(refused, TransferError) and refused.status == 403 and "403: Forbidden" in str(refused)
    assert result["sim001"].status is Status.FAILED and "is not valid" in str(result["sim001"].error)
    assert files_of(sim["sim001"]).uploads == 1 and files_of(sim["sim002"]).uploads == 0
    with pytest.raises(ConfigError, match="cannot read"):
        fleet.upload("config.upload", files=tmp_path / "missing.tar")


def test_a_backup_restores_and_the_host_reboots(sim, fleet, tmp_path):
    saved = fleet.backup(tmp_path / "backups", hosts="sim003")["sim003"].result["path"]
    host = sim["sim003"]
    boot = host.boot_id
    files_of(host).config_generation += 1
    result = fleet.upload("config.upload", files=saved, hosts="sim003")
    assert result["sim003"].ok and result["sim003"].result["result"] is None
    wait_until(lambda: host.boot_id != boot and host.middleware_up.is_set(), timeout=30)
    after = fleet.backup(tmp_path / "backups", hosts="sim003")["sim003"].result["path"]
    assert database(after) == database(saved), "the restored configuration is the one saved"


def test_no_token_reaches_logs_or_results(sim, fleet, image, caplog, monkeypatch):
    made = record_tokens(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="fleetclt")
    sim["sim004"].data.users[0]["roles"] = []
    result = fleet.upload("update.file", {}, files=image)
    assert len(made) == 4 and set(result.failed) == {"sim004"}, "an upload token per host (no session token: " \
        "a session asks for its first one 10 s after its login)"
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("fleetclt.sim"))
    text += repr(result) + json.dumps([str(r.to_dict()) for r in result.values()])
    assert '"method":"auth.generate_token"' in text.replace(" ", ""), "the frames were logged"
    assert not [token for token in made if token in text]
