"""Host patterns: Ansible semantics over plain names, and through Inventory.select."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetclt.errors import ConfigError
from fleetclt.inventory.load import parse_inventory
from fleetclt.inventory.patterns import select_names, split_pattern

HOSTS = ["nas01", "nas02", "nas03", "web1", "db.example.com"]
GROUPS = {
    "eu": ["nas01", "nas02"],
    "eu-west": ["nas02"],
    "canary": ["nas03", "nas01"],
    "empty": [],
    "webservers": ["web1"],
}


def sel(pattern, failed=frozenset()):
    return select_names(pattern, HOSTS, GROUPS, failed)


@pytest.mark.parametrize("pattern, expected", [
    ("all", HOSTS),
    ("*", HOSTS),
    ("nas02", ["nas02"]),
    ("eu", ["nas01", "nas02"]),
    ("empty", []),
    ("canary", ["nas01", "nas03"]),                      # inventory order, not group order
    ("nas0[13]", ["nas01", "nas03"]),
    ("nas0?", ["nas01", "nas02", "nas03"]),
    ("*.example.com", ["db.example.com"]),
    ("eu-*", ["nas02"]),                                 # globs match group names too
    ("web*", ["web1"]),                                  # host web1 and group webservers
    ("NAS*", []),                                        # globs are case-sensitive
    ("zzz*", []),                                        # a glob matching nothing is no error
    ("~nas0[23]", ["nas02", "nas03"]),
    ("~as0", []),                                        # regex is anchored at the start
    ("~.*as0[1]$", ["nas01"]),
    ("~(eu|webservers)$", ["nas01", "nas02", "web1"]),
    ("nas03,eu", ["nas01", "nas02", "nas03"]),
    ("nas03:eu", ["nas01", "nas02", "nas03"]),
    (" nas03 , eu ,", ["nas01", "nas02", "nas03"]),
    ("eu,&canary", ["nas01"]),
    ("&canary,eu", ["nas01"]),                           # order of terms does not matter
    ("all,!eu", ["nas03", "web1", "db.example.com"]),
    ("!eu,all", ["nas03", "web1", "db.example.com"]),
    ("!eu", ["nas03", "web1", "db.example.com"]),       # only exclusions: start from all
    ("&eu", ["nas01", "nas02"]),
    ("eu:!eu-west", ["nas01"]),
    ("eu,canary,&eu,!nas01", ["nas02"]),
    ("all,!~nas.*", ["web1", "db.example.com"]),
    ("!nas0*", ["web1", "db.example.com"]),
    ("web1:~db.example:com", ["web1"]),                  # a ~regex keeps its colons
    (["eu", "nas03"], ["nas01", "nas02", "nas03"]),      # a list is a union
    (["eu,!nas01", "web1"], ["nas02", "web1"]),
])
def test_pattern_forms(pattern, expected):
    assert sel(pattern) == expected


def test_failed_selects_only_failed_hosts_in_inventory_order():
    assert sel("@failed", {"nas03", "nas01", "gone"}) == ["nas01", "nas03"]
    assert sel("@failed,&eu", {"nas03", "nas01"}) == ["nas01"]
    assert sel("all,!@failed", {"nas01"}) == ["nas02", "nas03", "web1", "db.example.com"]
    assert sel("@failed") == []


@pytest.mark.parametrize("pattern, message", [
    ("canry", "host pattern: no host or group named 'canry'; did you mean 'canary'?"),
    ("all,!canry", "host pattern: no host or group named 'canry'; did you mean 'canary'?"),
    ("eu,&nas4", "host pattern: no host or group named 'nas4'; did you mean"),
    ("qqqqqq", "host pattern: no host or group named 'qqqqqq' (the inventory has 5 hosts and 5 groups)"),
    ("", "host pattern is empty (an unset variable?); use 'all' to select every host"),
    (" , ,", "host pattern is empty"),
    ("eu,!", "host pattern: '!' must be followed by a host or group"),
    ("&", "host pattern: '&' must be followed by a host or group"),
    ("~nas[", "host pattern: invalid regular expression 'nas['"),
    ("@last", "host pattern: unknown selector '@last'; the only one is '@failed'"),
    ([["eu"]], "host pattern: expected strings, got list"),
])
def test_pattern_errors(pattern, message):
    with pytest.raises(ConfigError) as info:
        sel(pattern)
    assert str(info.value).startswith(message)


def test_near_matches_list_several_candidates():
    with pytest.raises(ConfigError) as info:
        sel("nas0")
    assert "'nas01'" in str(info.value) and "'nas02'" in str(info.value)


def test_split_pattern():
    assert split_pattern("a,b:c") == ["a", "b:c"]              # commas win over colons
    assert split_pattern("a:!b:&c") == ["a", "!b", "&c"]
    assert split_pattern("a:!~x:y") == ["a", "!~x:y"]
    assert split_pattern(("a", "b,c")) == ["a", "b", "c"]


names = st.sampled_from(HOSTS + list(GROUPS) + ["all", "nas0*", "~web"])


@given(st.lists(names, min_size=1, max_size=4), st.lists(names, max_size=3))
def test_union_and_exclusion_agree_with_set_algebra(included, excluded):
    union = set().union(*(sel(term) for term in included))
    removed = set().union(*(sel(term) for term in excluded))
    pattern = ",".join(included + ["!" + term for term in excluded])
    assert sel(pattern) == [host for host in HOSTS if host in union - removed]


@given(names, names)
def test_intersection_agrees_with_set_algebra(left, right):
    both = set(sel(left)) & set(sel(right))
    assert sel(f"{left},&{right}") == [host for host in HOSTS if host in both]


INVENTORY = """
groups:
  eu: {children: [eu-west]}
  eu-west: {}
  canary: {}
hosts:
  nas01: {groups: [eu-west, canary]}
  nas02: {groups: [eu]}
  nas03: {}
"""


def test_inventory_select_delegates_with_children_members():
    inventory = parse_inventory(INVENTORY)
    assert [h.name for h in inventory.select("eu")] == ["nas01", "nas02"]
    assert [h.name for h in inventory.select("eu,!canary")] == ["nas02"]
    assert [h.name for h in inventory.select("@failed", failed={"nas03"})] == ["nas03"]
    assert inventory.select("nas02")[0] is inventory.hosts["nas02"]


def test_inventory_select_unknown_name_suggests():
    with pytest.raises(ConfigError, match="did you mean 'eu-west'"):
        parse_inventory(INVENTORY).select("eu_west")
