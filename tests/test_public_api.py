"""The package's front door: what `import fleetclt` gives a Python user, and what it must not load."""
from __future__ import annotations

import subprocess
import sys

import pytest

import fleetclt
from fleetclt import ConfigError, Credentials, Secret, TLSPolicy, UnknownHostError, parse_inventory

PIN = "ab" * 32


def test_every_public_name_resolves_and_nothing_else_is_promised() -> None:
    assert sorted(set(fleetclt.__all__)) == sorted(fleetclt.__all__)
    for name in fleetclt.__all__:
        assert getattr(fleetclt, name) is not None, name
    assert {"Fleet", "HostSession", "Credentials", "Status", "run_rollout", "download", "backup",
            "upload"} <= set(fleetclt.__all__)


def test_import_loads_neither_the_simulator_nor_gevent_websocket_nor_the_cli() -> None:
    code = ("import sys, fleetclt\n"
            "bad = [m for m in sys.modules if m.split('.')[:2] in (['fleetclt', 'sim'], ['fleetclt', 'cli'])\n"
            "       or m.split('.')[0] == 'geventwebsocket']\n"
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""


def test_credentials_take_plain_strings_and_never_show_them() -> None:
    creds = Credentials("admin", "s3cret-pw", api_key="1-key")
    assert isinstance(creds.password, Secret) and creds.password.reveal() == "s3cret-pw"
    assert isinstance(creds.api_key, Secret) and creds.api_key.reveal() == "1-key"
    assert "s3cret-pw" not in repr(creds) and "1-key" not in repr(creds)
    with pytest.raises(TypeError, match="password must be a str or a Secret"):
        Credentials("admin", 1234)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", [PIN, PIN.upper(), ":".join(PIN[i:i + 2] for i in range(0, 64, 2)),
                                     f"sha256:{PIN}", f"SHA256:{PIN.upper()}"])
def test_a_pin_is_read_the_same_way_in_code_and_in_the_inventory(written: str) -> None:
    assert TLSPolicy(fingerprint=written).fingerprint == PIN
    inventory = parse_inventory(f"hosts:\n  nas01:\n    tls_fingerprint: '{written}'\n")
    assert inventory.hosts["nas01"].tls_fingerprint == PIN


def test_a_bad_pin_in_code_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a SHA-256 fingerprint"):
        TLSPolicy(fingerprint="abc")


def test_an_unknown_host_names_the_near_miss_or_what_exists() -> None:
    near = UnknownHostError("nas1", ["nas01", "web"])
    assert str(near) == "no host named 'nas1' in the inventory; did you mean 'nas01'?"
    error = UnknownHostError("zzz", [f"host{i}" for i in range(8)])
    assert str(error) == "no host named 'zzz' in the inventory; it has host0, host1, host2, host3, host4 and 3 more"
    assert isinstance(error, LookupError) and isinstance(error, ConfigError)
