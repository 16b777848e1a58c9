"""The same fleet-mode commands with and without the agent: the same stdout, stderr and exit code.

Each case (a fan-out, or a rollout) runs directly (FLEETCLT_AGENT=off), then through one agent
(FLEETCLT_AGENT=require, so a case that silently ran directly fails), against
the same 60 simulated hosts; times are the only thing allowed to differ.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import pytest

from tests.agent.helpers import Cli, sim_fleet, stop_quietly

_TIMES = [(re.compile(r'"(elapsed|rtt_ms)": ?[0-9.]+'), r'"\1": T'),     # json, jsonl
          (re.compile(r"(elapsed|rtt_ms): [0-9.]+"), r"\1: T"),          # yaml
          (re.compile(r" +\d+ms\b"), " Tms"), (re.compile(r"STATUS +TIME"), "STATUS TIME"),  # table
          (re.compile(r"hosts, [0-9.]+ s\)"), "hosts, T s)")]


_BUDGET_WAIT = re.compile(r"^waiting \d+ s for \S+ login budget\n", re.MULTILINE)


def untimed(text: str) -> str:
    for pattern, replacement in _TIMES:
        text = pattern.sub(replacement, text)
    return text


def without_waits(stderr: str) -> str:
    """Direct runs log in every time and may wait on the login budget; the agent's sessions do not."""
    return _BUDGET_WAIT.sub("", stderr)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    fleet = sim_fleet(60, "127.26.0.1", tmp_path_factory.mktemp("parity-inv"))
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def cli(sim, tmp_path_factory):
    cli = Cli(sim.inventory_path, tmp_path_factory.mktemp("parity") / "state")
    run = cli("agent", "start", "--idle", "10m")
    assert run.code == 0, run.err
    yield cli
    stop_quietly(cli, int(run.out.split()[1]))


@contextmanager
def broken(sim) -> Iterator[None]:
    """sim003 offline; sim004 refuses the password, and its open connections drop so the agent notices."""
    config = sim["sim004"].config
    sim["sim003"].go_offline()
    sim["sim004"].config = dataclasses.replace(config, users={"admin": "changed"})
    sim["sim004"].drop_connections()
    try:
        yield
    finally:
        sim["sim003"].go_online()
        sim["sim004"].config = config


@contextmanager
def stalled(sim) -> Iterator[None]:
    sim["sim060"].set_stall(True)
    try:
        yield
    finally:
        sim["sim060"].set_stall(False)


CASES: dict[str, tuple[list[tuple[str, ...]], Callable[..., object]]] = {
    "json-all": ([("call", "--hosts", "all", "-o", "json", "system.version")], nullcontext),
    "validation-error": ([("call", "--hosts", "sim001", "-o", "json", "user.get_instance", "99")], nullcontext),
    "table": ([("call", "--hosts", "sim001,sim002", "-o", "table", "system.version")], nullcontext),
    "table-error": ([("call", "--hosts", "sim001", "-o", "table", "user.get_instance", "99")], nullcontext),
    "yaml": ([("call", "--hosts", "sim001", "-o", "yaml", "system.version")], nullcontext),
    "jsonl-jobs": ([("call", "--hosts", "rack02", "-o", "jsonl", "-j", "service.control", "RESTART", "nfs")],
                   nullcontext),
    "ping": ([("ping", "--hosts", "canary", "-o", "json")], nullcontext),
    "forks": ([("call", "--hosts", "rack01", "--forks", "3", "--max-connecting", "2", "-o", "json", "core.ping")],
              nullcontext),
    "unknown-host": ([("call", "--hosts", "nosuch", "core.ping")], nullcontext),
    "no-match": ([("call", "--hosts", "~nothing.*", "core.ping")], nullcontext),
    "empty-pattern": ([("ping", "--hosts", "", "-o", "json")], nullcontext),
    "bad-output": ([("call", "--hosts", "all", "--output", "xml", "core.ping")], nullcontext),
    "hosts-json": ([("hosts", "--hosts", "rack03,&~sim04[0-9]", "-o", "json")], nullcontext),
    "hosts-table": ([("hosts", "-o", "table")], nullcontext),
    "hosts-jsonl": ([("hosts", "--hosts", "canary", "-o", "jsonl")], nullcontext),
    "failures-then-failed": ([("call", "--hosts", "rack01", "-o", "json", "core.ping"),
                              ("hosts", "--hosts", "@failed", "-o", "json")], broken),
    "deadline": ([("call", "--hosts", "rack03", "--deadline", "2", "-o", "json", "core.ping")], stalled),
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_output_and_exit_code_with_and_without_the_agent(sim, cli, case):
    commands, condition = CASES[case]
    with condition(sim):
        direct = [cli(*argv, agent="off") for argv in commands]
        relayed = [cli(*argv, agent="require") for argv in commands]
    for one, other in zip(direct, relayed, strict=True):
        assert other.code == one.code
        if case == "jsonl-jobs":  # completion order is the hosts' own
            assert sorted(untimed(other.out).splitlines()) == sorted(untimed(one.out).splitlines())
        else:
            assert untimed(other.out) == untimed(one.out)
        assert other.err == without_waits(one.err)
    assert direct[0].code in (0, 1, 2) and (direct[0].out or direct[0].err)


@contextmanager
def failing_job(sim) -> Iterator[None]:
    sim["sim022"].faults.job_failure = "error"
    try:
        yield
    finally:
        sim["sim022"].faults.job_failure = None


# Hosts no other case breaks, a job that may run again on a host (after an update a reboot is due),
# and one host per stage, so the progress lines come in one order however fast each host is.
RESTART = ("service.control", "RESTART", "nfs")
ROLLOUT_CASES: dict[str, tuple[tuple[str, ...], Callable[..., object]]] = {
    "json": (("--hosts", "sim02[1-3]", "--batch", "1", "-o", "json", *RESTART), nullcontext),
    "halted-table": (("--hosts", "sim02[1-4]", "--batch", "1", "-o", "table", *RESTART), failing_job),
    "health-yaml": (("--hosts", "sim02[5-7]", "--batch", "1", "--health", "system.ready", "-o", "yaml", *RESTART),
                    nullcontext),
    "budget-jsonl": (("--hosts", "sim02[1-4]", "--batch", "1", "--max-fail", "1", "-o", "jsonl", *RESTART),
                     failing_job),
    "conflict": (("--hosts", "all", "--batch", "1,50%", "--window", "3", *RESTART), nullcontext),
    "no-match": (("--hosts", "~nothing.*", *RESTART), nullcontext),
    "empty-pattern": (("--hosts", "", *RESTART), nullcontext),
    "unknown-run": (("--resume", "20000101-000000-dead",), nullcontext),
}
_RUN = [(re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}"), "RUN"), (re.compile(r"\bjob \d+"), "job N"),
        (re.compile(r'"job_id": ?\d+|job_id: \d+'), "job_id: N"),
        (re.compile(r'"?(started|finished|elapsed)"?: ?[0-9.e+]+'), r"\1: T")]


def unrun(text: str) -> str:
    """Run ids, job ids (the hosts count on from the direct run) and times differ; nothing else may."""
    for pattern, replacement in _RUN:
        text = pattern.sub(replacement, text)
    return text


@pytest.mark.parametrize("case", list(ROLLOUT_CASES))
def test_a_rollout_reads_the_same_with_and_without_the_agent(sim, cli, case):
    argv, condition = ROLLOUT_CASES[case]
    with condition(sim):
        direct = cli("rollout", *argv, agent="off")
        relayed = cli("rollout", *argv, agent="require")
    assert relayed.code == direct.code
    assert unrun(relayed.out) == unrun(direct.out)
    assert unrun(relayed.err) == unrun(without_waits(direct.err))
    assert direct.code in (0, 1, 2) and direct.err
