"""Method registry: names, signatures, auth and job flags, argument checks.

A name may have one definition per range of versions (`since`, `until`):
`update.update` is the update job up to 25.04 and the update configuration
from 25.10. `lookup` finds the one a host of a given version has.

Argument checking reproduces the -32602 shapes of middlewared's pydantic
models: `[name, "Field required", 22]`, `[name, "Input should be a valid
string", 22]`, `["", "Too many arguments (expected N, found M)", 22]`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .failures import ValidationErrors

REQUIRED: Any = object()

_TYPE_WORDS = {str: "string", int: "integer", bool: "boolean", dict: "dictionary",
               list: "list", float: "number"}


@dataclass(frozen=True)
class Param:
    """One positional argument: its name, accepted types and default."""

    name: str
    types: tuple[type, ...] = (object,)
    default: Any = REQUIRED

    def check(self, value: Any) -> str | None:
        """The pydantic-style message for a wrong type, or None."""
        if object in self.types or (value is None and type(None) in self.types):
            return None
        if isinstance(value, bool) and bool not in self.types:
            return self._message()
        if isinstance(value, self.types):
            return None
        if float in self.types and isinstance(value, int):
            return None
        return self._message()

    def _message(self) -> str:
        words = [_TYPE_WORDS[t] for t in self.types if t in _TYPE_WORDS]
        return "Input should be a valid " + " or ".join(words or ["value"])


@dataclass(frozen=True)
class Method:
    """A callable API method and how the server gates it."""

    name: str
    func: Callable[..., Any]
    params: tuple[Param, ...] = ()
    auth_required: bool = True
    rate_limit: bool = True
    job: bool = False
    lock: Callable[..., str | None] | None = None
    lock_queue_size: int | None = 5          # @job's default (service/decorators.py); None: no bound
    transient: bool = False
    description: Callable[..., str | None] | None = None
    redact_args: Callable[[list[Any]], list[Any]] | None = None  # arguments as a job shows them
    secret_result: bool = False                                  # a job result core.get_jobs redacts
    extra: dict[str, Any] = field(default_factory=dict)
    since: tuple[int, ...] = ()              # the first version that has it
    until: tuple[int, ...] | None = None     # the first version that no longer has it

    def exists_in(self, version: tuple[int, ...]) -> bool:
        return self.since <= version and (self.until is None or version < self.until)

    def bind(self, args: list[Any]) -> list[Any]:
        """Check positional args against the signature; fill in defaults."""
        if len(args) > len(self.params):
            raise ValidationErrors.single(
                "", f"Too many arguments (expected {len(self.params)}, found {len(args)})")
        errors: list[tuple[str | None, str, int]] = []
        bound: list[Any] = []
        for index, param in enumerate(self.params):
            value = args[index] if index < len(args) else param.default
            if value is REQUIRED:
                errors.append((param.name, "Field required", 22))
            elif index < len(args) and (problem := param.check(value)):
                errors.append((param.name, problem, 22))
            bound.append(_copy_default(value))
        if errors:
            raise ValidationErrors(errors)
        return bound


def _copy_default(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


REGISTRY: dict[str, list[Method]] = {}  # every definition of each name


def lookup(name: str, version: tuple[int, ...]) -> Method | None:
    """The definition of `name` a host of `version` has; None if it has none."""
    return next((method for method in REGISTRY.get(name, ()) if method.exists_in(version)), None)


def api(name: str, *params: Param, **flags: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a method; flags are Method fields (auth_required, job, lock, since, until, ...)."""
    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.setdefault(name, []).append(Method(name, func, tuple(params), **flags))
        return func
    return register
