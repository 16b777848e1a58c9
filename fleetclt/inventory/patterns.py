"""Host patterns with Ansible's semantics, so users can type what they already know.

The syntax is documented in docs/cli.md (Host patterns). Works on plain names
(the inventory's host order and each group's members), so it needs no inventory
types. As in Ansible's ``order_patterns``, unions apply first, then
intersections, then exclusions. A ``~regex`` term in a colon-separated pattern
runs to the end of the pattern, so a regex may contain colons. A plain name that
matches no host and no group is an error (a typo in ``!canary`` must not
silently run on the canaries); a glob or regex matching nothing is not.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from ..errors import ConfigError, did_you_mean

__all__ = ["FAILED", "select_names", "split_pattern"]

FAILED = "@failed"
_GLOB_CHARS = re.compile(r"[*?\[]")
_OPERATORS: dict[str, Callable[[set[str], set[str]], set[str]]] = {
    "": set.union,
    "&": set.intersection,
    "!": set.difference,
}


def split_pattern(pattern: str | Iterable[str]) -> list[str]:
    """Terms of a pattern; a list of patterns is the union of its elements."""
    if isinstance(pattern, str):
        parts = pattern.split(",") if "," in pattern else _split_colons(pattern)
        return [part.strip() for part in parts if part.strip()]
    terms: list[str] = []
    for item in pattern:
        if not isinstance(item, str):
            raise ConfigError(f"host pattern: expected strings, got {type(item).__name__}")
        terms.extend(split_pattern(item))
    return terms


def _split_colons(pattern: str) -> list[str]:
    """Split on ':' (Ansible's old separator) but keep a trailing ~regex whole."""
    parts = pattern.split(":")
    for index, part in enumerate(parts):
        if part.strip().lstrip("!&").startswith("~"):
            return parts[:index] + [":".join(parts[index:])]
    return parts


def select_names(
    pattern: str | Iterable[str],
    hosts: Sequence[str],
    groups: Mapping[str, Collection[str]],
    failed: AbstractSet[str] = frozenset(),
) -> list[str]:
    """Host names matching ``pattern``, in the order of ``hosts``."""
    terms = split_pattern(pattern)
    if not terms:
        raise ConfigError("host pattern is empty (an unset variable?); use 'all' to select every host")
    matcher = _Matcher(hosts, groups, failed)
    selected: set[str] = set()
    for operator, term in _ordered(terms):
        selected = _OPERATORS[operator](selected, matcher.match(term))
    return [name for name in hosts if name in selected]


def _ordered(terms: list[str]) -> list[tuple[str, str]]:
    """Unions, then intersections, then exclusions, as Ansible evaluates them."""
    split = [(term[0], term[1:].strip()) if term[0] in "&!" else ("", term) for term in terms]
    for operator, term in split:
        if not term:
            raise ConfigError(f"host pattern: '{operator}' must be followed by a host or group")
    if not any(operator == "" for operator, _ in split):
        split.insert(0, ("", "all"))
    return sorted(split, key=lambda item: list(_OPERATORS).index(item[0]))


class _Matcher:
    """Resolves one term against the inventory's names."""

    def __init__(
        self, hosts: Sequence[str], groups: Mapping[str, Collection[str]], failed: AbstractSet[str]
    ) -> None:
        self.hosts, self.groups = hosts, groups
        self.host_set = frozenset(hosts)
        self.failed = self.host_set & failed

    def match(self, term: str) -> set[str]:
        """The host names one term stands for."""
        if term in ("all", "*"):
            return set(self.host_set)
        if term.startswith("@"):
            return self._special(term)
        if term.startswith("~"):
            return self._search(_compile(term[1:]).match)
        if _GLOB_CHARS.search(term):
            return self._search(lambda name: fnmatch.fnmatchcase(name, term))
        return self._name(term)

    def _special(self, term: str) -> set[str]:
        if term != FAILED:
            raise ConfigError(f"host pattern: unknown selector {term!r}; the only one is {FAILED!r}")
        return set(self.failed)

    def _search(self, test: Callable[[str], object]) -> set[str]:
        """Hosts whose name matches, plus members of groups whose name matches."""
        found = {name for name in self.hosts if test(name)}
        for group, members in self.groups.items():
            if test(group):
                found.update(members)
        return found

    def _name(self, term: str) -> set[str]:
        if term in self.host_set:
            return {term}
        if term in self.groups:
            return set(self.groups[term])
        raise ConfigError(f"host pattern: no host or group named {term!r}{self._near(term)}")

    def _near(self, term: str) -> str:
        sizes = f" (the inventory has {len(self.hosts)} hosts and {len(self.groups)} groups)"
        return did_you_mean(term, [*self.hosts, *self.groups]) or sizes


def _compile(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"host pattern: invalid regular expression {regex!r}: {exc}") from None
