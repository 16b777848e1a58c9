"""Ansible inventories: ansible_password is the password, !vault values decrypt per host.

Decryption is ansible-core's own (`ansible.parsing.vault.VaultLib`, the optional extra
`fleetclt[vault]`); the tests that need it are skipped only when it is not installed.
Without it, the inventory still loads and only the hosts whose secret is a !vault value
are refused, each with the reason, before any connection.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
from gevent import subprocess

from fleetclt.errors import ConfigError
from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory import vault
from fleetclt.inventory.load import parse_inventory
from fleetclt.protocol.redact import MASK
from fleetclt.secret import Secret

PASSWORD, VAULT_PASSWORD = "pw-Vq31-never-leak", "vault-pw-Kd9"
# `ansible-vault encrypt_string --vault-password-file <(echo vault-pw-Kd9) pw-Vq31-never-leak`
# (ansible-core 2.19): a fixed value, so the tests without the extra need nothing to make one.
VAULTED = """\
$ANSIBLE_VAULT;1.1;AES256
33343233396436363039666239626433653363336266613261663331666265346466393639393738
6163363865336636666463343832643462366164393439340a636366393463393435376632303136
64643539303838653263376637383835353765393230646335343861646661613833343530636530
3535613366303339350a633636623130366131643631383235346335326263313339323232393230
33623264343333646634323337666435386234333230666634663735366162396338
"""


def has_ansible() -> bool:
    try:
        import ansible.parsing.vault  # noqa: F401
    except ImportError:
        return False
    return True


needs_ansible = pytest.mark.skipif(not has_ansible(), reason="ansible-core (fleetclt[vault]) is not installed")


def inventory_text(nas_uri: str = "ws://127.0.0.1:1/api/current", other_uri: str = "ws://127.0.0.1:1/api/current",
                   vaulted: str = VAULTED) -> str:
    block = textwrap.indent(vaulted, " " * 10)
    return (f"all:\n  vars:\n    ansible_user: admin\n  hosts:\n"
            f"    vaulted:\n      fleetclt_uri: {nas_uri}\n      ansible_password: !vault |\n{block}"
            f"      db_password: !vault |\n{block}"
            f"    plain:\n      fleetclt_uri: {other_uri}\n      ansible_ssh_pass: {{env: VAULT_TEST_PW}}\n")


@pytest.fixture(autouse=True)
def no_vault_password(monkeypatch):
    monkeypatch.delenv(vault.PASSWORD_FILE_ENV, raising=False)
    vault.use_password_file("")
    yield
    vault.use_password_file("")


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "vault-pass"
    path.write_text(VAULT_PASSWORD + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def without_ansible(monkeypatch):
    """The extra not installed: Python's own way of making an import fail (None in sys.modules)."""
    for name in ("ansible", "ansible.parsing", "ansible.parsing.vault"):
        monkeypatch.setitem(sys.modules, name, None)


def test_ansible_password_and_ssh_pass_are_the_password_and_never_shown():
    inventory = parse_inventory(inventory_text(), "hosts.yml")
    vaulted, plain = inventory.hosts["vaulted"], inventory.hosts["plain"]
    assert (vaulted.username, vaulted.password.source) == ("admin", "vault")
    assert plain.password == Secret.env("VAULT_TEST_PW")
    assert "ansible_password" not in vaulted.vars and "ansible_ssh_pass" not in plain.vars
    shown = json.dumps([vaulted.to_dict(), plain.to_dict()])
    assert "ANSIBLE_VAULT" not in shown and json.loads(shown)[0]["vars"] == {"db_password": MASK}
    assert repr(vaulted.vars["db_password"]) == "Secret('***', source='vault')"


@pytest.mark.usefixtures("without_ansible")
def test_without_the_extra_only_the_vaulted_host_is_refused(password_file, monkeypatch):
    monkeypatch.setenv("VAULT_TEST_PW", PASSWORD)
    vault.use_password_file(password_file)
    inventory = parse_inventory(inventory_text(), "hosts.yml")
    assert inventory.hosts["plain"].credential_problem() is None
    assert inventory.hosts["vaulted"].credential_problem() == (
        "hosts.yml:7: all.hosts.vaulted.ansible_password: cannot decrypt a !vault value: "
        "ansible-core is not installed (pip install 'fleetclt[vault]')")


def test_a_vault_value_without_a_vault_password_names_both_ways_to_give_one():
    with pytest.raises(ConfigError) as refused:
        parse_inventory(inventory_text(), "hosts.yml").hosts["vaulted"].password.reveal()
    assert str(refused.value) == ("hosts.yml:7: all.hosts.vaulted.ansible_password: cannot decrypt a !vault value: "
                                  "no vault password; give --vault-password-file PATH or set "
                                  "ANSIBLE_VAULT_PASSWORD_FILE")


@needs_ansible
def test_vault_values_decrypt_with_the_password_file_from_the_environment(password_file, monkeypatch):
    monkeypatch.setenv(vault.PASSWORD_FILE_ENV, password_file)
    host = parse_inventory(inventory_text(), "hosts.yml").hosts["vaulted"]
    assert host.password.reveal() == PASSWORD == host.vars["db_password"].reveal()


@needs_ansible
def test_a_wrong_vault_password_is_refused_without_echoing_anything(tmp_path, monkeypatch):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-vault-password\n")
    wrong.chmod(0o600)
    monkeypatch.setenv(vault.PASSWORD_FILE_ENV, str(wrong))
    problem = parse_inventory(inventory_text(), "hosts.yml").hosts["vaulted"].credential_problem()
    assert problem == ("hosts.yml:7: all.hosts.vaulted.ansible_password: "
                       "cannot decrypt the !vault value with the vault password given")


def test_a_vault_password_file_others_can_read_is_refused(password_file, monkeypatch):
    os.chmod(password_file, 0o644)
    monkeypatch.setenv(vault.PASSWORD_FILE_ENV, password_file)
    problem = parse_inventory(inventory_text(), "hosts.yml").hosts["vaulted"].credential_problem()
    assert problem == (f"hosts.yml:7: all.hosts.vaulted.ansible_password: ANSIBLE_VAULT_PASSWORD_FILE: secret file "
                       f"{password_file} is accessible by group or others (mode 0644); run: chmod 600 {password_file}")


@needs_ansible
def test_cli_logs_in_with_a_vaulted_password(make_host, tmp_path, password_file):
    nas = make_host(users={"admin": PASSWORD})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(inventory_text(nas.uri, nas.uri))
    env = {**os.environ, "VAULT_TEST_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(tmp_path / "state")}
    env.pop(vault.PASSWORD_FILE_ENV, None)
    run = subprocess.run([sys.executable, "-m", "fleetclt.cli", "--debug", "-i", str(inventory),
                          "--vault-password-file", password_file, "call", "--hosts", "all", "-o", "json",
                          "auth.me"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)["hosts"]
    assert rows["vaulted"]["result"]["pw_name"] == "admin" == rows["plain"]["result"]["pw_name"]
    assert PASSWORD not in run.stdout + run.stderr and VAULT_PASSWORD not in run.stdout + run.stderr


@needs_ansible
def test_an_agent_started_with_a_vault_password_file_decrypts_too(make_host, tmp_path, password_file):
    """The agent is another process: --vault-password-file reaches it (as the path, in its
    environment), so the vaulted host logs in through it as it does directly."""
    nas = make_host(users={"admin": PASSWORD})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(inventory_text(nas.uri, nas.uri))
    env = {**os.environ, "VAULT_TEST_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(tmp_path / "state"),
           "FLEETCLT_AGENT": "auto"}
    env.pop(vault.PASSWORD_FILE_ENV, None)

    def fleetclt(*args):
        return subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(inventory), *args],
                              capture_output=True, text=True, env=env, timeout=120)
    try:
        run = fleetclt("--vault-password-file", password_file, "call", "--hosts", "all", "-o", "json", "auth.me")
        assert run.returncode == 0 and "started an agent" in run.stderr, run.stderr
        assert json.loads(run.stdout)["hosts"]["vaulted"]["result"]["pw_name"] == "admin"
    finally:
        assert fleetclt("agent", "stop").returncode == 0


@pytest.mark.usefixtures("without_ansible")
def test_the_fleet_goes_on_when_one_host_cannot_decrypt(make_host, password_file, monkeypatch):
    """The refusal comes before any connection: the vaulted host's server sees no login at all."""
    nas, other = make_host("nas01", users={"admin": PASSWORD}), make_host("nas02", users={"admin": PASSWORD})
    monkeypatch.setenv("VAULT_TEST_PW", PASSWORD)
    monkeypatch.setenv(vault.PASSWORD_FILE_ENV, password_file)
    with Fleet(parse_inventory(inventory_text(nas.uri, other.uri), "hosts.yml")) as fleet:
        result = fleet.call("auth.me")
    assert result["plain"].ok and result["plain"].result["pw_name"] == "admin"
    assert result["vaulted"].status.value == "auth_failed"
    assert "ansible-core is not installed" in str(result["vaulted"].error)
    assert nas.counters.connections == 0
