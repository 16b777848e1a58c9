"""Query filters and options as middlewared's filter_list applies them.

Filters are `[["field", "op", value], ...]` (AND), `["OR", [f1, f2]]`, dotted
field names, and a `C` prefix on an operator for case-insensitive matching.
Options: get, count, limit, offset, order_by ("-field" descends), select.
Comparisons are Python's own, as in middlewared's pure-Python filter_list
(utils/__init__.py to 25.04, utils/filter_list.py from 25.10): ordering a naive
datetime (job times) against an aware one (a decoded `$date`) raises TypeError,
which the server answers as -32001 EINVAL.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .failures import ValidationErrors

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
    "~": lambda a, b: isinstance(a, str) and re.search(b, a) is not None,
    "in": lambda a, b: a in b,
    "nin": lambda a, b: a not in b,
    "rin": lambda a, b: a is not None and b in a,
    "rnin": lambda a, b: a is not None and b not in a,
    "^": lambda a, b: isinstance(a, str) and a.startswith(b),
    "!^": lambda a, b: isinstance(a, str) and not a.startswith(b),
    "$": lambda a, b: isinstance(a, str) and a.endswith(b),
    "!$": lambda a, b: isinstance(a, str) and not a.endswith(b),
}


class MatchNotFound(Exception):
    """`get: true` matched nothing (middlewared raises the same name)."""


def _field(item: dict[str, Any], name: str) -> Any:
    value: Any = item
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def _matches(item: dict[str, Any], flt: Any) -> bool:
    if isinstance(flt, list) and len(flt) == 2 and flt[0] == "OR":
        return any(_matches(item, sub) if _is_filter(sub) else all(_matches(item, f) for f in sub)
                   for sub in flt[1])
    name, op, value = flt
    actual = _field(item, name)
    if op.startswith("C") and op[1:] in _OPS:
        return _OPS[op[1:]](_fold(actual), _fold(value))
    return _OPS[op](actual, value)


def _is_filter(flt: Any) -> bool:
    return isinstance(flt, list) and len(flt) == 3 and isinstance(flt[0], str) and flt[0] != "OR"


def _check_filters(filters: Any) -> None:
    if not isinstance(filters, list):
        raise ValidationErrors.single("filters", "Input should be a valid list")
    for flt in filters:
        if isinstance(flt, list) and len(flt) == 2 and flt[0] == "OR" and isinstance(flt[1], list):
            continue
        if not _is_filter(flt) or flt[1].lstrip("C") not in _OPS:
            raise ValidationErrors.single("filters", f"Invalid filter {flt!r}")


def _order(items: list[dict[str, Any]], order_by: Iterable[str]) -> list[dict[str, Any]]:
    for key in reversed(list(order_by)):
        desc = key.startswith("-")
        name = key.lstrip("-")
        items.sort(key=lambda i: (_field(i, name) is None, _field(i, name)), reverse=desc)
    return items


def filter_list(items: Iterable[dict[str, Any]], filters: Any = None, options: Any = None) -> Any:
    """Apply filters and query options the way the real `*.query` methods do."""
    filters, options = filters or [], options or {}
    _check_filters(filters)
    if not isinstance(options, dict):
        raise ValidationErrors.single("options", "Input should be a valid dictionary")
    found = [i for i in items if all(_matches(i, f) for f in filters)]
    found = _order(found, options.get("order_by", []))
    offset, limit = options.get("offset", 0), options.get("limit", 0)
    found = found[offset:offset + limit] if limit else found[offset:]
    if options.get("select"):
        found = [{k: _field(i, k) for k in options["select"]} for i in found]
    if options.get("count"):
        return len(found)
    if options.get("get"):
        if not found:
            raise MatchNotFound()
        return found[0]
    return found
