"""Secret: masked everywhere, resolved lazily, errors point at the inventory line."""
from __future__ import annotations

import os

import pytest

from fleetclt.errors import InventoryError
from fleetclt.secret import Location, Secret

VALUE = "s3cr3t-Value-42"
WHERE = Location("inventory.yaml", 7, "hosts.nas01.password")


def write_key(path, text: str = VALUE + "\n", mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def error_text(secret: Secret) -> str:
    with pytest.raises(InventoryError) as info:
        secret.reveal()
    assert VALUE not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return str(info.value)


def test_literal_reveals_value_and_masks_repr_and_str():
    secret = Secret(VALUE, where=WHERE)
    assert secret.reveal() == VALUE
    assert repr(secret) == "Secret('***', source='literal')"
    assert str(secret) == f"{secret}" == "*** (literal)"
    assert VALUE not in repr([secret]) + str({"k": secret})


def test_env_reference_is_read_at_reveal_time(monkeypatch):
    secret = Secret.env("FLEETCLT_TEST_PW", WHERE)
    monkeypatch.setenv("FLEETCLT_TEST_PW", "first")
    assert secret.reveal() == "first"
    monkeypatch.setenv("FLEETCLT_TEST_PW", "rotated")
    assert secret.reveal() == "rotated"
    assert repr(secret) == "Secret('***', source='env:FLEETCLT_TEST_PW')"
    assert "rotated" not in repr(secret) + str(secret)


def test_missing_env_var_names_file_line_and_key(monkeypatch):
    monkeypatch.delenv("FLEETCLT_TEST_PW", raising=False)
    text = error_text(Secret.env("FLEETCLT_TEST_PW", WHERE))
    assert text == ("inventory.yaml:7: hosts.nas01.password: "
                    "environment variable FLEETCLT_TEST_PW is not set")


def test_empty_env_var_is_refused(monkeypatch):
    monkeypatch.setenv("FLEETCLT_TEST_PW", "")
    assert error_text(Secret.env("FLEETCLT_TEST_PW", WHERE)).endswith("FLEETCLT_TEST_PW is empty")


def test_error_carries_location_attributes(monkeypatch):
    monkeypatch.delenv("FLEETCLT_TEST_PW", raising=False)
    with pytest.raises(InventoryError) as info:
        Secret.env("FLEETCLT_TEST_PW", WHERE).reveal()
    assert (info.value.path, info.value.line, info.value.key) == (
        "inventory.yaml", 7, "hosts.nas01.password")


def test_file_reference_strips_exactly_one_trailing_newline(tmp_path):
    assert Secret.file(write_key(tmp_path / "a.key")).reveal() == VALUE
    assert Secret.file(write_key(tmp_path / "b.key", VALUE + "\n\n")).reveal() == VALUE + "\n"
    assert Secret.file(write_key(tmp_path / "c.key", VALUE + "\r\n")).reveal() == VALUE
    assert Secret.file(write_key(tmp_path / "d.key", VALUE)).reveal() == VALUE


def test_file_is_read_again_after_rotation(tmp_path):
    path = write_key(tmp_path / "k.key")
    secret = Secret.file(path, WHERE)
    assert secret.reveal() == VALUE
    write_key(tmp_path / "k.key", "new-key\n")
    assert secret.reveal() == "new-key"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_file_accessible_by_others_is_refused_with_chmod_hint(tmp_path, mode):
    path = write_key(tmp_path / "open.key", mode=mode)
    text = error_text(Secret.file(path, WHERE))
    assert text.startswith("inventory.yaml:7: hosts.nas01.password: secret file ")
    assert f"(mode {mode:04o})" in text
    assert text.endswith(f"chmod 600 {path}")


def test_owner_only_modes_are_accepted(tmp_path):
    assert Secret.file(write_key(tmp_path / "ro.key", mode=0o400)).reveal() == VALUE


def test_missing_file_names_location(tmp_path):
    text = error_text(Secret.file(str(tmp_path / "absent.key"), WHERE))
    assert text.startswith("inventory.yaml:7: hosts.nas01.password: cannot read secret file ")
    assert "No such file or directory" in text


def test_directory_is_not_a_secret_file(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o700)
    assert error_text(Secret.file(str(folder), WHERE)).endswith("is not a regular file")


def test_empty_and_binary_files_are_refused(tmp_path):
    assert error_text(Secret.file(write_key(tmp_path / "e.key", "\n"), WHERE)).endswith("is empty")
    binary = tmp_path / "b.key"
    binary.write_bytes(VALUE.encode() + b"\xff\xfe")
    os.chmod(binary, 0o600)
    assert error_text(Secret.file(str(binary), WHERE)).endswith("is not valid UTF-8")


def test_relative_path_is_anchored_at_base_dir(tmp_path):
    write_key(tmp_path / "rel.key")
    secret = Secret.file("rel.key", WHERE, base_dir=str(tmp_path))
    assert secret.reveal() == VALUE
    assert secret.source == "file:rel.key"


def test_tilde_is_expanded_at_reveal_time(tmp_path, monkeypatch):
    write_key(tmp_path / "home.key")
    monkeypatch.setenv("HOME", str(tmp_path))
    secret = Secret.file("~/home.key", WHERE)
    assert secret.reveal() == VALUE
    assert repr(secret) == "Secret('***', source='file:~/home.key')"


def test_secret_is_immutable():
    secret = Secret(VALUE)
    with pytest.raises(AttributeError):
        secret._ref = "other"  # type: ignore[misc]
    assert secret.reveal() == VALUE


def test_equality_follows_the_reference_not_the_location():
    assert Secret.env("A", WHERE) == Secret.env("A") != Secret.env("B")
    assert Secret(VALUE) == Secret(VALUE, where=WHERE) != Secret.env(VALUE)
    assert len({Secret.env("A"), Secret.env("A", WHERE)}) == 1
    assert Secret.env("A") != "A"


def test_location_renders_like_an_inventory_error():
    assert str(WHERE) == "inventory.yaml:7: hosts.nas01.password"
    assert str(Location("x.yaml")) == "x.yaml"
    assert str(WHERE.error("boom")) == "inventory.yaml:7: hosts.nas01.password: boom"
    assert Secret.env("A").where == Location()


def test_an_encrypted_value_is_decrypted_only_at_reveal_time_and_never_shown():
    calls = []

    def decrypt(ciphertext: str, where: Location) -> str:
        calls.append((ciphertext, where))
        return VALUE

    secret = Secret.encrypted("$ANSIBLE_VAULT;1.1;AES256\n6162", WHERE, decrypt)
    assert calls == [] and secret.source == "vault"
    assert repr(secret) == "Secret('***', source='vault')" and str(secret) == "*** (vault)"
    assert "ANSIBLE_VAULT" not in repr(secret) + str(secret)
    assert secret.reveal() == VALUE and calls == [("$ANSIBLE_VAULT;1.1;AES256\n6162", WHERE)]
    assert secret == Secret.encrypted("$ANSIBLE_VAULT;1.1;AES256\n6162", WHERE, decrypt) != Secret(VALUE)
