"""Output formats hold their shape: JSON lines are lines, tables have headers and columns that fit their cells."""
from __future__ import annotations

import orjson
import pytest
import yaml

from fleetclt.cli.main import main
from fleetclt.cli.output import fleet_table
from fleetclt.errors import FleetError
from fleetclt.fleet.results import FleetResult, HostResult, Status

LONG = "a-host-name-longer-than-sixteen"


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    path = tmp_path / "inventory.yaml"
    path.write_text("groups:\n  eu: {}\nhosts:\n"
                    f"  nas01: {{uri: 'ws://127.0.0.1:1/api/current', groups: [eu]}}\n"
                    f"  {LONG}: {{uri: 'ws://127.0.0.2:1/api/current'}}\n")
    monkeypatch.setenv("FLEETCLT_INVENTORY", str(path))
    return path


def hosts_output(capsys, fmt):
    assert main(["hosts", "--hosts", "all", "-o", fmt]) == 0
    return capsys.readouterr().out


def test_hosts_jsonl_is_one_object_per_line(capsys, inventory):
    rows = [orjson.loads(line) for line in hosts_output(capsys, "jsonl").splitlines()]
    assert [row["host"] for row in rows] == ["nas01", LONG]
    assert rows[0]["uri"] == "ws://127.0.0.1:1/api/current" and rows[0]["groups"] == ["eu"]


def test_hosts_table_has_a_header_and_columns_as_wide_as_the_longest_name(capsys, inventory):
    lines = hosts_output(capsys, "table").splitlines()
    assert lines[0].split() == ["HOST", "URI", "GROUPS"]
    starts = {line.index("ws://") for line in lines[1:]}
    assert starts == {lines[0].index("URI")} == {len(LONG) + 2}


def test_yaml_ends_with_one_newline(capsys, inventory):
    text = hosts_output(capsys, "yaml")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert list(yaml.safe_load(text)["hosts"]) == ["nas01", LONG]


def test_fleet_table_fits_long_names_and_long_statuses_and_marks_a_cut():
    result = FleetResult({
        LONG: HostResult(LONG, Status.OK, result="x" * 300, elapsed=0.012),
        "nas02": HostResult("nas02", Status.REBOOT_REQUIRED, error=FleetError("reboot first"), elapsed=1.5),
        "nas03": HostResult("nas03", Status.HA_UNAVAILABLE, error=FleetError("HA degraded"), elapsed=0.2),
    })
    lines = fleet_table(result, 1.5).splitlines()
    header, rows = lines[0], lines[1:4]
    assert header.split() == ["HOST", "STATUS", "TIME", "RESULT"]
    assert {row.index(status) for row, status in zip(rows, ("ok", "reboot_required", "ha_unavailable"),
                                                     strict=True)} == {header.index("STATUS")}
    assert {row.index("ms") + 2 for row in rows} == {header.index("TIME") + 4}, "times right-aligned under TIME"
    assert {row.split()[3][:1] for row in rows} == {"x", "r", "H"}
    assert rows[0].endswith("x" * 99 + "…") and len(rows[0]) == header.index("RESULT") + 100
    assert lines[4] == "recap: 1 ok, 1 reboot_required, 1 ha_unavailable (3 hosts, 1.50 s)"
