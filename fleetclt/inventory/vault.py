"""Ansible Vault values (``!vault``) in an inventory, decrypted only when revealed.

Private to the inventory package: nodes.py makes a ``!vault`` scalar a ``Secret``
whose ``reveal()`` calls ``decrypt`` here.

Why a module of its own: the format and the cryptography are ansible-core's
(``ansible.parsing.vault.VaultLib``), an optional extra (``pip install
'fleetclt[vault]'``), never re-implemented here. Decrypting at reveal time, as
``{env: NAME}`` is read at reveal time, means an inventory loads without the extra
or the vault password (``fleetclt hosts`` works), and a host whose secret cannot be
decrypted is refused on its own, with the reason, while the rest of the fleet runs.
The vault password is read from ``--vault-password-file`` (``use_password_file``)
or ``$ANSIBLE_VAULT_PASSWORD_FILE``, with the checks of any secret file (mode 0600).
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from ..errors import ConfigError
from ..secret import Location, Secret

PASSWORD_FILE_ENV = "ANSIBLE_VAULT_PASSWORD_FILE"
EXTRA = "pip install 'fleetclt[vault]'"
_chosen = {"path": ""}  # --vault-password-file, which wins over the environment


def use_password_file(path: str) -> None:
    """Read the vault password from ``path`` from now on (the CLI's --vault-password-file)."""
    _chosen["path"] = path


def child_environment() -> dict[str, str]:
    """What a child process (the agent) needs in its environment to decrypt as this one does:
    the --vault-password-file path as $ANSIBLE_VAULT_PASSWORD_FILE (a path, not the password)."""
    return {PASSWORD_FILE_ENV: os.path.abspath(_chosen["path"])} if _chosen["path"] else {}


def _vault_module(where: Location) -> Any:
    try:
        return importlib.import_module("ansible.parsing.vault")
    except ImportError:
        raise where.error(f"cannot decrypt a !vault value: ansible-core is not installed ({EXTRA})") from None


def _password() -> Secret:
    if _chosen["path"]:
        return Secret.file(_chosen["path"], Location(key="--vault-password-file"))
    path = os.environ.get(PASSWORD_FILE_ENV)
    if not path:
        raise ConfigError("cannot decrypt a !vault value: no vault password; give --vault-password-file "
                          f"PATH or set {PASSWORD_FILE_ENV}")
    return Secret.file(path, Location(key=PASSWORD_FILE_ENV))


def decrypt(vaulttext: str, where: Location) -> str:
    """The plain text of one ``!vault`` value; errors name where the value was written."""
    try:
        password = _password().reveal().encode("utf-8")
    except ConfigError as exc:
        raise where.error(str(exc)) from None
    vault = _vault_module(where)
    try:
        plain = vault.VaultLib([("default", vault.VaultSecret(password))]).decrypt(vaulttext)
    except Exception:
        raise where.error("cannot decrypt the !vault value with the vault password given") from None
    try:
        return str(plain.decode("utf-8"))
    except UnicodeDecodeError:
        raise where.error("the !vault value is not UTF-8 text") from None
