"""What the CLI says about the login budget: a wait is one line, an unusable state dir one warning.

Real `fleetclt` subprocesses against simulated hosts; the budget a run finds is
written the way another fleetclt process would have left it (the shared file).
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

import yaml
from gevent import subprocess

from fleetclt.cli.waits import NewWaitsOnly
from fleetclt.client.throttle import WAIT_LOGGER, FileStore
from fleetclt.sim import SimClock
from fleetclt.sim.fleet import SimFleet

PASSWORD = "budget-cli-pw"


def fleetclt(*args: str, state: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLEETCLT_")},
           "FLEETCLT_STATE_DIR": state, "FLEETCLT_PASSWORD": PASSWORD, "BUDGET_PW": PASSWORD}
    return subprocess.run([sys.executable, "-m", "fleetclt.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_a_wait_for_the_login_budget_prints_one_line(make_host, tmp_path):
    nas = make_host("nas01", users={"admin": PASSWORD})
    state = tmp_path / "state"
    key = f"{nas.address}:{nas.port}"
    budget = FileStore(state).path(key)
    budget.parent.mkdir(parents=True)
    # Three quarters of a token left: the next login is 1.5 s away. Stamped a minute ahead, which the
    # bucket reads as a clock that stepped back (no refill until then), so the wait does not
    # shrink however long the CLI takes to start on a loaded machine.
    budget.write_text(json.dumps({"key": key, "tokens": 0.75, "stamp": time.time() + 60, "blocked_until": 0}))
    run = fleetclt("--uri", nas.uri, "-U", "admin", "ping", state=str(state))
    assert (run.returncode, run.stdout) == (0, "pong\n"), run.stderr
    assert re.fullmatch(r"waiting 2 s for \S+'s login budget\n", run.stderr), run.stderr


def test_an_unusable_state_dir_warns_once_for_the_whole_fleet(tmp_path):
    sim = SimFleet.create(30, base_address="127.7.3.1", users={"admin": PASSWORD}, clock=SimClock(speed=100))
    with sim:
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(sim.inventory({"env": "BUDGET_PW"})))
        (tmp_path / "file").write_text("")
        run = fleetclt("-i", str(inventory), "call", "--hosts", "all", "core.ping", state=str(tmp_path / "file"))
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("\n") == 1 and "is unusable (Not a directory): login budgets" in run.stderr, run.stderr
    assert sum(host.counters.logins_ok for host in sim.hosts) == 30



def test_hosts_that_wait_together_get_one_line_and_a_longer_queue_another():
    """500 hosts that find the budget spent at once log 500 waits of 6 s: one line. A wait
    that reaches further (the next in a shared budget's queue) is shown as well."""
    now = [100.0]
    waits = NewWaitsOnly(clock=lambda: now[0])

    def shown(seconds: float) -> bool:
        record = logging.LogRecord(WAIT_LOGGER, logging.INFO, __file__, 1, "waiting", None, None)
        record.wait_seconds = seconds
        return waits.filter(record)

    assert [shown(6.0) for _ in range(500)].count(True) == 1
    now[0] += 3.0
    assert not shown(3.5), "ends with the wait already shown"
    assert shown(6.0), "ends 3 s after it: news"
