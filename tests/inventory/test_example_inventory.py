"""inventory.example.yaml parses, documents what it claims, and works with `fleetclt sim -i`."""
from __future__ import annotations

from pathlib import Path

from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import load_inventory
from tests.helpers import start_sim, stop_sim

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"


def test_example_resolves_inheritance_as_documented():
    inventory = load_inventory(EXAMPLE)
    nas01, nas03 = inventory.hosts["nas01"], inventory.hosts["nas03"]
    assert nas01.uri == "ws://127.0.10.1:6000/api/current" and nas01.timeout == 20
    assert nas01.groups == ("eu-west", "eu", "canary") and nas01.vars["region"] == "eu"
    assert nas03.timeout == 30 and inventory.hosts["nas04"].uri.endswith("/websocket")
    assert [s.name for s in inventory.select("eu")] == ["nas01", "nas02", "nas03"]


def test_example_is_served_by_the_simulator_and_answers(monkeypatch):
    monkeypatch.setenv("TRUENAS_PASSWORD", "change-me")
    process, ready = start_sim("-i", str(EXAMPLE), env={"TRUENAS_PASSWORD": "change-me"})
    try:
        assert "5 hosts" in ready
        with Fleet.from_inventory(EXAMPLE) as fleet:
            result = fleet.call("system.info")
    finally:
        code, _ = stop_sim(process)
    assert not result.failed and code == 0
    assert result["nas04"].result["version"] == "TrueNAS-SCALE-24.10.2"  # 24.10 writes it long (docs/protocol.md §11)
