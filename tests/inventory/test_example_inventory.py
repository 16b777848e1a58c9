"""inventory.example.yaml parses, documents what it claims, and works with `fleetclt sim -i`."""
from __future__ import annotations

import socket
from pathlib import Path

from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import load_inventory
from tests.helpers import start_sim, stop_sim

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.example.yaml"
COPY_ADDRESS = "127.42.10."  # the example's hosts, moved to addresses no README command uses


def test_example_resolves_inheritance_as_documented():
    inventory = load_inventory(EXAMPLE)
    nas01, nas03 = inventory.hosts["nas01"], inventory.hosts["nas03"]
    assert nas01.uri == "ws://127.0.10.1:6000/api/current" and nas01.timeout == 20
    assert nas01.groups == ("eu-west", "eu", "canary") and nas01.vars["region"] == "eu"
    assert nas03.timeout == 30 and inventory.hosts["nas04"].uri.endswith("/websocket")
    assert [s.name for s in inventory.select("eu")] == ["nas01", "nas02", "nas03"]


def test_example_is_served_by_the_simulator_and_answers(monkeypatch, tmp_path):
    """The example as `fleetclt sim -i` serves it, moved off its own addresses (127.0.10.x:6000): a user
    following the README may be serving those right now, and this test must neither fail nor disturb that."""
    port = free_port(COPY_ADDRESS + "1")
    copy = tmp_path / "inventory.yaml"
    copy.write_text(EXAMPLE.read_text().replace("127.0.10.", COPY_ADDRESS).replace(":6000", f":{port}")
                    .replace("port: 6000", f"port: {port}"))
    assert "127.0.10." not in copy.read_text() and "6000" not in copy.read_text()
    monkeypatch.setenv("TRUENAS_PASSWORD", "change-me")
    process, ready = start_sim("-i", str(copy), env={"TRUENAS_PASSWORD": "change-me"})
    try:
        assert "5 hosts" in ready
        with Fleet.from_inventory(copy) as fleet:
            result = fleet.call("system.info")
    finally:
        code, _ = stop_sim(process)
    assert not result.failed and code == 0
    assert result["nas04"].result["version"] == "TrueNAS-SCALE-24.10.2"  # 24.10 writes it long (docs/protocol.md §11)


def free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]
