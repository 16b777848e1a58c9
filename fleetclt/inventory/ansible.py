"""The Ansible YAML inventory format, read into the same shape as a native file.

Private to the inventory package: load.py calls ``is_ansible`` and ``read_ansible``.

Why a module of its own: Ansible's tree (``all:``/``children:``/``hosts:``/``vars:``)
is a second way to write the same inventory; its reader maps ``ansible_host``,
``ansible_port``, ``ansible_user``, ``ansible_password`` (or its older name
``ansible_ssh_pass``, often a ``!vault`` value) and ``fleetclt_<setting>`` onto settings and
``all.vars`` onto defaults, then hands back a ``Raw`` that resolution treats exactly
like a native one. Kept apart so the native format and resolution stay short.
"""
from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from .nodes import (
    NATIVE_KEYS,
    SETTINGS,
    Doc,
    Entry,
    Items,
    Level,
    Raw,
    check_keys,
    join_key,
    put_setting,
    set_setting,
    sub_mapping,
    suggest,
)

_ANSIBLE_KEYS = ("hosts", "children", "vars")
_ANSIBLE_VARS = {"ansible_host": "address", "ansible_port": "port", "ansible_user": "username",
                 "ansible_password": "password", "ansible_ssh_pass": "password"}


def is_ansible(top: Items) -> bool:
    """Ansible's tree: top keys are groups (usually ``all``) holding hosts/children/vars."""
    if set(top) <= set(NATIVE_KEYS):
        return False
    return "all" in top or all(_looks_like_group(node) for _, node in top.values())


def _looks_like_group(node: Node) -> bool:
    return isinstance(node, MappingNode) and bool(node.value) and all(
        isinstance(k, ScalarNode) and k.value in _ANSIBLE_KEYS for k, _ in node.value)


def read_ansible(doc: Doc, top: Items) -> Raw:
    raw = Raw()
    for name, (_, node) in top.items():
        _ansible_group(doc, raw, None if name == "all" else name, node, name, (name,))
    return raw


def _ansible_group(doc: Doc, raw: Raw, name: str | None, node: Node, key: str,
                   path: tuple[str, ...]) -> None:
    """One group (``name`` None for the top ``all``, whose vars are the defaults)."""
    if (name or "", id(node)) in raw.walked:  # an alias read again: nothing new, maybe exponential
        return
    raw.walked.add((name or "", id(node)))
    items = doc.mapping(node, key)
    check_keys(doc, items, _ANSIBLE_KEYS, key)
    group = raw.groups.setdefault(name, Entry(doc.at(node, key))) if name else None
    if "vars" in items:
        level = group.level if group else raw.defaults
        _ansible_vars(doc, level, items["vars"][1], join_key(key, "vars"))
    for host, (host_key, host_node) in sub_mapping(doc, items, "hosts", key).items():
        where = doc.at(host_key, join_key(key, f"hosts.{host}"))
        entry = raw.hosts.setdefault(host, Entry(where))
        _ansible_vars(doc, entry.level, host_node, where.key)
        if group and name:
            entry.links.append((name, where))
    for child, (child_key, child_node) in sub_mapping(doc, items, "children", key).items():
        where = doc.at(child_key, join_key(key, f"children.{child}"))
        if child in path:
            raise where.error(f"group cycle: {' -> '.join(path + (child,))}")
        _ansible_group(doc, raw, child, child_node, where.key, path + (child,))
        if group:
            group.links.append((child, where))


def _ansible_vars(doc: Doc, level: Level, node: Node, key: str) -> None:
    """Connection variables become settings; the rest become free-form vars."""
    free: dict[str, Any] = {}
    for var, (var_key, value_node) in doc.mapping(node, key).items():
        setting = _ansible_setting(doc, var, var_key, join_key(key, var))
        if setting:
            set_setting(doc, level, setting, value_node, join_key(key, var))
        else:
            free[var] = doc.value(value_node, join_key(key, var))
    if free:
        put_setting(level, "vars", free, doc.at(node, key))


def _ansible_setting(doc: Doc, var: str, key_node: Node, key: str) -> str | None:
    if var in _ANSIBLE_VARS:
        return _ANSIBLE_VARS[var]
    if not var.startswith("fleetclt_"):
        return None
    if var[len("fleetclt_"):] not in SETTINGS:
        raise doc.at(key_node, key).error(
            f"unknown fleetclt setting{suggest(var, ['fleetclt_' + s for s in SETTINGS])}")
    return var[len("fleetclt_"):]
