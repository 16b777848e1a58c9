"""`fleetclt sim` as a user runs it: a real subprocess, READY on stdout, clean exit on SIGTERM."""
from __future__ import annotations

import socket
import stat
import sys

import pytest
import yaml
from gevent import subprocess

from tests.helpers import START_TIMEOUT, start_sim, stop_sim
from tests.wsclient import Rejected, WsClient


def free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def login_and_info(uri, password):
    client = WsClient(uri)
    try:
        client.login("admin", password)
        return client.result("system.info")
    finally:
        client.close()


def test_generated_fleet_writes_an_inventory_without_secrets(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    process, ready = start_sim("--count", "3", "--listen", "127.3.0.1", "--port", "0",
                               "--write-inventory", str(inventory))
    try:
        assert "3 hosts" in ready and f"inventory={inventory}" in ready
        secret_file = tmp_path / "inventory.yaml.secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        password = secret_file.read_text().strip()
        text = inventory.read_text()
        assert password not in text
        data = yaml.safe_load(text)
        assert data["defaults"]["password"] == {"file": str(secret_file.resolve())}
        uris = [h["uri"] for h in data["hosts"].values()]
        assert [u.split("//")[1].split(":")[0] for u in uris] == ["127.3.0.1", "127.3.0.2", "127.3.0.3"]
        assert login_and_info(uris[2], password)["hostname"] == "sim003"
    finally:
        code, stderr = stop_sim(process)
    assert code == 0 and "stopped 3 hosts" in stderr
    assert password not in stderr


def test_password_env_is_printed_once_and_referenced(tmp_path):
    inventory = tmp_path / "inv.yaml"
    process, _ = start_sim("--count", "1", "--listen", "127.3.2.1", "--port", "0",
                           "--write-inventory", str(inventory), "--password-env", "SIM_PW")
    code, stderr = stop_sim(process)
    assert code == 0
    assert yaml.safe_load(inventory.read_text())["defaults"]["password"] == {"env": "SIM_PW"}
    assert stderr.count("export SIM_PW=") == 1


def test_serves_the_loopback_hosts_of_an_existing_inventory(tmp_path):
    port = free_port("127.3.1.1")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""
defaults:
  username: admin
  password: {{env: FLEET_PW}}
hosts:
  local1: {{uri: "ws://127.3.1.1:{port}/api/current"}}
  old1: {{uri: "ws://127.3.1.2:{port}/websocket"}}
  remote1: {{address: 10.0.0.1, scheme: ws}}
""")
    process, ready = start_sim("-i", str(inventory), env={"FLEET_PW": "s3cret-pw"})
    try:
        assert "2 hosts" in ready
        assert login_and_info(f"ws://127.3.1.1:{port}/api/current", "s3cret-pw")["hostname"] == "local1"
        with pytest.raises(Rejected):
            WsClient(f"ws://127.3.1.2:{port}/api/current")  # a 24.10 host: redirect, no upgrade
    finally:
        code, stderr = stop_sim(process)
    assert code == 0 and "skipping remote1: 10.0.0.1 is not a loopback address" in stderr
    assert "s3cret-pw" not in stderr


def test_broken_inventory_is_a_clear_error_with_exit_1(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  nas1:\n    prot: 6000\n")
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "sim", "-i", str(inventory)],
                            capture_output=True, text=True, timeout=START_TIMEOUT)
    assert result.returncode == 1
    assert f"{inventory}:3: hosts.nas1.prot" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_inventory_path_is_a_clear_error():
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "sim", "--count", "1", "--port", "0",
                             "--listen", "127.3.3.1", "--write-inventory", "/nonexistent/dir/inv.yaml"],
                            capture_output=True, text=True, timeout=START_TIMEOUT)
    assert result.returncode == 1 and "cannot write the inventory" in result.stderr
    assert "Traceback" not in result.stderr


def test_idle_timeout_cuts_a_silent_connection_as_a_proxy_would():
    process, ready = start_sim("--count", "1", "--listen", "127.3.4.1", "--port", "0", "--idle-timeout", "0.3")
    try:
        uri = next(word for word in ready.split() if word.startswith("ws://"))
        assert WsClient(uri).wait_closed(timeout=10).code == 1006, "cut with no close frame"
    finally:
        code, _ = stop_sim(process)
    assert code == 0


def test_a_port_in_use_is_one_line_with_exit_1():
    with socket.socket() as taken:
        taken.bind(("127.3.5.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "sim", "--count", "1", "--listen", "127.3.5.1",
                                 "--port", str(port)], capture_output=True, text=True, timeout=START_TIMEOUT)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"fleetclt: cannot listen on ws://127.3.5.1:{port}/api/current: Address already in use "
                             "(another simulator? --port 0 picks free ports)\n")
