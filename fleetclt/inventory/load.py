"""YAML inventory -> frozen HostSpec / GroupSpec, validated once at load time.

The file format, every setting, the URI rule and the resolution order are
documented in docs/inventory.md. Resolution follows nornir: the host, then its
groups (each followed by the groups it inherits from), then defaults; the first
level that sets a key wins. Every error names file, line and key, and a setting
that would be silently ignored (address/port/scheme/path beside a ``uri``) is an
error instead.
"""
from __future__ import annotations

import dataclasses
import os
import re
import types
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import Node, ScalarNode, SequenceNode

from ..errors import ConfigError, InventoryError
from ..protocol.api_keys import api_key_material
from ..protocol.endpoint import API_PATH, DEFAULT_PORTS, Endpoint
from ..protocol.otp import totp_secret
from ..protocol.redact import MASK, redact
from ..secret import Location, Secret
from .ansible import is_ansible, read_ansible
from .nodes import (
    NATIVE_KEYS,
    SETTINGS,
    Address,
    Doc,
    Entry,
    Items,
    Level,
    Raw,
    Setting,
    check_duplicates,
    check_keys,
    is_null,
    join_key,
    node_kind,
    nonempty_string,
    own_vars,
    set_setting,
    sub_mapping,
    suggest,
    vault_aware,
    yaml_problem,
)
from .patterns import select_names

__all__ = ["GroupSpec", "HostSpec", "Inventory", "load_inventory", "parse_inventory"]

ENV_VAR = "FLEETCLT_INVENTORY"
DEFAULT_PATH = "inventory.yaml"
# libyaml's parser when PyYAML was built with it, for speed (docs/performance.md §5).
# A broken inventory is parsed once: its error is worded from libyaml's message and
# the source at the error's mark, never by a second, pure-Python parse.
# Both read Ansible's !vault values (see nodes.vault_aware).
FAST_LOADER = vault_aware(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_RESERVED = frozenset({"all"})
_PLAIN = ("username", "password", "api_key", "otp_secret", "allow_plain_api_key", "verify_tls", "ca_file",
          "tls_fingerprint", "timeout", "connect_timeout")


@dataclass(frozen=True)
class HostSpec:
    """One host's fully resolved settings; the session needs nothing else."""

    name: str
    uri: str
    address: str
    port: int
    username: str | None = None
    password: Secret | None = None
    api_key: Secret | None = None
    allow_plain_api_key: bool = False  # send api_key over ws:// too (docs/inventory.md)
    otp_secret: Secret | None = None   # base32 TOTP secret for two-factor password logins
    verify_tls: bool = True
    ca_file: str | None = None
    tls_fingerprint: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False)
    controllers: tuple[str, ...] = ()  # an HA pair: every controller's uri, `uri` the first

    def __post_init__(self) -> None:
        _freeze(self, "vars")

    def credential_problem(self) -> str | None:
        """Why this host cannot log in, found without connecting: no credential at all, or one
        that cannot be read now (an unset variable, an unreadable file, a !vault value that
        cannot be decrypted, an otp_secret that is not base32). None when it can. A local
        ``ws+unix://`` socket needs none."""
        if self.api_key is None and self.password is None and not self.uri.startswith("ws+unix://"):
            return "no credential: set password or api_key in the inventory"
        try:
            if self.api_key is not None:
                api_key_material(self.api_key)
            if self.password is not None:
                self.password.reveal()
            if self.otp_secret is not None:
                totp_secret(self.otp_secret)
        except ConfigError as exc:
            return str(exc)
        return None

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """Every credential this host's logins read."""
        return tuple(secret for secret in (self.password, self.api_key, self.otp_secret) if secret is not None)

    @property
    def sends_plain_api_key(self) -> bool:
        """The API key may go over ws:// because this host opted in: worth a warning."""
        return self.api_key is not None and self.allow_plain_api_key and any(
            uri.startswith("ws://") for uri in (self.uri, *self.controllers))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for output: secrets appear only as their source (``env:NAME``), and
        credentials in vars masked (docs/inventory.md, "Secrets")."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("password", "api_key", "otp_secret"):
            out[key] = out[key] and out[key].source
        return {**out, "groups": list(self.groups), "vars": _shown_vars(self.vars),
                "controllers": list(self.controllers)}


@dataclass(frozen=True)
class GroupSpec:
    """A group with its members resolved, children's members included."""

    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _freeze(self, "vars")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for output."""
        return {"name": self.name, "hosts": list(self.hosts),
                "children": list(self.children), "vars": _shown_vars(self.vars)}


@dataclass(frozen=True)
class Inventory:
    """Hosts and groups in file order, read-only once loaded."""

    path: str
    hosts: Mapping[str, HostSpec] = field(hash=False)
    groups: Mapping[str, GroupSpec] = field(hash=False)

    def __post_init__(self) -> None:
        _freeze(self, "hosts", "groups")

    def select(self, pattern: str | Iterable[str],
               failed: AbstractSet[str] = frozenset()) -> list[HostSpec]:
        """Hosts matching an Ansible-style pattern (see fleetclt.inventory.patterns), in file order."""
        members = {name: group.hosts for name, group in self.groups.items()}
        return [self.hosts[n] for n in select_names(pattern, list(self.hosts), members, failed)]


def _shown_vars(value: Any) -> Any:
    """Free-form vars fit for output: credentials masked by name, !vault values masked."""
    def plain(item: Any) -> Any:
        if isinstance(item, Secret):
            return MASK
        if isinstance(item, Mapping):
            return {key: plain(inner) for key, inner in item.items()}
        return [plain(inner) for inner in item] if isinstance(item, (list, tuple)) else item
    return redact(plain(value))


def _freeze(spec: object, *names: str) -> None:
    """Read-only copies of mapping fields, so a frozen spec is frozen all the way down."""
    for name in names:
        object.__setattr__(spec, name, types.MappingProxyType(dict(getattr(spec, name))))


def load_inventory(path: str | os.PathLike[str] | None = None) -> Inventory:
    """Read the inventory at ``path``, else ``$FLEETCLT_INVENTORY``, else ./inventory.yaml."""
    name = os.fspath(path) if path is not None else os.environ.get(ENV_VAR) or DEFAULT_PATH
    try:
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise InventoryError(f"cannot read the inventory: {exc.strerror}", name) from None
    except UnicodeDecodeError:
        raise InventoryError("the inventory is not valid UTF-8 text", name) from None
    return parse_inventory(text, name)


def parse_inventory(text: str, path: str = "<string>") -> Inventory:
    """Validate inventory text; ``path`` is used in messages and to anchor relative paths."""
    try:
        loader = FAST_LOADER(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"invalid YAML: {yaml_problem(exc, text)}", path) from None
    loader.path = path  # where a !vault value was written
    try:
        doc = Doc(path, "" if path.startswith("<") else os.path.dirname(path), loader, text)
        root = doc.root()
        check_duplicates(doc, root)
        top = doc.mapping(root, "")
        raw = read_ansible(doc, top) if is_ansible(top) else _read_native(doc, top)
        return _build(path, raw)
    except RecursionError:
        raise InventoryError("groups are nested too deeply", path) from None
    finally:
        loader.dispose()


# --- native format --------------------------------------------------------------------


def _read_native(doc: Doc, top: Items) -> Raw:
    check_keys(doc, top, NATIVE_KEYS, "")
    raw = Raw()
    if "defaults" in top:
        raw.defaults = _native_entry(doc, top["defaults"], "defaults", None).level
    for section, link, entries in (("groups", "children", raw.groups), ("hosts", "groups", raw.hosts)):
        for name, nodes in sub_mapping(doc, top, section, "").items():
            entries[name] = _native_entry(doc, nodes, f"{section}.{name}", link)
    return raw


def _native_entry(doc: Doc, nodes: tuple[Node, Node], key: str, link: str | None) -> Entry:
    """Defaults, a group or a host: settings plus its ``link`` list (children or groups)."""
    items = doc.mapping(nodes[1], key)
    check_keys(doc, items, [*SETTINGS, *([link] if link else [])], key)
    entry = Entry(doc.at(nodes[0], key))
    for name, (_, value_node) in items.items():
        if name == link:
            entry.links = _names(doc, value_node, join_key(key, name))
        else:
            set_setting(doc, entry.level, name, value_node, join_key(key, name))
    return entry


def _names(doc: Doc, node: Node, key: str) -> list[tuple[str, Location]]:
    """A list of group names (a single name is accepted too)."""
    if isinstance(node, ScalarNode) and not is_null(node):
        return [(nonempty_string(doc, node, key), doc.at(node, key))]
    if not isinstance(node, SequenceNode):
        raise doc.at(node, key).error(f"expected a list of group names, got {node_kind(node)}")
    return [(nonempty_string(doc, item, f"{key}[{i}]"), doc.at(item, f"{key}[{i}]"))
            for i, item in enumerate(node.value)]


# --- resolution -----------------------------------------------------------------------


def _build(path: str, raw: Raw) -> Inventory:
    _check_names(raw)
    parents = _parents(raw)
    chains = {name: _chain(raw, parents, entry) for name, entry in raw.hosts.items()}
    hosts = {name: _host(name, entry.level, chains[name], raw) for name, entry in raw.hosts.items()}
    groups = {
        name: GroupSpec(name, tuple(h for h in hosts if name in chains[h]),
                        tuple(dict.fromkeys(child for child, _ in entry.links)),
                        own_vars(entry.level))
        for name, entry in raw.groups.items()
    }
    return Inventory(path, hosts, groups)


def _check_names(raw: Raw) -> None:
    """Names must be usable in host patterns and must not be ambiguous."""
    for kind, entries in (("group", raw.groups), ("host", raw.hosts)):
        for name, entry in entries.items():
            if name in _RESERVED:
                raise entry.where.error(f"{name!r} is reserved and cannot name a {kind}")
            if not _NAME.fullmatch(name):
                raise entry.where.error(
                    f"{kind} name {name!r} cannot be used in host patterns; use letters, digits, _ . -")
            if kind == "host" and name in raw.groups:
                raise entry.where.error(f"{name!r} names both a host and a group")


def _known(name: str, where: Location, raw: Raw) -> None:
    if name not in raw.groups:
        raise where.error(f"unknown group {name!r}{suggest(name, raw.groups)}")


def _parents(raw: Raw) -> dict[str, list[str]]:
    """Each group's parents, in file order; children must exist and must not loop."""
    parents: dict[str, list[str]] = {name: [] for name in raw.groups}
    for name, entry in raw.groups.items():
        for child, where in entry.links:
            _known(child, where, raw)
            if name not in parents[child]:
                parents[child].append(name)
    done: set[str] = set()
    for name in raw.groups:
        _check_cycle(raw, name, (name,), done)
    return parents


def _check_cycle(raw: Raw, name: str, path: tuple[str, ...], done: set[str]) -> None:
    """Depth-first walk of children; ``done`` keeps shared subtrees from being walked twice."""
    if name in done:
        return
    for child, where in raw.groups[name].links:
        if child in path:
            raise where.error(f"group cycle: {' -> '.join(path + (child,))}")
        _check_cycle(raw, child, path + (child,), done)
    done.add(name)


def _chain(raw: Raw, parents: dict[str, list[str]], host: Entry) -> tuple[str, ...]:
    """The host's groups in precedence order: each listed group, then its ancestors."""
    order: dict[str, None] = {}

    def visit(group: str) -> None:
        if group not in order:
            order[group] = None
            for parent in parents[group]:
                visit(parent)

    for group, where in host.links:
        _known(group, where, raw)
        visit(group)
    return tuple(order)


def _first(levels: list[Level], key: str) -> tuple[int, Setting] | None:
    return next(((i, level[key]) for i, level in enumerate(levels) if key in level), None)


def _host(name: str, level: Level, chain: tuple[str, ...], raw: Raw) -> HostSpec:
    levels = [level, *(raw.groups[group].level for group in chain), raw.defaults]
    plain = {key: found[1].value for key in _PLAIN if (found := _first(levels, key))}
    merged: dict[str, Any] = {}
    for source in reversed(levels):
        merged.update(own_vars(source))
    controllers = [_pinned(levels, address) for address in _pair(levels)]
    endpoint = controllers[0] if controllers else _pinned(levels, _address(name, levels))
    return HostSpec(name, *endpoint, **plain, groups=chain, vars=merged,
                    controllers=tuple(address.uri for address in controllers))


def _pair(levels: list[Level]) -> tuple[Address, ...]:
    """An HA pair's controllers, when `controllers` is the endpoint setting in force rather than a uri."""
    found = _first(levels, "controllers")
    if found is None:
        return ()
    for key in ("uri", "address", "port", "scheme", "path"):
        other = _first(levels, key)
        if other is not None and other[0] <= found[0]:
            if key == "uri" and other[0] < found[0]:
                return ()  # a host's own uri wins over a pair described by a group
            raise other[1].where.error(f"conflicts with the controllers set at {found[1].where}; "
                                       f"give either controllers or {key}")
    return tuple(found[1].value)


def _pinned(levels: list[Level], address: Address) -> Address:
    """`address` with its path replaced by the `api_version` in force, if any."""
    pinned = _first(levels, "api_version")
    if pinned is None:
        return address
    endpoint, setting = Endpoint.parse(address.uri), pinned[1]
    path = endpoint.target.partition("?")[0]
    if path not in ("", "/") and not path.startswith("/api/"):
        raise setting.where.error(f"needs a JSON-RPC endpoint (/api/...), but the uri in force has {path}")
    return Address(endpoint.with_path(setting.value).uri, address.address, address.port)


def _address(name: str, levels: list[Level]) -> Address:
    """The uri in force, or one built from address/port/scheme/path (see module doc)."""
    parts = {key: found for key in ("address", "port", "scheme", "path")
             if (found := _first(levels, key))}
    uri = _first(levels, "uri")
    if uri:
        for _key, (index, setting) in parts.items():
            if index <= uri[0]:
                raise setting.where.error(f"conflicts with the uri set at {uri[1].where}; "
                                          "give either uri or address/port/scheme/path")
        given: Address = uri[1].value
        return given
    value = {key: setting.value for key, (_, setting) in parts.items()}
    scheme, address = value.get("scheme", "wss"), value.get("address", name)
    port = value.get("port", DEFAULT_PORTS[scheme])
    return Address(Endpoint(scheme, address, port, value.get("path", API_PATH)).uri, address, port)
