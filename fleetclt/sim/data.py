"""The domain data of a simulated host: users, pools, datasets, services.

Small, but shaped like the real query results, so demos, rollouts and
filters have something true-looking to work on. It survives a middlewared
restart (it lives on disk on a real host).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .config import HostConfig

SERVICES = ("cifs", "nfs", "ssh", "ftp", "iscsitarget", "snmp", "ups", "smartd")
BUILTIN_UID = 950


def _prop(value: Any, raw: str | None = None) -> dict[str, Any]:
    """A ZFS property dict as pool.dataset.query shows one."""
    raw = str(value) if raw is None else raw
    return {"value": raw, "rawvalue": raw, "parsed": value, "source": "LOCAL"}


def _dataset(name: str, encrypted: bool, used: int) -> dict[str, Any]:
    return {
        "id": name, "name": name, "pool": name.split("/")[0], "type": "FILESYSTEM",
        "mountpoint": f"/mnt/{name}", "encrypted": encrypted, "locked": False,
        "key_format": _prop("PASSPHRASE" if encrypted else None, "passphrase" if encrypted else "none"),
        "encryption_algorithm": _prop("AES-256-GCM" if encrypted else None, "aes-256-gcm" if encrypted else "off"),
        "used": _prop(used), "available": _prop(8 * 2**40 - used),
        "compression": _prop("LZ4", "lz4"), "children": [],
    }


def make_user(user_id: int, uid: int, username: str, full_name: str, builtin: bool) -> dict[str, Any]:
    """A user.query item."""
    return {
        "id": user_id, "uid": uid, "username": username, "full_name": full_name,
        "home": f"/home/{username}" if not builtin else "/var/empty", "shell": "/usr/bin/zsh",
        "group": {"id": 1, "bsdgrp_gid": uid, "bsdgrp_group": username}, "groups": [],
        "builtin": builtin, "local": True, "locked": False, "password_disabled": False,
        "smb": not builtin, "email": None, "sudo_commands": [], "roles": ["FULL_ADMIN"] if builtin else [],
        "api_keys": [],
    }


@dataclass
class HostData:
    """Mutable domain state; methods in api_domain.py read and change it."""

    users: list[dict[str, Any]] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)
    update_config: dict[str, Any] = field(default_factory=lambda: {"autocheck": True, "profile": "GENERAL"})

    @classmethod
    def seed(cls, config: HostConfig) -> HostData:
        digest = hashlib.sha256(config.name.encode()).hexdigest()
        data = cls(services={name: "RUNNING" if name in ("ssh", "cifs") else "STOPPED" for name in SERVICES})
        for offset, username in enumerate(config.users):
            data.users.append(make_user(offset + 1, BUILTIN_UID + offset, username, "Local Administrator", True))
        data.pools.append({"id": 1, "name": "tank", "guid": str(int(digest[:15], 16)), "path": "/mnt/tank",
                           "status": "ONLINE", "healthy": True, "warning": False,
                           "size": 8 * 2**40, "allocated": 2**40, "free": 7 * 2**40})
        data.datasets += [_dataset("tank", False, 2**40), _dataset("tank/secure", True, 2**30),
                          _dataset("tank/home", False, 2**35)]
        return data

    def next_ids(self) -> tuple[int, int]:
        """(id, uid) for a new local user; uids of created users start at 3000 as on TrueNAS."""
        uids = [u["uid"] for u in self.users if not u["builtin"]]
        return max([u["id"] for u in self.users] + [0]) + 1, max(uids + [2999]) + 1

    def dataset(self, name: str) -> dict[str, Any] | None:
        return next((d for d in self.datasets if d["id"] == name), None)
