"""A wall clock for auth budgets that moves only when slept on: budget waits cost no real time."""
from __future__ import annotations


class FakeTime:
    """`clock` for a TokenBucket and `sleep` for an AuthThrottle; `slept` records every wait."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
