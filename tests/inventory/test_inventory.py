"""Inventory: format, resolution order, URI rule, every error shape, Ansible, secrets."""
from __future__ import annotations

import dataclasses
import logging
import os
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetclt.errors import ConfigError, InventoryError
from fleetclt.inventory.load import GroupSpec, HostSpec, Inventory, load_inventory, parse_inventory
from fleetclt.secret import Secret

SECRET = "pa55-Word-not-for-logs"
FP = "AB:" * 31 + "AB"


def parse(text: str, path: str = "inventory.yaml") -> Inventory:
    return parse_inventory(textwrap.dedent(text), path)


def error(text: str, path: str = "inventory.yaml") -> str:
    with pytest.raises(InventoryError) as info:
        parse(text, path)
    return str(info.value)


ISSUE_EXAMPLE = """\
defaults:
  username: admin
  password: {env: TRUENAS_PASSWORD}
groups:
  eu: {timeout: 30}
  canary: {}
hosts:
  nas01:
    address: 10.0.0.11
    groups: [eu, canary]
  nas02:
    uri: ws://127.0.2.2:6001/api/current
    api_key: {file: ~/.config/fleetclt/nas02.key}
"""


def test_issue_example_resolves():
    inventory = parse(ISSUE_EXAMPLE)
    nas01, nas02 = inventory.hosts.values()
    assert nas01 == HostSpec(
        name="nas01", uri="wss://10.0.0.11/api/current", address="10.0.0.11", port=443,
        username="admin", password=Secret.env("TRUENAS_PASSWORD"), timeout=30.0,
        groups=("eu", "canary"))
    assert (nas02.uri, nas02.address, nas02.port) == ("ws://127.0.2.2:6001/api/current", "127.0.2.2", 6001)
    assert nas02.api_key.source == "file:~/.config/fleetclt/nas02.key"
    assert (nas02.verify_tls, nas02.timeout, nas02.connect_timeout, nas02.groups) == (True, 30.0, 10.0, ())
    assert inventory.groups["canary"] == GroupSpec("canary", hosts=("nas01",))
    assert inventory.path == "inventory.yaml"


def test_hosts_keep_file_order():
    names = [f"h{i:02d}" for i in (5, 1, 9, 3, 7)]
    inventory = parse("hosts:\n" + "".join(f"  {n}: {{}}\n" for n in names))
    assert list(inventory.hosts) == names


@pytest.mark.parametrize("settings_, uri, address, port", [
    ("{}", "wss://nas01/api/current", "nas01", 443),                      # address defaults to name
    ("{address: 10.0.0.1}", "wss://10.0.0.1/api/current", "10.0.0.1", 443),
    ("{address: 10.0.0.1, scheme: ws}", "ws://10.0.0.1/api/current", "10.0.0.1", 80),
    ("{address: 10.0.0.1, port: 443}", "wss://10.0.0.1/api/current", "10.0.0.1", 443),
    ("{address: h.example, port: 6000, scheme: ws, path: /websocket}",
     "ws://h.example:6000/websocket", "h.example", 6000),
    ("{address: '::1', port: 8443}", "wss://[::1]:8443/api/current", "::1", 8443),
    ("{address: '[fe80::1]'}", "wss://[fe80::1]/api/current", "fe80::1", 443),
    ("{uri: 'wss://nas.example'}", "wss://nas.example", "nas.example", 443),  # no path added
    ("{uri: 'ws://127.0.0.1:6001/'}", "ws://127.0.0.1:6001/", "127.0.0.1", 6001),
    ("{uri: 'ws://[::1]:7/api/current'}", "ws://[::1]:7/api/current", "::1", 7),
])
def test_uri_rule(settings_, uri, address, port):
    host = parse(f"hosts:\n  nas01: {settings_}\n").hosts["nas01"]
    assert (host.uri, host.address, host.port) == (uri, address, port)


def test_uri_at_host_level_wins_over_inherited_parts():
    text = """
    defaults: {port: 7000, scheme: ws, path: /x}
    hosts:
      a: {uri: 'wss://a.example/api/current'}
      b: {address: b.example}
    """
    hosts = parse(text).hosts
    assert hosts["a"].uri == "wss://a.example/api/current"
    assert hosts["b"].uri == "ws://b.example:7000/x"


@pytest.mark.parametrize(("settings_", "uri"), [
    ("{api_version: v25.04.2}", "wss://nas01/api/v25.04.2"),
    ("{api_version: '25.10.1', address: 10.0.0.1, scheme: ws}", "ws://10.0.0.1/api/v25.10.1"),
    ("{api_version: current, path: /api/v25.04.2}", "wss://nas01/api/current"),
    ("{uri: 'wss://nas.example:8443', api_version: v26.0.0}", "wss://nas.example:8443/api/v26.0.0"),
    ("{uri: 'ws://127.0.0.1:6001/api/current', api_version: v24.10}", "ws://127.0.0.1:6001/api/v24.10"),
])
def test_api_version_pins_the_endpoint(settings_, uri):
    assert parse(f"hosts:\n  nas01: {settings_}\n").hosts["nas01"].uri == uri


def test_api_version_is_inherited_from_groups():
    text = """
    groups:
      old-api: {api_version: v25.04.2}
    hosts:
      a: {uri: 'ws://127.0.0.1:6001/api/current', groups: [old-api]}
      b: {uri: 'ws://127.0.0.2:6001/api/current'}
    """
    hosts = parse(text).hosts
    assert (hosts["a"].uri, hosts["b"].uri) == ("ws://127.0.0.1:6001/api/v25.04.2", "ws://127.0.0.2:6001/api/current")


def test_api_version_errors():
    assert "hosts.nas01.api_version: expected current or an API version such as v25.04.2, got 'latest'" in error(
        "hosts:\n  nas01: {api_version: latest}\n")
    legacy = error("hosts:\n  nas01: {uri: 'ws://h:1/websocket', api_version: v25.04.2}\n")
    assert "api_version: needs a JSON-RPC endpoint (/api/...), but the uri in force has /websocket" in legacy


def test_an_ha_pair_is_one_host_with_its_controllers():
    text = """
    groups:
      old-api: {api_version: v25.04.2}
    hosts:
      pair1: {controllers: ['wss://10.0.0.1', 'wss://10.0.0.2:8443/api/current'], groups: [old-api]}
      single: {uri: 'wss://10.0.0.3/api/current'}
    """
    pair, single = parse(text).hosts.values()
    assert (pair.uri, pair.address, pair.port) == ("wss://10.0.0.1/api/v25.04.2", "10.0.0.1", 443)
    assert pair.controllers == ("wss://10.0.0.1/api/v25.04.2", "wss://10.0.0.2:8443/api/v25.04.2")
    assert single.controllers == () and pair.to_dict()["controllers"] == list(pair.controllers)


def test_controllers_errors():
    assert "expected a list of two or more controller uris" in error(
        "hosts:\n  a: {controllers: ['wss://x']}\n")
    assert "hosts.a.controllers[1]: expected ws://HOST" in error(
        "hosts:\n  a: {controllers: ['wss://x', 'http://y']}\n")
    assert "give either controllers or uri" in error(
        "hosts:\n  a: {controllers: ['wss://x', 'wss://y'], uri: 'wss://z'}\n")
    assert "give either controllers or port" in error(
        "groups:\n  g: {controllers: ['wss://x', 'wss://y']}\nhosts:\n  a: {port: 1, groups: [g]}\n")


INHERITANCE = """\
defaults:
  username: default-user
  timeout: 5
  connect_timeout: 4
  verify_tls: false
  vars: {site: default, level: defaults}
groups:
  eu:
    timeout: 6
    connect_timeout: 3
    children: [eu-west]
    vars: {level: eu, region: eu}
  eu-west:
    timeout: 7
    vars: {level: eu-west}
  canary:
    timeout: 8
    username: canary-user
    ca_file: /etc/ssl/canary.pem
  solo: {}
hosts:
  a: {groups: [eu-west, canary], timeout: 9}
  b: {groups: [eu-west, canary]}
  c: {groups: [canary, eu-west]}
  d: {groups: [eu]}
  e: {vars: {level: host}}
  f: {groups: [solo, canary], username: f-user}
"""


def test_resolution_host_then_groups_in_listed_order_then_defaults():
    hosts = parse(INHERITANCE).hosts
    assert hosts["a"].timeout == 9.0                          # host wins
    assert hosts["b"].timeout == 7.0                          # first listed group wins
    assert hosts["c"].timeout == 8.0                          # ...in listed order
    assert hosts["b"].username == "canary-user"               # first group that sets it
    assert hosts["e"].username == "default-user"              # defaults last
    assert hosts["f"].username == "f-user"
    assert hosts["e"].verify_tls is False


def test_children_inherit_from_parent_groups_depth_first():
    hosts = parse(INHERITANCE).hosts
    assert hosts["b"].groups == ("eu-west", "eu", "canary")   # nornir order: parents before next
    assert hosts["b"].connect_timeout == 3.0                   # from eu, parent of eu-west
    assert hosts["c"].groups == ("canary", "eu-west", "eu")
    assert hosts["c"].ca_file == "/etc/ssl/canary.pem"
    assert hosts["d"].groups == ("eu",) and hosts["d"].timeout == 6.0


def test_vars_merge_key_by_key_in_precedence_order():
    hosts = parse(INHERITANCE).hosts
    assert dict(hosts["b"].vars) == {"site": "default", "level": "eu-west", "region": "eu"}
    assert dict(hosts["e"].vars) == {"site": "default", "level": "host"}


def test_group_members_include_children_in_host_order():
    groups = parse(INHERITANCE).groups
    assert groups["eu"].hosts == ("a", "b", "c", "d")
    assert groups["eu"].children == ("eu-west",)
    assert groups["eu-west"].hosts == ("a", "b", "c")
    assert groups["canary"].hosts == ("a", "b", "c", "f")
    assert dict(groups["eu"].vars) == {"level": "eu", "region": "eu"}


def test_diamond_and_deep_group_graphs_resolve():
    text = """
    groups:
      top: {timeout: 1, children: [left, right]}
      left: {children: [bottom]}
      right: {children: [bottom], timeout: 2}
      bottom: {}
    hosts:
      h: {groups: bottom}
    """
    host = parse(text).hosts["h"]
    assert host.groups == ("bottom", "left", "top", "right")
    assert host.timeout == 1.0


def test_null_means_not_set_here():
    text = """
    defaults: {timeout: 12, vars: {a: 1}}
    hosts:
      h: {timeout: null, vars: , username: }
      g:
    """
    hosts = parse(text).hosts
    assert (hosts["h"].timeout, hosts["h"].username, dict(hosts["h"].vars)) == (12.0, None, {"a": 1})
    assert hosts["g"].uri == "wss://g/api/current"


def test_setting_values_are_normalised(tmp_path):
    text = f"""
    hosts:
      h:
        tls_fingerprint: "{FP}"
        timeout: 2
        connect_timeout: 0.5
        ca_file: certs/ca.pem
    """
    host = parse(text, str(tmp_path / "inv.yaml")).hosts["h"]
    assert host.tls_fingerprint == "ab" * 32
    assert (host.timeout, host.connect_timeout) == (2.0, 0.5)
    assert isinstance(host.timeout, float)
    assert host.ca_file == str(tmp_path / "certs" / "ca.pem")


def test_yaml_anchors_and_merge_keys():
    text = """
    hosts:
      a: &base {port: 6000, scheme: ws, vars: {x: 1}}
      b:
        <<: *base
        port: 6001
    """
    hosts = parse(text).hosts
    assert (hosts["b"].port, hosts["b"].uri, dict(hosts["b"].vars)) == (6001, "ws://b:6001/api/current", {"x": 1})


def test_everything_is_frozen():
    inventory = parse(INHERITANCE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inventory.hosts["a"].timeout = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        inventory.hosts["z"] = inventory.hosts["a"]  # type: ignore[index]
    with pytest.raises(TypeError):
        inventory.hosts["e"].vars["level"] = "x"  # type: ignore[index]


def test_directly_built_specs_are_frozen_too():
    source = {"k": 1}
    host = HostSpec("h", "wss://h/api/current", "h", 443, vars=source)
    inventory = Inventory("x", {"h": host}, {})
    source["k"] = 2
    assert host.vars == {"k": 1} and list(inventory.hosts) == ["h"]
    with pytest.raises(TypeError):
        inventory.hosts["g"] = host  # type: ignore[index]
    assert hash(host) == hash(HostSpec("h", "wss://h/api/current", "h", 443))


def test_deep_nesting_is_an_inventory_error():
    chain = "".join(f"  g{i}: {{children: [g{i + 1}]}}\n" for i in range(3000))
    assert error(f"groups:\n{chain}  g3000: {{}}\n") == "inventory.yaml: groups are nested too deeply"
    deep = "[" * 5000 + "]" * 5000
    assert error(f"hosts:\n  a: {{vars: {{v: {deep}}}}}\n") in (
        "inventory.yaml:2: hosts.a.vars: cannot read value: nested too deeply",  # our limit
        "inventory.yaml:2: invalid YAML: exceeded maximum nesting depth")  # libyaml's own, from PyYAML 6.0.4


def test_to_dict_is_plain_and_holds_no_secret(monkeypatch):
    monkeypatch.setenv("TRUENAS_PASSWORD", SECRET)
    host = parse(ISSUE_EXAMPLE).hosts["nas01"]
    data = host.to_dict()
    assert data["password"] == "env:TRUENAS_PASSWORD" and data["api_key"] is None
    assert data["groups"] == ["eu", "canary"] and isinstance(data["vars"], dict)
    assert SECRET not in repr(data)
    assert parse(INHERITANCE).groups["eu"].to_dict() == {
        "name": "eu", "hosts": ["a", "b", "c", "d"], "children": ["eu-west"],
        "vars": {"level": "eu", "region": "eu"}}


# --- every error names file, line and key ---------------------------------------------

ERRORS = [
    ("hosts:\n  nas07:\n    port: abc\n",
     "inventory.yaml:3: hosts.nas07.port: expected an integer, got 'abc'"),
    ("hosts:\n  nas07:\n    port: 70000\n",
     "inventory.yaml:3: hosts.nas07.port: expected a port number 1-65535, got 70000"),
    ("hosts:\n  a:\n    port: true\n", "inventory.yaml:3: hosts.a.port: expected an integer, got true"),
    ("hosts:\n  a:\n    prot: 1\n", "inventory.yaml:3: hosts.a.prot: unknown key; did you mean 'port'?"),
    ("hostz:\n  a: {}\n", "inventory.yaml:1: hostz: unknown key; did you mean 'hosts'?"),
    ("defaults:\n  usrname: x\n",
     "inventory.yaml:2: defaults.usrname: unknown key; did you mean 'username'?"),
    ("groups:\n  eu:\n    childs: []\n",
     "inventory.yaml:3: groups.eu.childs: unknown key; did you mean 'children'?"),
    ("defaults:\n  groups: [x]\n",
     "inventory.yaml:2: defaults.groups: unknown key; expected one of: address, allow_plain_api_key"),
    ("hosts:\n  a:\n    zzzz: 1\n", "inventory.yaml:3: hosts.a.zzzz: unknown key; expected one of: "
     "address, allow_plain_api_key, api_key, api_version, ca_file, connect_timeout, controllers, groups, otp_secret, "
     "password, path, port, scheme, timeout, tls_fingerprint, uri, username, vars, verify_tls"),
    ("groups:\n  eu-west: {}\nhosts:\n  a:\n    groups: [eu_west]\n",
     "inventory.yaml:5: hosts.a.groups[0]: unknown group 'eu_west'; did you mean 'eu-west'?"),
    ("groups:\n  eu:\n    children:\n      - eu-west\n      - nrth\n  north: {}\n  eu-west: {}\n",
     "inventory.yaml:5: groups.eu.children[1]: unknown group 'nrth'; did you mean 'north'?"),
    ("groups:\n  a: {children: [b]}\n  b:\n    children: [a]\n",
     "inventory.yaml:4: groups.b.children[0]: group cycle: a -> b -> a"),
    ("groups:\n  a: {children: [a]}\n", "inventory.yaml:2: groups.a.children[0]: group cycle: a -> a"),
    ("hosts:\n  a:\n    groups: {x: 1}\n",
     "inventory.yaml:3: hosts.a.groups: expected a list of group names, got a mapping"),
    ("hosts:\n  a:\n    groups: [1]\n", "inventory.yaml:3: hosts.a.groups[0]: expected a string, got 1"),
    ("hosts:\n  a: {}\n  b: {}\n  a: {}\n", "inventory.yaml:4: hosts.a: duplicate key (first at line 2)"),
    ("hosts:\n  a b: {}\n", "inventory.yaml:2: hosts.a b: host name 'a b' cannot be used in host patterns"),
    ("hosts:\n  all: {}\n", "inventory.yaml:2: hosts.all: 'all' is reserved and cannot name a host"),
    ("groups:\n  web*: {}\n", "inventory.yaml:2: groups.web*: group name 'web*' cannot be used"),
    ("groups:\n  x: {}\nhosts:\n  x: {}\n", "inventory.yaml:4: hosts.x: 'x' names both a host and a group"),
    ("hosts:\n  a:\n    address: 'x y'\n",
     "inventory.yaml:3: hosts.a.address: expected a host name or IP address, got 'x y'"),
    ("hosts:\n  a:\n    scheme: http\n", "inventory.yaml:3: hosts.a.scheme: expected one of ws, wss, got 'http'"),
    ("hosts:\n  a:\n    path: api\n",
     "inventory.yaml:3: hosts.a.path: expected a path such as /api/current, got 'api'"),
    ("hosts:\n  a:\n    uri: http://x/api\n",
     "inventory.yaml:3: hosts.a.uri: expected ws://HOST[:PORT][/PATH] or wss://..., got 'http://x/api'"),
    ("hosts:\n  a:\n    uri: 'ws://x:99999/'\n",
     "inventory.yaml:3: hosts.a.uri: not a valid uri: the port 99999 is out of range (1-65535)"),
    ("hosts:\n  a:\n    uri: 'ws:///api'\n", "inventory.yaml:3: hosts.a.uri: expected ws://HOST"),
    ("hosts:\n  a:\n    uri: ws://x/api\n    port: 3\n",
     "inventory.yaml:4: hosts.a.port: conflicts with the uri set at inventory.yaml:3: hosts.a.uri; "
     "give either uri or address/port/scheme/path"),
    ("groups:\n  g:\n    uri: ws://x/api\nhosts:\n  a:\n    groups: [g]\n    address: y\n",
     "inventory.yaml:7: hosts.a.address: conflicts with the uri set at inventory.yaml:3: groups.g.uri"),
    ("hosts:\n  a:\n    verify_tls: 'no'\n", "inventory.yaml:3: hosts.a.verify_tls: expected true or false, got 'no'"),
    ("hosts:\n  a:\n    timeout: -1\n",
     "inventory.yaml:3: hosts.a.timeout: expected a positive number of seconds, got -1"),
    ("hosts:\n  a:\n    connect_timeout: .nan\n",
     "inventory.yaml:3: hosts.a.connect_timeout: expected a positive number of seconds, got nan"),
    ("hosts:\n  a:\n    timeout: [1]\n",
     "inventory.yaml:3: hosts.a.timeout: expected a number of seconds, got a list"),
    ("hosts:\n  a:\n    tls_fingerprint: 'ab:cd'\n",
     "inventory.yaml:3: hosts.a.tls_fingerprint: expected a SHA-256 fingerprint (64 hex digits, "
     "colons allowed), got 'ab:cd'"),
    ("hosts:\n  a:\n    username: ''\n", "inventory.yaml:3: hosts.a.username: expected a non-empty string"),
    ("hosts:\n  a:\n    vars: [1]\n", "inventory.yaml:3: hosts.a.vars: expected a mapping, got a list"),
    ("hosts:\n  a:\n    vars: {1: x}\n", "inventory.yaml:3: hosts.a.vars: keys must be strings, got 1"),
    ("hosts:\n  a:\n    vars: {d: 2001-02-30}\n",
     "inventory.yaml:3: hosts.a.vars: cannot read value: day is out of range for month"),
    ("hosts:\n  a:\n    vars: {t: !custom x}\n", "inventory.yaml:3: hosts.a.vars: cannot read value: "
     "could not determine a constructor for the tag '!custom'"),
    ("hosts:\n  a:\n    password: {env: A, file: b}\n",
     "inventory.yaml:3: hosts.a.password: expected exactly one of {env: NAME} or {file: PATH}"),
    ("hosts:\n  a:\n    api_key: {evn: A}\n",
     "inventory.yaml:3: hosts.a.api_key: expected {env: NAME} or {file: PATH}; did you mean 'env'?"),
    ("hosts:\n  a:\n    password: {env: ''}\n",
     "inventory.yaml:3: hosts.a.password.env: expected a non-empty string"),
    ("hosts:\n  a:\n    password: [x]\n", "inventory.yaml:3: hosts.a.password: expected {env: NAME}, "
     "{file: PATH} or a non-empty string, got a list"),
    ("hosts:\n  - a\n", "inventory.yaml:2: hosts: expected a mapping, got a list"),
    ("hosts:\n  a: 5\n", "inventory.yaml:2: hosts.a: expected a mapping, got '5'"),
    ("[1, 2]\n", "inventory.yaml:1: expected a mapping, got a list"),
    ("", "inventory.yaml: the inventory is empty"),
    ("hosts:\n  a\x1f: {}\n", "inventory.yaml: invalid YAML: unacceptable character #x001f"),
    ("# only a comment\n", "inventory.yaml: the inventory is empty"),
    ("hosts: {}\n---\nhosts: {}\n", "inventory.yaml:2: invalid YAML: but found another document"),
    ("hosts:\n  a: *nope\n", "inventory.yaml:2: invalid YAML: found undefined alias 'nope'"),
    ("hosts:\n  a: {x: *n0pe-1, y: 2}\n", "inventory.yaml:2: invalid YAML: found undefined alias 'n0pe-1'"),
    ("hosts:\n\ta: {}\n", "inventory.yaml:2: invalid YAML: found character '\\t' that cannot start any token"),
    ("hosts:\n  a:\n    <<: [1]\n", "inventory.yaml:3: hosts.a: cannot merge: expected a mapping for merging"),
]


@pytest.mark.parametrize("text, message", ERRORS)
def test_error_messages_name_file_line_and_key(text, message):
    assert error(text).startswith(message)


# libyaml words a few syntax errors its own way; the file and line are the same.
PARSER_WORDS = [
    ("hosts:\n  a: {\n", "inventory.yaml:3: invalid YAML: ",
     "did not find expected node content", "expected the node content, but found '<stream end>'"),
    ("a: b: c\n", "inventory.yaml:1: invalid YAML: ",
     "mapping values are not allowed in this context", "mapping values are not allowed here"),
]


@pytest.mark.parametrize("text, where, libyaml, pyyaml", PARSER_WORDS)
def test_syntax_errors_name_file_and_line(text, where, libyaml, pyyaml):
    assert error(text) == where + (libyaml if yaml.__with_libyaml__ else pyyaml)


def test_an_unclosed_deep_nesting_is_one_line():
    """libyaml reads 5,000 `[` to the end and misses the content; from PyYAML 6.0.4 it stops at
    its nesting limit first. (PyYAML's own parser stops at Python's recursion limit.)"""
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML's own parser stops on this one at its recursion limit")
    assert error("[" * 5000) in ("inventory.yaml:2: invalid YAML: did not find expected node content",
                                 "inventory.yaml:1: invalid YAML: exceeded maximum nesting depth")


def test_error_attributes_match_the_message():
    with pytest.raises(InventoryError) as info:
        parse("hosts:\n  nas07:\n    port: abc\n", "site/inventory.yaml")
    assert (info.value.path, info.value.line, info.value.key) == ("site/inventory.yaml", 3, "hosts.nas07.port")


# --- secrets ---------------------------------------------------------------------------


def test_literal_secret_warns_with_location_but_never_the_value(caplog):
    caplog.set_level(logging.WARNING, logger="fleetclt.inventory")
    host = parse(f"hosts:\n  a:\n    username: u\n    password: {SECRET}\n").hosts["a"]
    assert host.password.reveal() == SECRET
    [record] = caplog.records
    assert record.name == "fleetclt.inventory" and record.levelno == logging.WARNING
    assert record.getMessage().startswith("inventory.yaml:4: hosts.a.password: literal secret")
    assert SECRET not in caplog.text


def test_references_do_not_warn(caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TRUENAS_PASSWORD", SECRET)
    inventory = parse(ISSUE_EXAMPLE)
    assert inventory.hosts["nas01"].password.reveal() == SECRET
    assert caplog.records == []


def test_no_secret_in_repr_str_or_to_dict(monkeypatch):
    monkeypatch.setenv("TRUENAS_PASSWORD", SECRET)
    inventory = parse(f"defaults: {{password: {{env: TRUENAS_PASSWORD}}}}\n"
                      f"hosts:\n  a: {{api_key: '{SECRET}x'}}\n  b: {{}}\n")
    texts = [repr(inventory), str(inventory), *(repr(h.to_dict()) for h in inventory.hosts.values())]
    assert inventory.hosts["b"].password.reveal() == SECRET
    assert all(SECRET not in text for text in texts)


@pytest.mark.parametrize("text", [
    f"hosts:\n  a:\n    password: {SECRET}: x\n",                # invalid YAML on the secret's line
    f"hosts:\n  a:\n    password: {SECRET}\n    password: {SECRET}\n",
    f"hosts:\n  a:\n    password: {{{SECRET}: 1}}\n",
    f"hosts:\n  a:\n    password: !tag {SECRET}\n",
    f"hosts:\n  a:\n    uri: 'wss://root:{SECRET}@nas/api'\n",
    f"hosts:\n  a:\n    password: {{env: A, file: {SECRET}}}\n",
])
def test_no_secret_in_error_text(text, caplog):
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert SECRET not in str(info.value)
    assert info.value.__context__ is None or info.value.__suppress_context__
    assert SECRET not in caplog.text


def test_file_secret_is_relative_to_the_inventory_folder(tmp_path):
    key = tmp_path / "keys" / "a.key"
    key.parent.mkdir()
    key.write_text(SECRET + "\n")
    os.chmod(key, 0o600)
    inventory_path = tmp_path / "inventory.yaml"
    inventory_path.write_text("hosts:\n  a:\n    api_key: {file: keys/a.key}\n")
    host = load_inventory(inventory_path).hosts["a"]
    assert host.api_key.reveal() == SECRET
    os.chmod(key, 0o644)
    with pytest.raises(InventoryError) as info:
        host.api_key.reveal()
    assert str(info.value).startswith(f"{inventory_path}:3: hosts.a.api_key: secret file {key}")
    assert str(info.value).endswith(f"chmod 600 {key}") and SECRET not in str(info.value)


def test_missing_env_secret_names_the_inventory_line(monkeypatch):
    monkeypatch.delenv("TRUENAS_PASSWORD", raising=False)
    password = parse(ISSUE_EXAMPLE).hosts["nas01"].password
    with pytest.raises(InventoryError, match=r"^inventory.yaml:3: defaults.password: environment "
                                             r"variable TRUENAS_PASSWORD is not set$"):
        password.reveal()


# --- loading ---------------------------------------------------------------------------


def test_load_inventory_path_env_and_default(tmp_path, monkeypatch):
    explicit, from_env, default = (tmp_path / n for n in ("x.yaml", "env.yaml", "inventory.yaml"))
    for path, host in ((explicit, "x"), (from_env, "e"), (default, "d")):
        path.write_text(f"hosts:\n  {host}: {{}}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETCLT_INVENTORY", raising=False)
    assert list(load_inventory().hosts) == ["d"]
    assert load_inventory().path == "inventory.yaml"
    monkeypatch.setenv("FLEETCLT_INVENTORY", str(from_env))
    assert list(load_inventory().hosts) == ["e"]
    assert list(load_inventory(explicit).hosts) == ["x"]
    assert list(load_inventory(str(explicit)).hosts) == ["x"]


def test_load_inventory_errors(tmp_path):
    with pytest.raises(InventoryError, match=r"absent.yaml: cannot read the inventory: No such file"):
        load_inventory(tmp_path / "absent.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"hosts: \xff\n")
    with pytest.raises(InventoryError, match="bin.yaml: the inventory is not valid UTF-8 text"):
        load_inventory(binary)
    broken = tmp_path / "broken.yaml"
    broken.write_text("hosts:\n  a:\n    port: abc\n")
    with pytest.raises(InventoryError, match=rf"^{broken}:3: hosts.a.port: "):
        load_inventory(broken)


# --- Ansible format ------------------------------------------------------------------------

ANSIBLE = """\
all:
  vars:
    ansible_user: root
    fleetclt_password: {env: NAS_PW}
    fleetclt_verify_tls: false
    site: hq
  hosts:
    lone.example.com:
  children:
    storage:
      vars: {tier: gold, fleetclt_scheme: ws}
      hosts:
        nas01: {ansible_host: 10.0.0.1, ansible_port: 6000, rack: r1}
        nas02:
      children:
        backup:
          hosts:
            nas03: {ansible_host: 10.0.0.3}
            nas01: {rack: r9}
"""


def test_ansible_inventory_maps_connection_vars():
    hosts = parse(ANSIBLE, "hosts.yml").hosts
    assert list(hosts) == ["lone.example.com", "nas01", "nas02", "nas03"]
    nas01 = hosts["nas01"]
    assert (nas01.uri, nas01.username, nas01.verify_tls) == ("ws://10.0.0.1:6000/api/current", "root", False)
    assert nas01.password == Secret.env("NAS_PW")
    assert dict(nas01.vars) == {"site": "hq", "tier": "gold", "rack": "r9"}
    assert hosts["lone.example.com"].uri == "wss://lone.example.com/api/current"
    assert hosts["lone.example.com"].groups == ()


def test_ansible_groups_and_children():
    inventory = parse(ANSIBLE, "hosts.yml")
    assert list(inventory.groups) == ["storage", "backup"]
    assert inventory.groups["storage"].hosts == ("nas01", "nas02", "nas03")
    assert inventory.groups["storage"].children == ("backup",)
    assert inventory.hosts["nas03"].groups == ("backup", "storage")
    assert inventory.hosts["nas03"].uri == "ws://10.0.0.3/api/current"   # scheme from parent
    assert [h.name for h in inventory.select("backup,!nas01")] == ["nas03"]


def test_ansible_inventory_without_all():
    hosts = parse("web:\n  hosts:\n    w1:\n    w2: {ansible_port: 8443}\n").hosts
    assert [(h.name, h.port, h.groups) for h in hosts.values()] == [("w1", 443, ("web",)), ("w2", 8443, ("web",))]


@pytest.mark.parametrize("text, message", [
    ("all:\n  vars:\n    fleetclt_apikey: x\n",
     "hosts.yml:3: all.vars.fleetclt_apikey: unknown fleetclt setting; did you mean 'fleetclt_api_key'"),
    ("all:\n  hostz: {}\n", "hosts.yml:2: all.hostz: unknown key; did you mean 'hosts'?"),
    ("all:\n  hosts:\n    a: {ansible_port: x}\n", "hosts.yml:3: all.hosts.a.ansible_port: expected an integer"),
    ("all:\n  children:\n    g:\n      children:\n        g: {}\n",
     "hosts.yml:5: all.children.g.children.g: group cycle: all -> g -> g"),
    ("all:\n  children:\n    g:\n      hosts: [a]\n", "hosts.yml:4: all.children.g.hosts: expected a mapping"),
])
def test_ansible_errors(text, message):
    assert error(text, "hosts.yml").startswith(message)


def test_ansible_aliases_are_not_walked_again():
    groups = "\n".join(f"    g{i}: &g{i}\n      children: {{a{i}: *g{i - 1}, b{i}: *g{i - 1}}}" for i in range(1, 25))
    text = "all:\n  children:\n    g0: &g0\n      hosts: {h: }\n" + groups + "\n"
    inventory = parse(text)
    assert inventory.groups["g24"].hosts == ("h",)
    assert inventory.hosts["h"].groups[:3] == ("g0", "a1", "g1")


# --- robustness: anything in, InventoryError/ConfigError or an Inventory out ----------------

KEYS = ["defaults", "groups", "hosts", "all", "children", "vars", "uri", "address", "port", "scheme",
        "path", "username", "password", "api_key", "verify_tls", "ca_file", "tls_fingerprint",
        "timeout", "connect_timeout", "env", "file", "ansible_host", "ansible_port", "fleetclt_uri",
        "nas01", "eu", "<<"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["ws", "wss", "ws://h/x", "wss://a:1", "/p",
                                                           "eu", "nas01", "2001-02-30", FP]))
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)),
    max_leaves=30,
)


def parses_or_config_error(text: str) -> None:
    try:
        result = parse_inventory(text)
    except ConfigError:
        return
    assert isinstance(result, Inventory)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_else(text):
    parses_or_config_error(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_yaml_structures_never_raise_anything_else(data):
    parses_or_config_error(yaml.safe_dump(data))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["hosts:", "groups:", "all:", "  a:", "  eu:", "    children: [eu]",
                                 "    groups: [eu]", "    port: 1", "  - x", "    <<: *x", "  b: &x {}",
                                 "    hosts: {a: }", ": :", "'", "{", "!!binary x", "    uri: ws://[::1"]),
                max_size=8))
def test_yaml_fragments_never_raise_anything_else(lines):
    parses_or_config_error("\n".join(lines))


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml: one parser only")
def test_libyaml_reads_an_inventory_as_pyyaml_does_lines_included(monkeypatch):
    """Valid inventories go through libyaml; secrets keep the line they were written on."""
    import fleetclt.inventory.load as module
    from fleetclt.inventory.nodes import vault_aware
    assert issubclass(module.FAST_LOADER, yaml.CSafeLoader)
    fast = parse(ISSUE_EXAMPLE)
    monkeypatch.setattr(module, "FAST_LOADER", vault_aware(yaml.SafeLoader))
    slow = parse(ISSUE_EXAMPLE)
    assert fast.hosts == slow.hosts and fast.groups == slow.groups
    where = [(host.password.where, host.api_key and host.api_key.where) for host in fast.hosts.values()]
    assert where == [(host.password.where, host.api_key and host.api_key.where) for host in slow.hosts.values()]
    assert str(fast.hosts["nas02"].api_key.where) == "inventory.yaml:13: hosts.nas02.api_key"


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml: one parser only")
def test_a_broken_inventory_is_parsed_once(monkeypatch):
    """A 100,000-host inventory broken near its end took 13 s to report (libyaml's parse, then
    PyYAML's pure-Python one just for the wording) against 8 s to load when valid; now the one
    libyaml parse words it, with the file, the line and the token PyYAML would have named."""
    pure_parses = []

    class Counting(yaml.SafeLoader):
        def __init__(self, stream):
            pure_parses.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(yaml, "SafeLoader", Counting)
    hosts = "".join(f"  nas{i}: {{address: 10.0.0.{i}}}\n" for i in range(200))
    assert error(f"hosts:\n{hosts}  broken: [1, 2\n  last: {{}}\n") == \
        "inventory.yaml:203: invalid YAML: did not find expected ',' or ']'"
    assert error(f"hosts:\n{hosts}  alias: *gone\n") == "inventory.yaml:202: invalid YAML: found undefined alias 'gone'"
    assert error(f"hosts:\n{hosts}  nas0: {{}}\n").endswith("hosts.nas0: duplicate key (first at line 2)")
    assert pure_parses == []
