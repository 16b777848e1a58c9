"""TrueNAS "extended JSON": JSON plus tagged objects for dates, times and sets.

Shared by the client protocol and the simulator so both speak exactly the same
encoding.

Wire forms (both directions)::

    datetime     {"$date": <int ms since the epoch, UTC>}
    date         {"$type": "date", "$value": "YYYY-MM-DD"}
    time         {"$time": "HH:MM:SS[.ffffff]"}
    set          {"$set": [...]}
    IPv4/6 iface {"$ipv4_interface": "..."} / {"$ipv6_interface": "..."}

A tagged object is only decoded when it has exactly that shape; anything else
stays a plain dict. orjson does the JSON work because it is several times faster
than the standard library on the hot path (docs/performance.md §3).
"""
from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Callable
from typing import Any

import orjson

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class DecodeError(ValueError):
    """Text that is not JSON, or a tagged object whose value is malformed."""


def _default(value: Any) -> Any:
    """Encode what orjson cannot: sets, date/time and interface objects."""
    if isinstance(value, (set, frozenset)):
        return {"$set": list(value)}
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return {"$date": int((aware - _EPOCH).total_seconds() * 1000)}
    if isinstance(value, dt.date):
        return {"$type": "date", "$value": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, ipaddress.IPv4Interface):
        return {"$ipv4_interface": str(value)}
    if isinstance(value, ipaddress.IPv6Interface):
        return {"$ipv6_interface": str(value)}
    raise TypeError(f"cannot encode {type(value).__name__} as ejson")


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def plain(value: Any) -> Any:
    """orjson's `default` for writing decoded values as plain JSON (the CLI's output, the agent's
    wire): sets as lists, interfaces as strings; orjson writes dates as ISO 8601 itself."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any) -> str:
    """Serialize to ejson text."""
    return orjson.dumps(value, default=_default, option=_OPTIONS).decode()


def _date_from_ms(ms: Any) -> dt.datetime:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)):
        raise DecodeError(f"$date expects a number of milliseconds, got {ms!r}")
    try:
        return _cached_date(ms) if type(ms) is int else _EPOCH + dt.timedelta(milliseconds=ms)
    except (OverflowError, ValueError) as exc:
        raise DecodeError(f"$date out of range: {ms!r}") from exc


@functools.lru_cache(maxsize=4096)
def _cached_date(ms: int) -> dt.datetime:
    """Build times and boot times repeat in every reply of a host: datetimes are immutable, share them."""
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _iso(parse: Callable[[str], Any], name: str) -> Callable[[Any], Any]:
    def convert(text: Any) -> Any:
        try:
            return parse(text)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{name} expects an ISO string, got {text!r}") from exc
    return convert


def _set_from_list(items: Any) -> set[Any]:
    if not isinstance(items, list):
        raise DecodeError(f"$set expects a list, got {items!r}")
    try:
        return set(items)
    except TypeError as exc:
        raise DecodeError("$set holds an unhashable item") from exc


_ONE_KEY_TAGS: dict[str, Callable[[Any], Any]] = {
    "$date": _date_from_ms,
    "$time": _iso(dt.time.fromisoformat, "$time"),
    "$set": _set_from_list,
    "$ipv4_interface": _iso(ipaddress.IPv4Interface, "$ipv4_interface"),
    "$ipv6_interface": _iso(ipaddress.IPv6Interface, "$ipv6_interface"),
}
_parse_date = _iso(dt.date.fromisoformat, "$type date")


def _decode_dict(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        convert = _ONE_KEY_TAGS.get(key)
        if convert is not None:
            return convert(_revive(value) if key == "$set" else value)
    elif len(obj) == 2 and obj.get("$type") == "date" and "$value" in obj:
        return _parse_date(obj["$value"])
    for key, value in obj.items():  # in place: orjson's fresh objects are ours to change
        if type(value) in _CONTAINERS:
            obj[key] = _revive(value)
    return obj


def _revive(value: Any) -> Any:
    """Replace tagged objects inside a freshly decoded value; only containers are walked."""
    kind = type(value)
    if kind is dict:
        return _decode_dict(value)
    if kind is list:
        for index, item in enumerate(value):
            if type(item) in _CONTAINERS:
                value[index] = _revive(item)
    return value


_CONTAINERS = (dict, list)  # orjson decodes to exactly these types


def loads(text: str | bytes) -> Any:
    """Parse ejson text; tagged objects become Python values."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(str(exc)) from exc
    # Most messages carry no tag at all: skip the walk for them.
    has_tag = (b'"$' in text) if isinstance(text, bytes) else ('"$' in text)
    return _revive(value) if has_tag else value
