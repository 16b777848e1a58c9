"""YAML inventory -> frozen HostSpec / GroupSpec, validated once at load time.

Layer: configuration; imports only fleetclt.errors, fleetclt.secret and fleetclt.patterns.

Native format (``defaults``, ``groups``, ``hosts``; every section optional)::

    defaults: {username: admin, password: {env: TRUENAS_PASSWORD}}
    groups:
      eu: {timeout: 30, children: [eu-west]}   # eu-west's hosts are members of eu too
      eu-west: {}
    hosts:
      nas01: {address: 10.0.0.11, groups: [eu-west]}
      nas02: {uri: "ws://127.0.2.2:6001/api/current", api_key: {file: nas02.key}}

Settings, allowed in defaults, groups and hosts: uri | address, port, scheme (ws,
wss), path; username, password, api_key, verify_tls, ca_file, tls_fingerprint,
timeout, connect_timeout, vars. A null value means "not set here".

Resolution (as nornir): the host, then each listed group followed depth-first by
the groups it inherits from (its parents through ``children``), duplicates
dropped, then defaults; the first level that sets a key wins. ``vars`` merge key
by key in that same precedence.

URI rule: an explicit ``uri`` is used as written; if it has no path, none is added
(the session may then probe /api/current and /websocket). Otherwise the uri is
built as ``scheme://address[:port]path`` with scheme ``wss``, the scheme's port
(left out of the uri) and path ``/api/current`` by default, and the address
defaults to the host's name. Setting address/port/scheme/path at the same or a
more specific level than the ``uri`` in force is an error, never silently ignored.

Relative ``ca_file`` and ``{file: ...}`` paths are relative to the inventory's
folder. An Ansible YAML inventory (``all:``/``children:``/``hosts:``/``vars:``)
is read too: ``ansible_host``/``ansible_port``/``ansible_user`` map to address,
port and username, ``fleetclt_<setting>`` to that setting, the rest to vars,
and ``all.vars`` act as defaults. Every error names file, line and key.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import os
import re
import types
import urllib.parse
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Iterable, Mapping, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleetclt.errors import InventoryError
from fleetclt.patterns import select_names
from fleetclt.secret import Location, Secret

__all__ = ["GroupSpec", "HostSpec", "Inventory", "load_inventory", "parse_inventory"]

log = logging.getLogger("fleetclt.inventory")

ENV_VAR = "FLEETCLT_INVENTORY"
DEFAULT_PATH = "inventory.yaml"
DEFAULT_API_PATH = "/api/current"
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_.\-]+")
_RESERVED = frozenset({"all"})
_NATIVE_KEYS = ("defaults", "groups", "hosts")
_ANSIBLE_KEYS = ("hosts", "children", "vars")
_ANSIBLE_VARS = {"ansible_host": "address", "ansible_port": "port", "ansible_user": "username"}
_PLAIN = ("username", "password", "api_key", "verify_tls", "ca_file", "tls_fingerprint",
          "timeout", "connect_timeout")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
               type(None): "null", list: "a list", dict: "a mapping"}
_YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)


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
    verify_tls: bool = True
    ca_file: str | None = None
    tls_fingerprint: str | None = None
    timeout: float = 30.0
    connect_timeout: float = 10.0
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for output: secrets appear only as their source (``env:NAME``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("password", "api_key"):
            out[key] = out[key] and out[key].source
        return {**out, "groups": list(self.groups), "vars": dict(self.vars)}


@dataclass(frozen=True)
class GroupSpec:
    """A group with its members resolved, children's members included."""

    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for output."""
        return {"name": self.name, "hosts": list(self.hosts),
                "children": list(self.children), "vars": dict(self.vars)}


@dataclass(frozen=True)
class Inventory:
    """Hosts and groups in file order, read-only once loaded."""

    path: str
    hosts: Mapping[str, HostSpec] = field(hash=False)
    groups: Mapping[str, GroupSpec] = field(hash=False)

    def select(self, pattern: str | Iterable[str],
               failed: AbstractSet[str] = frozenset()) -> list[HostSpec]:
        """Hosts matching an Ansible-style pattern (see fleetclt.patterns), in file order."""
        members = {name: group.hosts for name, group in self.groups.items()}
        return [self.hosts[n] for n in select_names(pattern, list(self.hosts), members, failed)]


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
    loader = yaml.SafeLoader(text)
    try:
        doc = _Doc(path, "" if path.startswith("<") else os.path.dirname(path), loader)
        top = doc.mapping(doc.root(), "")
        raw = _read_ansible(doc, top) if _is_ansible(top) else _read_native(doc, top)
        return _build(path, raw)
    finally:
        loader.dispose()


# --- reading YAML nodes --------------------------------------------------------------


class _Setting(NamedTuple):
    value: Any
    where: Location


_Level = dict[str, _Setting]
_Items = dict[str, tuple[Node, Node]]


@dataclass
class _Entry:
    """A host or group as written: its own settings and its links (groups or children)."""

    where: Location
    level: _Level = field(default_factory=dict)
    links: list[tuple[str, Location]] = field(default_factory=list)


@dataclass
class _Raw:
    """The whole inventory as written, validated key by key, before resolution."""

    defaults: _Level = field(default_factory=dict)
    groups: dict[str, _Entry] = field(default_factory=dict)
    hosts: dict[str, _Entry] = field(default_factory=dict)
    walked: set[tuple[str, int]] = field(default_factory=set)  # Ansible (group, node) pairs read


@dataclass
class _Doc:
    """One YAML document being read; turns nodes into values or located errors."""

    path: str
    base_dir: str
    loader: yaml.SafeLoader

    def at(self, node: Node, key: str) -> Location:
        return Location(self.path, node.start_mark.line + 1, key)

    def root(self) -> Node:
        try:
            node = self.loader.get_single_node()
        except _YAML_ERRORS as exc:
            raise InventoryError(f"invalid YAML: {_problem(exc)}", self.path, _line(exc)) from None
        if node is None:
            raise InventoryError("the inventory is empty", self.path)
        return node

    def value(self, node: Node, key: str) -> Any:
        """Plain Python for a node; PyYAML's own messages may quote the line, so not used."""
        try:
            return self.loader.construct_object(node, deep=True)
        except _YAML_ERRORS as exc:
            raise self.at(node, key).error(f"cannot read value: {_problem(exc)}") from None

    def mapping(self, node: Node, key: str) -> _Items:
        """Keys of a mapping in order (null counts as empty); duplicates are errors."""
        if _is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            raise self.at(node, key).error(f"expected a mapping, got {_node_kind(node)}")
        items: _Items = {}
        for key_node, value_node in self._flatten(node, key):
            name = self.value(key_node, key)
            if not isinstance(name, str):
                raise self.at(key_node, key).error(f"keys must be strings, got {_describe(name)}")
            if name in items:
                first = items[name][0].start_mark.line + 1
                raise self.at(key_node, _join(key, name)).error(f"duplicate key (first at line {first})")
            items[name] = (key_node, value_node)
        return items

    def _flatten(self, node: MappingNode, key: str) -> list[tuple[Node, Node]]:
        """Apply YAML merge keys (``<<: *base``); keys written here override merged ones."""
        own = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
        if len(own) == len(node.value):
            return own
        try:
            self.loader.flatten_mapping(node)
        except _YAML_ERRORS as exc:
            raise self.at(node, key).error(f"cannot merge: {_problem(exc)}") from None
        merged = {k.value: (k, v) for k, v in node.value[: len(node.value) - len(own)]}
        return [pair for name, pair in merged.items() if name not in {k.value for k, _ in own}] + own


def _problem(exc: BaseException) -> str:
    """PyYAML's problem text without the quoted source line, which could hold a secret."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return exc.problem or exc.context or "malformed"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _line(exc: BaseException) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else None


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _node_kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    return "a mapping" if isinstance(node, MappingNode) else repr(node.value)[:40]


def _describe(value: Any, echo: bool = True) -> str:
    """A value for an error message; with echo=False only its type (for secrets)."""
    if not echo or isinstance(value, (list, dict, type(None))):
        return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _suggest(name: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if near:
        return "; did you mean " + " or ".join(repr(choice) for choice in near) + "?"
    return "; expected one of: " + ", ".join(sorted(choices))


def _check_keys(doc: _Doc, items: _Items, allowed: Iterable[str], key: str) -> None:
    allowed = tuple(allowed)
    for name, (key_node, _) in items.items():
        if name not in allowed:
            raise doc.at(key_node, _join(key, name)).error(f"unknown key{_suggest(name, allowed)}")


# --- settings validators: (doc, value node, key path) -> value ------------------------


def _typed(doc: _Doc, node: Node, key: str, kinds: tuple[type, ...], expected: str) -> Any:
    value = doc.value(node, key)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise doc.at(node, key).error(f"expected {expected}, got {_describe(value)}")
    return value


def _string(doc: _Doc, node: Node, key: str) -> str:
    value = _typed(doc, node, key, (str,), "a string")
    if not value.strip():
        raise doc.at(node, key).error("expected a non-empty string")
    return value


def _port(doc: _Doc, node: Node, key: str) -> int:
    port = _typed(doc, node, key, (int,), "an integer")
    if not 0 < port < 65536:
        raise doc.at(node, key).error(f"expected a port number 1-65535, got {port}")
    return port


def _seconds(doc: _Doc, node: Node, key: str) -> float:
    value = _typed(doc, node, key, (int, float), "a number of seconds")
    if not (math.isfinite(value) and value > 0):
        raise doc.at(node, key).error(f"expected a positive number of seconds, got {value}")
    return float(value)


def _bool(doc: _Doc, node: Node, key: str) -> bool:
    return _typed(doc, node, key, (bool,), "true or false")


def _choice(choices: tuple[str, ...]) -> Callable[[_Doc, Node, str], str]:
    def check(doc: _Doc, node: Node, key: str) -> str:
        value = _string(doc, node, key)
        if value not in choices:
            raise doc.at(node, key).error(f"expected one of {', '.join(choices)}, got {value!r}")
        return value
    return check


def _api_path(doc: _Doc, node: Node, key: str) -> str:
    value = _string(doc, node, key)
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise doc.at(node, key).error(f"expected a path such as /api/current, got {value!r}")
    return value


def _address(doc: _Doc, node: Node, key: str) -> str:
    value = _string(doc, node, key).strip()
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if _HOSTNAME.fullmatch(bare) or _is_ip(bare):
        return bare
    raise doc.at(node, key).error(f"expected a host name or IP address, got {value!r}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class _Endpoint(NamedTuple):
    uri: str
    address: str
    port: int


def _uri(doc: _Doc, node: Node, key: str) -> _Endpoint:
    text, where = _string(doc, node, key).strip(), doc.at(node, key)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise where.error(f"not a valid uri: {exc}") from None
    if "@" in parts.netloc:
        raise where.error("credentials do not belong in the uri; use username/password/api_key")
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.fragment:
        raise where.error(f"expected ws://HOST[:PORT][/PATH] or wss://..., got {text!r}")
    return _Endpoint(text, parts.hostname, port or _DEFAULT_PORTS[parts.scheme])


def _fingerprint(doc: _Doc, node: Node, key: str) -> str:
    value = _string(doc, node, key)
    digest = re.sub(r"[\s:]", "", value).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise doc.at(node, key).error(
            f"expected a SHA-256 fingerprint (64 hex digits, colons allowed), got {value!r}")
    return digest


def _local_file(doc: _Doc, node: Node, key: str) -> str:
    return os.path.join(doc.base_dir, os.path.expanduser(_string(doc, node, key)))


def _vars(doc: _Doc, node: Node, key: str) -> dict[str, Any]:
    doc.mapping(node, key)
    return doc.value(node, key) or {}


def _secret(doc: _Doc, node: Node, key: str) -> Secret:
    """A reference ({env: NAME} / {file: PATH}) or a literal, which earns a warning."""
    where = doc.at(node, key)
    if isinstance(node, MappingNode):
        return _secret_reference(doc, node, key)
    value = doc.value(node, key)
    if not isinstance(value, str) or not value:
        raise where.error("expected {env: NAME}, {file: PATH} or a non-empty string, "
                          f"got {_describe(value, echo=False)}")
    log.warning("%s: literal secret in the inventory; prefer {env: NAME} or {file: PATH}", where)
    return Secret(value, where=where)


def _secret_reference(doc: _Doc, node: MappingNode, key: str) -> Secret:
    where, items = doc.at(node, key), doc.mapping(node, key)
    unknown = [name for name in items if name not in ("env", "file")]
    if unknown:  # a near-miss is named; anything else might be the secret itself
        near = difflib.get_close_matches(unknown[0], ["env", "file"], n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise where.error(f"expected {{env: NAME}} or {{file: PATH}}{hint}")
    if len(items) != 1:
        raise where.error("expected exactly one of {env: NAME} or {file: PATH}")
    (kind, (_, value_node)), = items.items()
    ref = _string(doc, value_node, _join(key, kind))
    return Secret.env(ref, where) if kind == "env" else Secret.file(ref, where, doc.base_dir)


_SETTINGS: dict[str, Callable[[_Doc, Node, str], Any]] = {
    "uri": _uri, "address": _address, "port": _port, "scheme": _choice(("ws", "wss")),
    "path": _api_path, "username": _string, "password": _secret, "api_key": _secret,
    "verify_tls": _bool, "ca_file": _local_file, "tls_fingerprint": _fingerprint,
    "timeout": _seconds, "connect_timeout": _seconds, "vars": _vars,
}


def _set(doc: _Doc, level: _Level, setting: str, node: Node, key: str) -> None:
    """Validate one setting into ``level``; null leaves it unset, vars merge."""
    if not _is_null(node):
        _put(level, setting, _SETTINGS[setting](doc, node, key), doc.at(node, key))


def _put(level: _Level, setting: str, value: Any, where: Location) -> None:
    """Later definitions win (an Ansible host listed twice); vars merge key by key."""
    if setting == "vars":
        value = {**_own_vars(level), **value}
    level[setting] = _Setting(value, where)


def _own_vars(level: _Level) -> dict[str, Any]:
    return level["vars"].value if "vars" in level else {}


# --- native format --------------------------------------------------------------------


def _read_native(doc: _Doc, top: _Items) -> _Raw:
    _check_keys(doc, top, _NATIVE_KEYS, "")
    raw = _Raw()
    if "defaults" in top:
        raw.defaults = _native_entry(doc, top["defaults"], "defaults", None).level
    for section, link, entries in (("groups", "children", raw.groups), ("hosts", "groups", raw.hosts)):
        for name, nodes in _sub(doc, top, section, "").items():
            entries[name] = _native_entry(doc, nodes, f"{section}.{name}", link)
    return raw


def _native_entry(doc: _Doc, nodes: tuple[Node, Node], key: str, link: str | None) -> _Entry:
    """Defaults, a group or a host: settings plus its ``link`` list (children or groups)."""
    items = doc.mapping(nodes[1], key)
    _check_keys(doc, items, [*_SETTINGS, *([link] if link else [])], key)
    entry = _Entry(doc.at(nodes[0], key))
    for name, (_, value_node) in items.items():
        if name == link:
            entry.links = _names(doc, value_node, _join(key, name))
        else:
            _set(doc, entry.level, name, value_node, _join(key, name))
    return entry


def _names(doc: _Doc, node: Node, key: str) -> list[tuple[str, Location]]:
    """A list of group names (a single name is accepted too)."""
    if isinstance(node, ScalarNode) and not _is_null(node):
        return [(_string(doc, node, key), doc.at(node, key))]
    if not isinstance(node, SequenceNode):
        raise doc.at(node, key).error(f"expected a list of group names, got {_node_kind(node)}")
    return [(_string(doc, item, f"{key}[{i}]"), doc.at(item, f"{key}[{i}]"))
            for i, item in enumerate(node.value)]


# --- Ansible format -------------------------------------------------------------------


def _is_ansible(top: _Items) -> bool:
    """Ansible's tree: top keys are groups (usually ``all``) holding hosts/children/vars."""
    if set(top) <= set(_NATIVE_KEYS):
        return False
    return "all" in top or all(_looks_like_group(node) for _, node in top.values())


def _looks_like_group(node: Node) -> bool:
    return isinstance(node, MappingNode) and bool(node.value) and all(
        isinstance(k, ScalarNode) and k.value in _ANSIBLE_KEYS for k, _ in node.value)


def _read_ansible(doc: _Doc, top: _Items) -> _Raw:
    raw = _Raw()
    for name, (key_node, node) in top.items():
        _ansible_group(doc, raw, None if name == "all" else name, node, name, (name,))
    return raw


def _ansible_group(doc: _Doc, raw: _Raw, name: str | None, node: Node, key: str,
                   path: tuple[str, ...]) -> None:
    """One group (``name`` None for the top ``all``, whose vars are the defaults)."""
    if (name or "", id(node)) in raw.walked:  # an alias read again: nothing new, maybe exponential
        return
    raw.walked.add((name or "", id(node)))
    items = doc.mapping(node, key)
    _check_keys(doc, items, _ANSIBLE_KEYS, key)
    group = raw.groups.setdefault(name, _Entry(doc.at(node, key))) if name else None
    if "vars" in items:
        _ansible_vars(doc, group.level if group else raw.defaults, items["vars"][1], _join(key, "vars"))
    for host, (host_key, host_node) in _sub(doc, items, "hosts", key).items():
        where = doc.at(host_key, _join(key, f"hosts.{host}"))
        entry = raw.hosts.setdefault(host, _Entry(where))
        _ansible_vars(doc, entry.level, host_node, where.key)
        if group:
            entry.links.append((name, where))
    for child, (child_key, child_node) in _sub(doc, items, "children", key).items():
        where = doc.at(child_key, _join(key, f"children.{child}"))
        if child in path:
            raise where.error(f"group cycle: {' -> '.join(path + (child,))}")
        _ansible_group(doc, raw, child, child_node, where.key, path + (child,))
        if group:
            group.links.append((child, where))


def _sub(doc: _Doc, items: _Items, name: str, key: str) -> _Items:
    return doc.mapping(items[name][1], _join(key, name)) if name in items else {}


def _ansible_vars(doc: _Doc, level: _Level, node: Node, key: str) -> None:
    """Connection variables become settings; the rest become free-form vars."""
    free: dict[str, Any] = {}
    for var, (var_key, value_node) in doc.mapping(node, key).items():
        setting = _ansible_setting(doc, var, var_key, _join(key, var))
        if setting:
            _set(doc, level, setting, value_node, _join(key, var))
        else:
            free[var] = doc.value(value_node, _join(key, var))
    if free:
        _put(level, "vars", free, doc.at(node, key))


def _ansible_setting(doc: _Doc, var: str, key_node: Node, key: str) -> str | None:
    if var in _ANSIBLE_VARS:
        return _ANSIBLE_VARS[var]
    if not var.startswith("fleetclt_"):
        return None
    if var[len("fleetclt_"):] not in _SETTINGS:
        raise doc.at(key_node, key).error(
            f"unknown fleetclt setting{_suggest(var, ['fleetclt_' + s for s in _SETTINGS])}")
    return var[len("fleetclt_"):]


# --- resolution -----------------------------------------------------------------------


def _build(path: str, raw: _Raw) -> Inventory:
    _check_names(raw)
    parents = _parents(raw)
    chains = {name: _chain(raw, parents, entry) for name, entry in raw.hosts.items()}
    hosts = {name: _host(name, entry.level, chains[name], raw) for name, entry in raw.hosts.items()}
    groups = {
        name: GroupSpec(name, tuple(h for h in hosts if name in chains[h]),
                        tuple(dict.fromkeys(child for child, _ in entry.links)),
                        types.MappingProxyType(_own_vars(entry.level)))
        for name, entry in raw.groups.items()
    }
    return Inventory(path, types.MappingProxyType(hosts), types.MappingProxyType(groups))


def _check_names(raw: _Raw) -> None:
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


def _known(name: str, where: Location, raw: _Raw) -> None:
    if name not in raw.groups:
        raise where.error(f"unknown group {name!r}{_suggest(name, raw.groups)}")


def _parents(raw: _Raw) -> dict[str, list[str]]:
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


def _check_cycle(raw: _Raw, name: str, path: tuple[str, ...], done: set[str]) -> None:
    """Depth-first walk of children; ``done`` keeps shared subtrees from being walked twice."""
    if name in done:
        return
    for child, where in raw.groups[name].links:
        if child in path:
            raise where.error(f"group cycle: {' -> '.join(path + (child,))}")
        _check_cycle(raw, child, path + (child,), done)
    done.add(name)


def _chain(raw: _Raw, parents: dict[str, list[str]], host: _Entry) -> tuple[str, ...]:
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


def _first(levels: list[_Level], key: str) -> tuple[int, _Setting] | None:
    return next(((i, level[key]) for i, level in enumerate(levels) if key in level), None)


def _host(name: str, level: _Level, chain: tuple[str, ...], raw: _Raw) -> HostSpec:
    levels = [level, *(raw.groups[group].level for group in chain), raw.defaults]
    plain = {key: found[1].value for key in _PLAIN if (found := _first(levels, key))}
    merged: dict[str, Any] = {}
    for source in reversed(levels):
        merged.update(_own_vars(source))
    return HostSpec(name, *_endpoint(name, levels), **plain, groups=chain,
                    vars=types.MappingProxyType(merged))


def _endpoint(name: str, levels: list[_Level]) -> _Endpoint:
    """The uri in force, or one built from address/port/scheme/path (see module doc)."""
    parts = {key: found for key in ("address", "port", "scheme", "path")
             if (found := _first(levels, key))}
    uri = _first(levels, "uri")
    if uri:
        for key, (index, setting) in parts.items():
            if index <= uri[0]:
                raise setting.where.error(f"conflicts with the uri set at {uri[1].where}; "
                                          "give either uri or address/port/scheme/path")
        return uri[1].value
    value = {key: setting.value for key, (_, setting) in parts.items()}
    scheme, address = value.get("scheme", "wss"), value.get("address", name)
    port = value.get("port", _DEFAULT_PORTS[scheme])
    host = f"[{address}]" if ":" in address else address
    netloc = host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return _Endpoint(f"{scheme}://{netloc}{value.get('path', DEFAULT_API_PATH)}", address, port)
