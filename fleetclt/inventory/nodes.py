"""Reading the inventory's YAML: located nodes, and each setting validated into a value.

Private to the inventory package: load.py and ansible.py read the two file
formats with it; nothing else should import it.

Why a module of its own: everything here works on one YAML node at a time and turns
it into a plain value or an InventoryError naming file, line and key, whatever the
file format. Keeping it apart from the format readers and from resolution keeps
each module readable. The shapes both readers fill in
(``Entry``, ``Raw``) live here too, so neither reader imports the other.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import InventoryError, did_you_mean
from ..protocol.endpoint import DEFAULT_PORTS, BadEndpoint, Endpoint, api_path, normalize_fingerprint
from ..protocol.otp import totp_secret
from ..secret import Location, Secret
from . import vault

log = logging.getLogger("fleetclt.inventory")  # the name users configure, whichever module logs

NATIVE_KEYS = ("defaults", "groups", "hosts")
_HOSTNAME = re.compile(r"[A-Za-z0-9_.\-]+")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
               type(None): "null", list: "a list", dict: "a mapping"}
_MERGE = "tag:yaml.org,2002:merge"
_VAULT = "!vault"
_ALIAS = re.compile(r"[^\s,\[\]{}]+")
_YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)


# --- reading YAML nodes --------------------------------------------------------------


def vault_aware(base: type[yaml.SafeLoader] | type[yaml.CSafeLoader]) -> Any:
    """A subclass of the loader ``base`` that reads Ansible's ``!vault`` scalars as encrypted
    Secrets, decrypted only when revealed; ``base`` itself is left untouched."""
    loader: Any = type(f"VaultAware{base.__name__}", (base,), {"path": "<string>"})
    loader.add_constructor(_VAULT, _construct_vault)  # on the subclass: a copy of base's table
    return loader


def _construct_vault(loader: Any, node: Node) -> Secret:
    if not isinstance(node, ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "expected !vault text", node.start_mark)
    return Secret.encrypted(str(node.value), Location(loader.path, node.start_mark.line + 1), vault.decrypt)


class Setting(NamedTuple):
    value: Any
    where: Location


Level = dict[str, Setting]
Items = dict[str, tuple[Node, Node]]
Validator = Callable[["Doc", Node, str], Any]  # (doc, value node, key path) -> value


@dataclass
class Entry:
    """A host or group as written: its own settings and its links (groups or children)."""

    where: Location
    level: Level = field(default_factory=dict)
    links: list[tuple[str, Location]] = field(default_factory=list)


@dataclass
class Raw:
    """The whole inventory as written, validated key by key, before resolution."""

    defaults: Level = field(default_factory=dict)
    groups: dict[str, Entry] = field(default_factory=dict)
    hosts: dict[str, Entry] = field(default_factory=dict)
    walked: set[tuple[str, int]] = field(default_factory=set)  # Ansible (group, node) pairs read


@dataclass
class Doc:
    """One YAML document being read; turns nodes into values or located errors."""

    path: str
    base_dir: str
    loader: yaml.SafeLoader | yaml.CSafeLoader  # no common base class
    text: str = ""  # the source, to quote the token an error points at

    def at(self, node: Node, key: str) -> Location:
        return Location(self.path, node.start_mark.line + 1, key)

    def root(self) -> Node:
        try:
            node = self.loader.get_single_node()
        except _YAML_ERRORS as exc:
            raise InventoryError(f"invalid YAML: {yaml_problem(exc, self.text)}", self.path, _line(exc)) from None
        if node is None:
            raise InventoryError("the inventory is empty", self.path)
        return node

    def value(self, node: Node, key: str) -> Any:
        """Plain Python for a node; PyYAML's own messages may quote the line, so not used."""
        try:
            return self.loader.construct_object(node, deep=True)
        except _YAML_ERRORS as exc:
            raise self.at(node, key).error(f"cannot read value: {yaml_problem(exc)}") from None

    def mapping(self, node: Node, key: str) -> Items:
        """Keys of a mapping in order (null counts as empty), YAML merge keys applied."""
        if is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            raise self.at(node, key).error(f"expected a mapping, got {node_kind(node)}")
        if any(key_node.tag == _MERGE for key_node, _ in node.value):
            try:
                self.loader.flatten_mapping(node)  # merged pairs first, so keys written here win
            except _YAML_ERRORS as exc:
                raise self.at(node, key).error(f"cannot merge: {yaml_problem(exc)}") from None
        items: Items = {}
        for key_node, value_node in node.value:
            name = self.value(key_node, key)
            if not isinstance(name, str):
                raise self.at(key_node, key).error(f"keys must be strings, got {_describe(name)}")
            items[name] = (key_node, value_node)
        return items


def check_duplicates(doc: Doc, root: Node) -> None:
    """Refuse a key written twice in one mapping, before merges rewrite the nodes."""
    stack, seen = [(root, "")], set()
    while stack:
        node, key = stack.pop()
        if id(node) in seen or isinstance(node, ScalarNode):
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((item, f"{key}[{i}]") for i, item in enumerate(node.value))
            continue
        first: dict[str, Node] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
            if name in first and key_node.tag != _MERGE:
                line = first[name].start_mark.line + 1
                where = doc.at(key_node, join_key(key, name))
                raise where.error(f"duplicate key (first at line {line})")
            first[name] = key_node
            stack.append((value_node, join_key(key, name)))


def yaml_problem(exc: BaseException, text: str = "") -> str:
    """PyYAML's problem text without the quoted source line, which could hold a secret."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return _named_token(exc, text) or exc.problem or exc.context or "malformed"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _named_token(exc: yaml.MarkedYAMLError, text: str) -> str:
    """libyaml's wording plus the token it leaves out, read at the error's mark: the words
    PyYAML's own parser gives, without parsing the whole file a second time to get them."""
    mark = exc.problem_mark
    if mark is None or not 0 <= mark.index < len(text):
        return ""
    if exc.problem == "found undefined alias" and text[mark.index] == "*":
        name = _ALIAS.match(text, mark.index + 1)
        return f"found undefined alias {name.group()!r}" if name else ""
    if exc.problem == "found character that cannot start any token":
        return f"found character {text[mark.index]!r} that cannot start any token"
    return ""


def _line(exc: BaseException) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else None


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def node_kind(node: Node) -> str:
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


def join_key(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def suggest(name: str, choices: Iterable[str]) -> str:
    """A near miss, or else the whole (short) list of what is allowed, or that nothing is."""
    choices = list(choices)
    if not choices:
        return " (none are defined)"
    return did_you_mean(name, choices) or "; expected one of: " + ", ".join(sorted(choices))


def check_keys(doc: Doc, items: Items, allowed: Iterable[str], key: str) -> None:
    allowed = tuple(allowed)
    for name, (key_node, _) in items.items():
        if name not in allowed:
            where = doc.at(key_node, join_key(key, name))
            raise where.error(f"unknown key{suggest(name, allowed)}")


def sub_mapping(doc: Doc, items: Items, name: str, key: str) -> Items:
    return doc.mapping(items[name][1], join_key(key, name)) if name in items else {}




# --- settings validators: (doc, value node, key path) -> value ------------------------


def _typed(doc: Doc, node: Node, key: str, kinds: tuple[type, ...], expected: str) -> Any:
    value = doc.value(node, key)
    if isinstance(value, Secret):
        raise doc.at(node, key).error("a !vault value is only read for password, api_key and otp_secret")
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise doc.at(node, key).error(f"expected {expected}, got {_describe(value)}")
    return value


def nonempty_string(doc: Doc, node: Node, key: str) -> str:
    value: str = _typed(doc, node, key, (str,), "a string")
    if not value.strip():
        raise doc.at(node, key).error("expected a non-empty string")
    return value


def _port(doc: Doc, node: Node, key: str) -> int:
    port: int = _typed(doc, node, key, (int,), "an integer")
    if not 0 < port < 65536:
        raise doc.at(node, key).error(f"expected a port number 1-65535, got {port}")
    return port


def _seconds(doc: Doc, node: Node, key: str) -> float:
    value = _typed(doc, node, key, (int, float), "a number of seconds")
    if not (math.isfinite(value) and value > 0):
        raise doc.at(node, key).error(f"expected a positive number of seconds, got {value}")
    return float(value)


def _bool(doc: Doc, node: Node, key: str) -> bool:
    value: bool = _typed(doc, node, key, (bool,), "true or false")
    return value


def _text(expected: str, normalise: Callable[[str], str | None]) -> Validator:
    """A string setting that ``normalise`` cleans up, or rejects by returning None."""
    def check(doc: Doc, node: Node, key: str) -> str:
        value = nonempty_string(doc, node, key)
        result = normalise(value)
        if result is None:
            raise doc.at(node, key).error(f"expected {expected}, got {value!r}")
        return result
    return check


def _normal_address(value: str) -> str | None:
    bare = value.strip().removeprefix("[").removesuffix("]")
    if _HOSTNAME.fullmatch(bare):
        return bare
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


class Address(NamedTuple):
    """A host's uri and where it points (address and port), as HostSpec keeps them."""

    uri: str
    address: str
    port: int


def _uri(doc: Doc, node: Node, key: str) -> Address:
    text, where = nonempty_string(doc, node, key).strip(), doc.at(node, key)
    expected = f"expected ws://HOST[:PORT][/PATH] or wss://..., got {text!r}"
    scheme, _, rest = text.partition("://")
    if scheme not in DEFAULT_PORTS or rest[:1] in ("", "/", "?", "#"):
        raise where.error(expected)
    try:
        endpoint = Endpoint.parse(text)  # urllib's complaints reworded; the port checked as everywhere else
    except BadEndpoint as exc:
        raise where.error(f"not a valid uri: {exc.reason}") from None
    parts = urllib.parse.urlsplit(text)
    if "@" in parts.netloc:
        raise where.error("credentials do not belong in the uri; use username/password/api_key")
    if parts.fragment:
        raise where.error(expected)
    return Address(text, endpoint.host, endpoint.port)


def _controllers(doc: Doc, node: Node, key: str) -> tuple[Address, ...]:
    """The URIs of an HA pair's controllers (docs/protocol.md §5): two or more, each a uri."""
    if not isinstance(node, SequenceNode) or len(node.value) < 2:
        raise doc.at(node, key).error("expected a list of two or more controller uris")
    return tuple(_uri(doc, item, f"{key}[{index}]") for index, item in enumerate(node.value))


def _local_file(doc: Doc, node: Node, key: str) -> str:
    return os.path.join(doc.base_dir, os.path.expanduser(nonempty_string(doc, node, key)))


def _vars(doc: Doc, node: Node, key: str) -> dict[str, Any]:
    doc.mapping(node, key)
    return doc.value(node, key) or {}


def _secret(doc: Doc, node: Node, key: str) -> Secret:
    """A reference ({env: NAME} / {file: PATH}), an Ansible !vault value, or a literal,
    which earns a warning."""
    where = doc.at(node, key)
    if node.tag == _VAULT and isinstance(node, ScalarNode):
        return Secret.encrypted(str(node.value), where, vault.decrypt)
    if isinstance(node, MappingNode):
        return _secret_reference(doc, node, key)
    value = doc.value(node, key)
    if not isinstance(value, str) or not value:
        raise where.error("expected {env: NAME}, {file: PATH} or a non-empty string, "
                          f"got {_describe(value, echo=False)}")
    log.warning("%s: literal secret in the inventory; prefer {env: NAME} or {file: PATH}", where)
    return Secret(value, where=where)


def _otp_secret(doc: Doc, node: Node, key: str) -> Secret:
    """A secret like the others; one written in the file is checked now (a reference when the
    host is about to log in): base32, or an error that names the key but never quotes the value."""
    secret = _secret(doc, node, key)
    if secret.source == "literal":
        totp_secret(secret)
    return secret


def _secret_reference(doc: Doc, node: MappingNode, key: str) -> Secret:
    where, items = doc.at(node, key), doc.mapping(node, key)
    unknown = [name for name in items if name not in ("env", "file")]
    if unknown:  # a near-miss is named; anything else might be the secret itself
        hint = did_you_mean(unknown[0], ["env", "file"], n=1)
        raise where.error(f"expected {{env: NAME}} or {{file: PATH}}{hint}")
    if len(items) != 1:
        raise where.error("expected exactly one of {env: NAME} or {file: PATH}")
    (kind, (_, value_node)), = items.items()
    ref = nonempty_string(doc, value_node, join_key(key, kind))
    return Secret.env(ref, where) if kind == "env" else Secret.file(ref, where, doc.base_dir)


SETTINGS: dict[str, Validator] = {
    "uri": _uri,
    "controllers": _controllers,
    "address": _text("a host name or IP address", _normal_address),
    "port": _port,
    "scheme": _text("one of ws, wss", lambda value: value if value in DEFAULT_PORTS else None),
    "path": _text("a path such as /api/current", lambda v: v if re.fullmatch(r"/\S*", v) else None),
    "api_version": _text("current or an API version such as v25.04.2", api_path),
    "username": nonempty_string, "password": _secret, "api_key": _secret, "otp_secret": _otp_secret,
    "allow_plain_api_key": _bool,
    "verify_tls": _bool,
    "ca_file": _local_file,
    "tls_fingerprint": _text("a SHA-256 fingerprint (64 hex digits, colons allowed)",
                             normalize_fingerprint),
    "timeout": _seconds, "connect_timeout": _seconds, "vars": _vars,
}


def set_setting(doc: Doc, level: Level, setting: str, node: Node, key: str) -> None:
    """Validate one setting into ``level``; null leaves it unset, vars merge."""
    if not is_null(node):
        put_setting(level, setting, SETTINGS[setting](doc, node, key), doc.at(node, key))


def put_setting(level: Level, setting: str, value: Any, where: Location) -> None:
    """Later definitions win (an Ansible host listed twice); vars merge key by key."""
    if setting == "vars":
        value = {**own_vars(level), **value}
    level[setting] = Setting(value, where)


def own_vars(level: Level) -> dict[str, Any]:
    return level["vars"].value if "vars" in level else {}
