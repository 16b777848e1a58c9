"""What a rollout will do: stages from a batch spec, the failure budget, the options.

Stages follow Ansible's `serial`: `batch="1,10%,100%"` (or `[1, "10%", "100%"]`,
CLI `--batch 1,10%,100%`) makes a first stage of one host, then 10 % of all
hosts (rounded down, at least 1), then the rest; the last entry repeats until
the hosts run out. The failure budget, unlike Ansible's, spans the whole
rollout: `max_fail=N` allows N failed hosts, `max_fail="P%"` allows failures up
to P % of the hosts started so far; a failure beyond that halts the rollout (no
new job starts).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from ..errors import ConfigError

ONE_STAGE = "100%"
BatchSpec = str | int | Sequence[int | str]   # "1,10%,100%", 5, or [1, "10%", "100%"]
FailSpec = int | str                          # 2 or "5%"


@dataclass(frozen=True)
class BatchEntry:
    """One entry of a batch spec: a host count or a share of all hosts."""

    value: float
    percent: bool

    def size(self, total: int) -> int:
        if self.percent:
            return max(1, math.floor(total * self.value / 100))
        return max(1, int(self.value))

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else str(int(self.value))


def parse_batch(spec: BatchSpec) -> tuple[BatchEntry, ...]:
    """'1,10%,100%', 5 or [1, '10%'] -> entries; a ConfigError that names no option (callers add theirs)."""
    if isinstance(spec, str):
        items: list[Any] = spec.split(",")
    elif isinstance(spec, int) and not isinstance(spec, bool):
        items = [spec]
    elif isinstance(spec, Sequence):
        items = list(spec)
    else:
        raise ConfigError(f"expected a string like '1,10%', a host count or a list of them, got {spec!r}")
    if not items:
        raise ConfigError("needs at least one entry")
    return tuple(_batch_entry(item) for item in items)


def _batch_entry(item: Any) -> BatchEntry:
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise ConfigError(f"{item!r} is neither a host count nor a percentage string like '10%'")
    raw = str(item).strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1]) if percent else int(raw)
    except ValueError:
        raise ConfigError(f"{raw!r} is neither a host count nor a percentage") from None
    if not math.isfinite(value) or value <= 0 or (percent and value > 100):
        raise ConfigError(f"{raw!r} must be a positive count or a percentage up to 100%")
    return BatchEntry(value, percent)


def plan_stages(hosts: list[str], batch: tuple[BatchEntry, ...]) -> list[list[str]]:
    """Split hosts, in order, into stages; the last batch entry repeats."""
    stages, start, index = [], 0, 0
    while start < len(hosts):
        size = batch[min(index, len(batch) - 1)].size(len(hosts))
        stages.append(hosts[start:start + size])
        start, index = start + size, index + 1
    return stages


@dataclass(frozen=True)
class Budget:
    """How many failed hosts a rollout tolerates before it halts."""

    limit: float = 0
    percent: bool = False

    @classmethod
    def parse(cls, spec: FailSpec) -> Budget:
        """2, '2' or '5%'; a ConfigError that names no option (callers add theirs)."""
        if isinstance(spec, bool) or not isinstance(spec, (int, str)):
            raise ConfigError(f"{spec!r} is neither a host count nor a percentage string like '5%'")
        text = str(spec).strip()
        percent = text.endswith("%")
        try:
            limit = float(text.rstrip("%"))
        except ValueError:
            raise ConfigError(f"{spec!r} is neither a count nor a percentage") from None
        if not math.isfinite(limit) or limit < 0 or (percent and limit > 100):
            raise ConfigError(f"{spec!r} is out of range (a count from 0, or 0% to 100%)")
        return cls(limit, percent)

    def exceeded(self, failed: int, started: int) -> bool:
        """True once failures are beyond the budget (a share counts hosts started so far)."""
        if self.percent:
            return started > 0 and failed * 100 > self.limit * started
        return failed > self.limit

    def __str__(self) -> str:
        return f"{self.limit:g}%" if self.percent else f"{self.limit:g}"


@dataclass(frozen=True)
class RolloutPlan:
    """Everything that decides a rollout's behaviour; stored in its journal for --resume.

    Options are normalized on construction, so a bad one fails here (a ConfigError
    that names it) and the journal always holds the same plain forms: `batch` and
    `max_fail` as strings ("1,10%", "5%"), `health` as a (method, *params) tuple.
    """

    method: str
    params: tuple[Any, ...] = ()
    batch: BatchSpec = ONE_STAGE
    max_fail: FailSpec = "0"
    window: int | None = None
    pause: float = 0.0
    health: str | Sequence[Any] = ()       # a method name, or (method, *params); empty for none
    abort_on_halt: bool = False
    stall_after: float = 300.0
    stages: tuple[tuple[str, ...], ...] = field(default=())
    upload: tuple[str, ...] = ()           # files sent into each host's job by POST /_upload (absolute paths)

    def __post_init__(self) -> None:
        if isinstance(self.upload, str) or not all(isinstance(path, str) and path for path in self.upload):
            raise ConfigError(f"upload: {self.upload!r} is not a sequence of file paths")
        object.__setattr__(self, "upload", tuple(os.path.abspath(path) for path in self.upload))
        batch = named_option("batch", lambda: ",".join(str(entry) for entry in parse_batch(self.batch)))
        max_fail = named_option("max_fail", lambda: str(Budget.parse(self.max_fail)))
        object.__setattr__(self, "batch", batch)
        object.__setattr__(self, "max_fail", max_fail)
        object.__setattr__(self, "health", named_option("health", lambda: _health(self.health)))
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int)
                                        or self.window < 1):
            raise ConfigError(f"window: {self.window!r} is not a host count of at least 1")
        if self.window is not None and batch != ONE_STAGE:
            raise ConfigError(f"window {self.window} and batch {batch!r} conflict: a window runs every host in "
                              "one stage; give one of them")

    @property
    def budget(self) -> Budget:
        return Budget.parse(self.max_fail)

    @property
    def health_call(self) -> tuple[Any, ...]:
        """`health` as normalized on construction: (method, *params), empty for none."""
        return cast(tuple[Any, ...], self.health)

    def with_stages(self, hosts: list[str]) -> RolloutPlan:
        """Fix the stage list now, so a resumed rollout keeps exactly the same stages."""
        stages = [hosts] if self.window else plan_stages(hosts, parse_batch(self.batch))
        return RolloutPlan(**{**self.__dict__, "stages": tuple(tuple(s) for s in stages)})

    def changed(self, unstarted: Collection[str], **options: Any) -> RolloutPlan:
        """This plan with options changed on resume (batch, window, max_fail, ...).

        A new batch or window restages only the hosts never started, in their
        order, after the stages of the hosts that were; percentages count those
        hosts. A window replaces the batch and a batch the window.
        """
        if "window" in options and "batch" not in options:
            options["batch"] = ONE_STAGE
        elif "batch" in options and "window" not in options:
            options["window"] = None
        changed = RolloutPlan(**{**self.__dict__, **options})
        if not {"batch", "window"} & options.keys():
            return changed
        started = [tuple(h for h in stage if h not in unstarted) for stage in self.stages]
        rest = [h for stage in self.stages for h in stage if h in unstarted]
        stages = [*(s for s in started if s), *(changed.with_stages(rest).stages if rest else ())]
        return RolloutPlan(**{**changed.__dict__, "stages": tuple(stages)})

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "params": list(self.params), "health": list(self.health),
                "stages": [list(s) for s in self.stages], "upload": list(self.upload)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutPlan:
        return cls(**{**data, "params": tuple(data["params"]), "health": tuple(data["health"]),
                      "stages": tuple(tuple(s) for s in data["stages"]), "upload": tuple(data.get("upload", ()))})


T = TypeVar("T")


def named_option(name: str, parse: Callable[[], T]) -> T:
    """Run a parser, prefixing its ConfigError with the option's name as the caller spells it
    (`batch` for Python, `--batch` on the command line)."""
    try:
        return parse()
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _health(health: str | Sequence[Any]) -> tuple[Any, ...]:
    """'system.ready' or ('method', *params) -> a tuple; a plain string is one method name, never iterated."""
    if isinstance(health, str):
        health = (health,) if health else ()
    elif not isinstance(health, Sequence):
        raise ConfigError(f"expected a method name or a (method, *params) sequence, got {health!r}")
    if health and not (isinstance(health[0], str) and health[0]):
        raise ConfigError(f"the first item must be a method name, got {health[0]!r}")
    return tuple(health)
