"""What `fleetclt rollout` does with its order, defined once: the CLI's direct path and the agent both run this.

The CLI reads the command line into a RolloutWork (wire.py); whoever drives the
run (the CLI process, or the agent with its own sessions) turns it into a
Rollout here, over the hosts it selected, and records the outcome for
`--hosts @failed` here. So a rollout refuses the same things, journals the same
lines and leaves the same @failed with and without the agent (docs/agent.md).
"""
from __future__ import annotations

from ..errors import ConfigError
from ..fleet.fleet import Fleet
from ..local.state import save_last_run
from ..rollout.engine import Rollout, RolloutResult
from ..rollout.journal import Journal
from ..rollout.observer import FAILED, HostState
from ..rollout.plan import RolloutPlan
from .wire import RolloutWork


def open_rollout(fleet: Fleet, work: RolloutWork, names: list[str] | None) -> Rollout:
    """A new rollout over `names`, or the journal's (`work.resume`) narrowed to `names` when given.

    The caller checked the state dir and selected the names; a resume takes the run's lock here.
    """
    if work.resume is None:
        if not work.method or names is None:
            raise ConfigError("rollout needs METHOD (or --resume RUN_ID)")
        plan = RolloutPlan(work.method, tuple(work.params or ()), upload=tuple(work.upload), **work.options)
        return Rollout.start(fleet, plan, names)
    journal, replay = Journal.open(work.resume)
    method = replay.plan["method"]
    if work.method and work.method != method:
        journal.close()
        raise ConfigError(f"rollout {journal.run_id} runs {method}, not {work.method}")
    return Rollout.resume(fleet, journal, replay, params=work.params, hosts=names, **work.options)


def remember(inventory_path: str, result: RolloutResult) -> None:
    """The rollout's failed hosts become what `--hosts @failed` selects next, as after `call`."""
    states = {name: record.state for name, record in result.hosts.items()}
    save_last_run(inventory_path, result.plan.method,
                  failed=[name for name, state in states.items() if state in FAILED],
                  ok=[name for name, state in states.items() if state is HostState.OK])
