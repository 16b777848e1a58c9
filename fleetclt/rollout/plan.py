"""What a rollout will do: stages from a batch spec, the failure budget, the options.

Stages follow Ansible's `serial`: `--batch 1,10%,100%` makes a first stage of
one host, then 10 % of all hosts (rounded down, at least 1), then the rest; the
last entry repeats until the hosts run out. The failure budget, unlike
Ansible's, spans the whole rollout: `--max-fail N` allows N failed hosts,
`--max-fail P%` allows failures up to P % of the hosts started so far; a
failure beyond that halts the rollout (no new job starts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class BatchEntry:
    """One entry of a batch spec: a host count or a share of all hosts."""

    value: float
    percent: bool

    def size(self, total: int) -> int:
        if self.percent:
            return max(1, math.floor(total * self.value / 100))
        return max(1, int(self.value))


def parse_batch(spec: str) -> tuple[BatchEntry, ...]:
    """'1,10%,100%' -> entries; a clear ConfigError for anything else."""
    entries = []
    for raw in (part.strip() for part in str(spec).split(",")):
        percent = raw.endswith("%")
        number = raw[:-1] if percent else raw
        try:
            value = float(number) if percent else int(number)
        except ValueError:
            raise ConfigError(f"--batch: {raw!r} is neither a host count nor a percentage") from None
        if value <= 0 or (percent and value > 100):
            raise ConfigError(f"--batch: {raw!r} must be a positive count or a percentage up to 100%")
        entries.append(BatchEntry(value, percent))
    if not entries:
        raise ConfigError("--batch needs at least one entry")
    return tuple(entries)


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
    def parse(cls, text: str) -> Budget:
        percent = str(text).strip().endswith("%")
        number = str(text).strip().rstrip("%")
        try:
            limit = float(number)
        except ValueError:
            raise ConfigError(f"--max-fail: {text!r} is neither a count nor a percentage") from None
        if limit < 0 or (percent and limit > 100):
            raise ConfigError(f"--max-fail: {text!r} is out of range")
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
    """Everything that decides a rollout's behaviour; stored in its journal for --resume."""

    method: str
    params: tuple[Any, ...] = ()
    batch: str = "100%"
    max_fail: str = "0"
    window: int | None = None
    pause: float = 0.0
    health: tuple[Any, ...] = ()           # (method, *params), empty for none
    abort_on_halt: bool = False
    stall_after: float = 300.0
    stages: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def budget(self) -> Budget:
        return Budget.parse(self.max_fail)

    def with_stages(self, hosts: list[str]) -> RolloutPlan:
        """Fix the stage list now, so a resumed rollout keeps exactly the same stages."""
        stages = [hosts] if self.window else plan_stages(hosts, parse_batch(self.batch))
        return RolloutPlan(**{**self.__dict__, "stages": tuple(tuple(s) for s in stages)})

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "params": list(self.params), "health": list(self.health),
                "stages": [list(s) for s in self.stages]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutPlan:
        return cls(**{**data, "params": tuple(data["params"]), "health": tuple(data["health"]),
                      "stages": tuple(tuple(s) for s in data["stages"])})
