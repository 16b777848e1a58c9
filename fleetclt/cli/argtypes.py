"""argparse types for counts and durations: `--forks 0` or `--deadline nan` is a usage error, not a hang.

Checked at parse time because, unchecked, a zero pool waits forever (gevent's
LoopExit traceback), a negative one raises ValueError, and a negative timeout
fails every host as unreachable.
"""
from __future__ import annotations

import math
from argparse import ArgumentTypeError
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def count(text: str) -> int:
    """A whole number of 1 or more (hosts at once, events)."""
    return _checked(text, int, "a whole number", lambda value: value >= 1, "1 or more")


def seconds(text: str) -> float:
    """A duration of more than zero seconds."""
    return _checked(text, float, "a number of seconds", lambda value: value > 0, "more than 0 seconds")


def seconds_or_zero(text: str) -> float:
    """A duration of zero seconds or more (a pause that may be skipped)."""
    return _checked(text, float, "a number of seconds", lambda value: value >= 0, "0 seconds or more")


def _checked(text: str, convert: Callable[[str], Number], kind: str, allowed: Callable[[Number], bool],
             rule: str) -> Number:
    try:
        value = convert(text)
    except ValueError:
        raise ArgumentTypeError(f"not {kind}: {text!r}") from None
    if not math.isfinite(value):
        raise ArgumentTypeError(f"not {kind}: {text!r}")
    if not allowed(value):
        raise ArgumentTypeError(f"must be {rule}, not {text}")
    return value


_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


def byte_rate(text: str) -> float:
    """Bytes per second above 0, with an optional K, M or G (powers of 1024): `--rate 50M`."""
    unit = text[-1:].upper() if text[-1:].upper() in _UNITS else ""
    number = text[:-1] if unit else text
    value = _checked(number, float, "a rate in bytes per second (e.g. 500K, 50M)", lambda value: value > 0,
                     "above 0")
    return value * _UNITS[unit]
