"""Many simulated hosts in one process, and the inventory that points at them.

Hosts get consecutive loopback addresses (127.1.0.1, 127.1.0.2, ...) so each
looks like its own machine; all of 127.0.0.0/8 is local on Linux, so no
interface set-up is needed. One listener and one session cost about 2 fds.
"""
from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gevent
import yaml

from ..errors import ConfigError
from ..local.rlimit import ensure_open_files
from .clock import SimClock
from .config import DEFAULT_USER, Faults, HostConfig
from .host import SimHost

DEFAULT_BASE_ADDRESS = "127.1.0.1"
RACK_SIZE = 20
FDS_PER_HOST = 3


def loopback_addresses(base: str, count: int) -> list[str]:
    """`count` consecutive addresses from `base`, all inside 127.0.0.0/8."""
    try:
        first = ipaddress.IPv4Address(base)
    except ValueError as exc:
        raise ConfigError(f"--listen: {base!r} is not an IPv4 address") from exc
    last = first + max(0, count - 1) if int(first) + count - 1 <= 0xFFFFFFFF else None
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    if first not in loopback or last is None or last not in loopback:
        raise ConfigError(f"--listen: {count} hosts from {base} would leave 127.0.0.0/8")
    return [str(first + i) for i in range(count)]


@dataclass
class SimFleet:
    """A set of running SimHosts sharing one clock."""

    hosts: list[SimHost]
    clock: SimClock = field(default_factory=SimClock)

    @classmethod
    def create(cls, count: int, *, base_address: str = DEFAULT_BASE_ADDRESS, port: int = 0,
               users: Mapping[str, str] | None = None, clock: SimClock | None = None,
               faults: Faults | None = None, versions: Iterable[str] = ("25.10.1",)) -> SimFleet:
        """`count` hosts named sim001..; versions cycle over the hosts (mixed fleets)."""
        clock = clock or SimClock()
        version_list = list(versions)
        width = max(3, len(str(count)))
        hosts = [SimHost(HostConfig(f"sim{i + 1:0{width}d}", address=address, port=port,
                                    version=version_list[i % len(version_list)],
                                    users=dict(users or {DEFAULT_USER: "fleetclt-sim"})),
                         clock=clock, faults=replace(faults) if faults else None)
                 for i, address in enumerate(loopback_addresses(base_address, count))]
        return cls(hosts, clock)

    @classmethod
    def from_configs(cls, configs: Iterable[HostConfig], clock: SimClock | None = None) -> SimFleet:
        clock = clock or SimClock()
        return cls([SimHost(c, clock=clock) for c in configs], clock)

    def start(self) -> SimFleet:
        ensure_open_files(FDS_PER_HOST * len(self.hosts))
        for host in self.hosts:
            host.start()
        return self

    def stop(self) -> None:
        gevent.joinall([gevent.spawn(host.stop) for host in self.hosts], timeout=10)

    def __enter__(self) -> SimFleet:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __getitem__(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)

    def inventory(self, password_ref: Mapping[str, str], username: str = DEFAULT_USER) -> dict[str, Any]:
        """An inventory dict: credentials only by reference, racks of 20 and a canary group."""
        hosts: dict[str, Any] = {}
        racks: dict[str, list[str]] = {}
        for index, host in enumerate(self.hosts):
            rack = f"rack{index // RACK_SIZE + 1:02d}"
            racks.setdefault(rack, []).append(host.name)
            hosts[host.name] = {"uri": host.uri, "groups": [rack] + (["canary"] if index == 0 else [])}
        groups: dict[str, Any] = {"canary": {"vars": {"role": "first to change"}}}
        groups.update({rack: {} for rack in racks})
        return {"defaults": {"username": username, "password": dict(password_ref)},
                "groups": groups, "hosts": hosts}


def new_password() -> str:
    return secrets.token_urlsafe(18)


def write_inventory(path: Path, inventory: Mapping[str, Any], header: str) -> None:
    text = yaml.safe_dump(dict(inventory), sort_keys=False, default_flow_style=None)
    path.write_text(f"# {header}\n{text}")
