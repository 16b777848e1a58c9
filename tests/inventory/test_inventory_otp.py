"""`otp_secret` in the inventory: written like the other credentials, checked as early as it can be.

A secret written in the file is checked at load; a reference ({env: NAME}, {file: PATH}, !vault)
when the host is about to log in (HostSpec.credential_problem) or when the agent starts. Errors
name file, line and key, never the value.
"""
from __future__ import annotations

import textwrap

import pytest

from fleetclt.cli.agent_client import start_agent
from fleetclt.errors import ConfigError, InventoryError
from fleetclt.inventory import vault
from fleetclt.inventory.load import parse_inventory
from tests.inventory.test_vault import needs_ansible

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOT_BASE32 = "not-base32-0189-value"


def host_with(otp_secret: str, fmt: str = "native"):
    if fmt == "ansible":
        text = (f"all:\n  hosts:\n    nas01:\n      fleetclt_uri: ws://127.0.0.1:1\n      ansible_user: admin\n"
                f"      ansible_password: pw\n      fleetclt_otp_secret: {otp_secret}\n")
    else:
        text = f"hosts:\n  nas01:\n    uri: ws://127.0.0.1:1\n    username: admin\n    password: pw\n" \
               f"    otp_secret: {otp_secret}\n"
    return parse_inventory(text, "inventory.yaml").hosts["nas01"]


@pytest.mark.parametrize("fmt", ["native", "ansible"])
def test_references_resolve_when_read_and_show_only_their_source(fmt, tmp_path, monkeypatch):
    path = tmp_path / "otp"
    path.write_text(SECRET.lower() + "\n")
    path.chmod(0o600)
    monkeypatch.setenv("OTP_INV_SECRET", "jbsw y3dp ehpk 3pxp")  # as an authenticator app groups it
    by_file, by_env = host_with(f"{{file: {path}}}", fmt), host_with("{env: OTP_INV_SECRET}", fmt)
    assert by_file.otp_secret.reveal() == SECRET.lower() and by_file.credential_problem() is None
    assert by_env.credential_problem() is None
    assert by_file.to_dict()["otp_secret"] == f"file:{path}" and by_env.to_dict()["otp_secret"] == "env:OTP_INV_SECRET"
    assert SECRET not in repr(by_file) + str(by_file.to_dict())


def test_a_written_secret_that_is_not_base32_is_refused_at_load_without_quoting_it():
    with pytest.raises(InventoryError) as refused:
        host_with(f'"{NOT_BASE32}"')
    assert str(refused.value) == ("inventory.yaml:6: hosts.nas01.otp_secret: the TOTP secret is not base32 "
                                  "(letters A-Z and digits 2-7)")


def test_a_written_secret_loads_with_the_literal_warning(caplog):
    assert host_with(SECRET).otp_secret.reveal() == SECRET
    assert "inventory.yaml:6: hosts.nas01.otp_secret: literal secret in the inventory" in caplog.text
    assert SECRET not in caplog.text


def test_a_referenced_secret_is_checked_before_the_host_logs_in(monkeypatch):
    monkeypatch.setenv("OTP_INV_SECRET", NOT_BASE32)
    problem = host_with("{env: OTP_INV_SECRET}").credential_problem()
    assert problem == ("inventory.yaml:6: hosts.nas01.otp_secret: the TOTP secret is not base32 (letters A-Z and "
                       "digits 2-7) (env:OTP_INV_SECRET)")
    monkeypatch.delenv("OTP_INV_SECRET")
    assert host_with("{env: OTP_INV_SECRET}").credential_problem() == (
        "inventory.yaml:6: hosts.nas01.otp_secret: environment variable OTP_INV_SECRET is not set")


@needs_ansible
def test_a_vaulted_secret_decrypts_when_read(tmp_path, monkeypatch):
    from ansible.parsing.vault import VaultLib, VaultSecret
    password = tmp_path / "vault-pass"
    password.write_text("vault-pw-otp\n")
    password.chmod(0o600)
    vaulted = VaultLib([("default", VaultSecret(b"vault-pw-otp"))]).encrypt(SECRET).decode()
    spec = host_with("!vault |\n" + textwrap.indent(vaulted, " " * 8), "ansible")
    assert spec.to_dict()["otp_secret"] == "vault"
    monkeypatch.setenv(vault.PASSWORD_FILE_ENV, str(password))
    assert spec.otp_secret.reveal() == SECRET and spec.credential_problem() is None


def test_agent_start_refuses_an_unset_otp_secret_variable(tmp_path, monkeypatch):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  nas01: {uri: 'ws://127.0.0.1:1', username: a, password: p, "
                         "otp_secret: {env: OTP_AGENT_SECRET}}\n")
    monkeypatch.delenv("OTP_AGENT_SECRET", raising=False)
    with pytest.raises(ConfigError) as refused:
        start_agent(str(inventory), idle=60)
    assert "environment variable OTP_AGENT_SECRET is not set" in str(refused.value)
    assert "the agent resolves secrets in the environment it starts with" in str(refused.value)
