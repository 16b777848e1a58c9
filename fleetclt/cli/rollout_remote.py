"""A rollout the agent drives, seen from the CLI: a mirror of the run kept from the agent's events.

The agent sends the run as it stands, then each engine event (agent/rollouts.py).
The mirror applies them to its copy of the host records and hands the same
events to the same progress views as a direct run's, so the display and the
report read alike with and without the agent (docs/agent.md).
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from ..agent import wire
from ..errors import ConfigError
from ..rollout.engine import RolloutResult
from ..rollout.journal import HostRecord
from ..rollout.plan import RolloutPlan
from .agent_client import Connection, NoAgent
from .rollout_view import LogView


class Mirror:
    """The run as the agent last said: what the views read (rollout_view.RolloutState)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.run_id: str = info["run_id"]
        self.journal: str = info["journal"]
        self.pid: int = info["pid"]
        self.plan = RolloutPlan(info["method"], stages=tuple(tuple(stage) for stage in info["stages"]),
                                stall_after=info["stall_after"])
        self.records = {fields["host"]: HostRecord(**fields) for fields in info["records"]}
        self.stage_index: int = info["stage_index"]
        self.job_progress: dict[str, dict[str, Any]] = dict(info["job_progress"])

    def apply(self, message: Mapping[str, Any], view: LogView) -> RolloutResult | None:
        """One event: into the mirror, then to the view; the run's result once it finished."""
        name = message.get("event")
        if name == "stage_started":
            self.stage_index = message["index"]
            view.stage_started(self, self.stage_index)
        elif name == "host_progress":
            progress = self.job_progress[message["host"]] = dict(message["progress"])
            view.host_progress(self, self.records[message["host"]], progress)
        elif name == "halted":
            view.halted(self, message["reason"])
        elif name == "finished":
            self.records = {fields["host"]: HostRecord(**fields) for fields in message["records"]}
            result = RolloutResult(self.run_id, self.plan, self.records, message["stop_reason"])
            view.finished(self, result)
            return result
        elif name in ("host_started", "host_finished", "host_unhealthy", "host_detached"):
            record = self.records[message["record"]["host"]] = HostRecord(**message["record"])
            getattr(view, name)(self, record)
        return None


class RemoteRollout:
    """A run in the agent, followed over one connection until it ends (or the client lets go)."""

    def __init__(self, connection: Connection, info: Mapping[str, Any]) -> None:
        self._connection = connection
        self.mirror = Mirror(info)
        self.run_id, self.journal = self.mirror.run_id, self.mirror.journal
        self.stall_after = self.mirror.plan.stall_after
        self.unverified: list[str] = list(info.get("unverified", ()))
        self.plain: list[str] = list(info.get("plain", ()))
        self.halted: str | None = info.get("halted")   # why no new job starts, if it was said before

    def run(self, view: LogView) -> RolloutResult:
        """The events until the run's end, through `view`; the run's result."""
        try:
            while True:
                result = self.mirror.apply(wire.expect(self._connection.next(), wire.EVENT), view)
                if result is not None:
                    return result
        except (NoAgent, wire.WireError, KeyError, TypeError) as exc:
            raise ConfigError(f"the agent went away in the middle of rollout {self.run_id} ({exc}): its started "
                              f"jobs go on on their hosts, and the journal has them; resume with: fleetclt "
                              f"rollout --resume {self.run_id}") from None
        finally:
            self.close()

    def interrupt(self) -> None:
        """Ctrl-C: the agent stops the run as the CLI would (no new job; detached from running ones)."""
        with suppress(OSError):  # the agent is gone: run() says so
            self._connection.tell({"op": wire.INTERRUPT})

    def close(self) -> None:
        self._connection.close()
