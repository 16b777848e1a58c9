"""`subscribe --hosts` direct and through the agent, and a client hang-up in the agent (docs/agent.md).

The simulator delivers an event to every connection subscribed to its
collection (collection_update), and refuses a subscription as middlewared's
src/middlewared/middlewared/main.py does (core.subscribe, then the event source);
logins are counted as src/middlewared/middlewared/plugins/auth.py accepts them.
"""
from __future__ import annotations

import dataclasses
import errno
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
import orjson
import pytest
from gevent import subprocess

from fleetclt.sim.failures import CallError
from tests.agent.helpers import Cli, agent_running, sims_running
from tests.helpers import wait_until

EVENT = "custom.event"
TIMEOUT = 60


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with sims_running(6, "127.31.0.1", tmp_path_factory.mktemp("subscribe-inv")) as fleet:
        yield fleet


@pytest.fixture
def cli(sim, tmp_path):
    """The CLI, with an agent running for its inventory and state dir."""
    cli = Cli(sim.inventory_path, tmp_path / "state")
    with agent_running(cli):
        yield cli


@contextmanager
def broken(sim) -> Iterator[None]:
    """sim003 offline, sim004 refuses the password."""
    config = sim["sim004"].config
    sim["sim003"].go_offline()
    sim["sim004"].config = dataclasses.replace(config, users={"admin": "changed"})
    try:
        yield
    finally:
        sim["sim003"].go_online()
        sim["sim004"].config = config


def like_a_foreground_job() -> None:
    """SIGINT as a terminal's foreground command has it (a background job's children ignore it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def subscriber(cli: Cli, agent: str, *args: str):
    """A `subscribe --hosts` process, returned once every host was tried (it says so at --debug)."""
    argv = [sys.executable, "-m", "fleetclt.cli", "-i", str(cli.inventory), "--debug", "subscribe", "--hosts", "all",
            *args, EVENT]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True, env={**cli.env, "FLEETCLT_AGENT": agent},
                               preexec_fn=like_a_foreground_job)
    with gevent.Timeout(TIMEOUT):
        while f"subscribed to {EVENT} on" not in (line := process.stderr.readline()):
            assert line, process.stderr.read()
    return process


def publish_one_each(sim) -> None:
    for number, host in enumerate(sim.hosts, 1):
        host.publish(EVENT, "changed", number, {"n": number, "when": {"$date": 1700000000000}})


_ELAPSED = re.compile(r'"elapsed":[0-9.]+')


def stream(sim, cli: Cli, agent: str) -> tuple[int, list[str], str]:
    process = subscriber(cli, agent, "-n", "4")
    try:
        publish_one_each(sim)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    return process.returncode, sorted(_ELAPSED.sub('"elapsed":0', line) for line in out.splitlines()), err


def test_the_same_lines_direct_and_through_the_agent_and_failing_hosts_reported_each(sim, cli):
    with broken(sim):
        direct = stream(sim, cli, "off")
        relayed = stream(sim, cli, "require")
    assert relayed[:2] == direct[:2]
    code, lines, _ = relayed
    rows = [orjson.loads(line) for line in lines]
    events = [row for row in rows if "msg" in row]
    assert code == 2, "some hosts could not subscribe"
    assert {row["host"]: row["status"] for row in rows if "status" in row} == {"sim003": "unreachable",
                                                                               "sim004": "auth_failed"}
    assert sorted(row["host"] for row in events) == ["sim001", "sim002", "sim005", "sim006"]
    assert events[0] == {"host": "sim001", "msg": "changed", "collection": EVENT, "id": 1,
                         "fields": {"n": 1, "when": events[0]["fields"]["when"]}}
    assert list(events[0]) == ["host", "msg", "collection", "id", "fields"], "the host first, as call's rows"
    assert cli.status()["requests"] >= 1


def test_through_the_agent_events_stream_live_until_ctrl_c(sim, cli):
    process = subscriber(cli, "require")
    try:
        sim["sim002"].publish(EVENT, "added", 1, {"n": 1})
        first = orjson.loads(process.stdout.readline())
        sim["sim005"].publish(EVENT, "added", 2, {"n": 2})
        second = orjson.loads(process.stdout.readline())
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert (first["host"], first["id"], second["host"], second["id"]) == ("sim002", 1, "sim005", 2)
    assert process.returncode == 130 and out == "" and "Traceback" not in err
    wait_until(lambda: cli.status()["clients"] == 0, timeout=TIMEOUT)
    again = subscriber(cli, "require", "-n", "1")  # subscribed afresh: the first one was taken back
    try:
        sim["sim006"].publish(EVENT, "removed", 3)
        out, _ = again.communicate(timeout=TIMEOUT)
    finally:
        again.kill()
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == [3] and again.returncode == 0
    assert all(list(conn.subscriptions.values()).count(EVENT) <= 1 for host in sim.hosts for conn in host.connections)


def test_a_refused_event_fails_every_host_with_exit_2(sim, cli):
    for mode in ("off", "require"):
        run = cli("subscribe", "--hosts", "sim00[12]", 'filesystem.file_tail_follow:{"tail_lines": 2}', "-t", "30",
                  agent=mode)
        rows = [orjson.loads(line) for line in run.out.splitlines()]
        assert run.code == 2 and sorted(row["host"] for row in rows) == ["sim001", "sim002"], run.err
        assert {row["status"] for row in rows} == {"failed"}


def test_one_host_options_are_refused_in_fleet_mode(cli):
    run = cli("subscribe", "--hosts", "all", "--insecure", EVENT)
    assert run.code == 1 and "--insecure does not apply" in run.err
    run = cli("subscribe", "--uri", "ws://127.0.0.1:1", "--forks", "3", EVENT)
    assert run.code == 1 and "--forks applies to fleet mode" in run.err


def test_a_client_that_hangs_up_stops_the_hosts_its_run_has_not_started(sim, cli):
    """Two hosts at a time (--forks 2), each stalled in core.ping; the client is killed: the other four
    never get their core.ping, the two started ones finish."""
    assert cli("call", "--hosts", "all", "-o", "json", "core.ping", agent="require").code == 0  # sessions up
    pings = lambda: sum(host.counters.calls_by_method["core.ping"] for host in sim.hosts)  # noqa: E731
    versions = lambda: sum(host.counters.calls_by_method["system.version_short"] for host in sim.hosts)  # noqa
    for host in sim.hosts:
        host.set_stall(True, frozenset({"core.ping"}))
    try:
        before, answered = pings(), versions()
        process = cli.popen("ping", "--hosts", "all", "--forks", "2", "-o", "jsonl", agent="require")
        wait_until(lambda: pings() == before + 2, timeout=TIMEOUT)
        process.kill()
        process.communicate(timeout=TIMEOUT)
        wait_until(lambda: cli.status()["clients"] == 0, timeout=TIMEOUT)
    finally:
        for host in sim.hosts:
            host.set_stall(False)
    wait_until(lambda: versions() >= answered + 2, timeout=TIMEOUT)  # the two started hosts went on
    assert cli("call", "--hosts", "all", "-o", "json", "system.version", agent="require").code == 0
    assert pings() == before + 2, "no host was started after the client hung up"


TAIL = 'filesystem.file_tail_follow:{"path": "/var/log/middlewared.log", "tail_lines": 1}'


@pytest.mark.parametrize("mode", ["off", "require"])
def test_a_source_that_fails_on_one_host_gives_its_row_and_the_others_stream_on(sim, cli, mode):
    """Modelled on middlewared's common/event_source/manager.py: a source whose run fails sends
    notify_unsubscribed with the error to every subscriber; one that finishes sends it with none."""
    process = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "-i", str(cli.inventory), "subscribe",
                                "--hosts", "sim00[12]", TAIL], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**cli.env, "FLEETCLT_AGENT": mode})
    try:
        ready = sorted(orjson.loads(process.stdout.readline())["host"] for _ in range(2))  # each source's tail
        sim["sim001"].sources.end(TAIL, CallError("source failed", errno.EIO))
        failed = orjson.loads(process.stdout.readline())
        sim["sim002"].sources.append("/var/log/middlewared.log", "later\n")
        later = orjson.loads(process.stdout.readline())
        sim["sim002"].sources.end(TAIL)  # finished cleanly: that host just stops
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert ready == ["sim001", "sim002"]
    assert (failed["host"], failed["status"], failed["error"]["errname"]) == ("sim001", "failed", "EIO")
    assert (later["host"], later["fields"]) == ("sim002", {"data": "later\n"})
    assert process.returncode == 2 and out == "" and err == "", "no host left, one failed"


def on_server(host, name: str) -> int:
    """The subscriptions to `name` the host holds over all its connections."""
    instance = host.sources._instances.get(name)
    return len(instance.subscribers) if instance else 0


def tail_follower(cli: Cli) -> subprocess.Popen:
    """`subscribe` to TAIL on two hosts through the agent, returned once both were tried."""
    process = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "-i", str(cli.inventory), "--debug",
                                "subscribe", "--hosts", "sim00[12]", TAIL], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                               env={**cli.env, "FLEETCLT_AGENT": "require"}, preexec_fn=like_a_foreground_job)
    with gevent.Timeout(TIMEOUT):
        while "subscribed to" not in (line := process.stderr.readline()):
            assert line, process.stderr.read()
    return process


def test_every_client_of_a_file_tail_gets_its_lines_as_direct_and_leaves_no_subscription(sim, cli):
    """common/event_source/manager.py: one instance per source and argument sends its tail as it starts;
    the last subscriber leaving (core.unsubscribe) cancels it, so the next one starts afresh."""
    runs = [cli("subscribe", "--hosts", "sim00[12]", "-n", "2", TAIL, agent=mode)
            for mode in ("off", "require", "require")]
    direct, first, second = (sorted(_ELAPSED.sub('"elapsed":0', line) for line in run.out.splitlines())
                             for run in runs)
    assert [run.code for run in runs] == [0, 0, 0] and len(direct) == 2
    assert first == direct and second == direct, "the second client gets the tail lines too"
    assert sorted(orjson.loads(line)["host"] for line in direct) == ["sim001", "sim002"]
    wait_until(lambda: cli.status()["clients"] == 0, timeout=TIMEOUT)
    wait_until(lambda: on_server(sim["sim001"], TAIL) + on_server(sim["sim002"], TAIL) == 0, timeout=TIMEOUT)


def test_two_clients_listening_at_once_share_it_and_after_both_hang_up_none_is_left(sim, cli):
    """The agent's session holds one subscription however many clients listen (middlewared sends
    a connection each source event once per subscription); the last hang-up ends it."""
    one = tail_follower(cli)
    try:
        assert sorted(orjson.loads(one.stdout.readline())["host"] for _ in range(2)) == ["sim001", "sim002"]
        two = tail_follower(cli)
        try:
            assert [on_server(sim[name], TAIL) for name in ("sim001", "sim002")] == [1, 1]
            sim["sim002"].sources.append("/var/log/middlewared.log", "both\n")
            for process in (one, two):
                assert orjson.loads(process.stdout.readline())["fields"] == {"data": "both\n"}
            one.send_signal(signal.SIGINT)
            assert one.wait(timeout=TIMEOUT) == 130
            wait_until(lambda: cli.status()["clients"] == 1, timeout=TIMEOUT)
            sim["sim001"].sources.append("/var/log/middlewared.log", "still\n")
            assert orjson.loads(two.stdout.readline())["fields"] == {"data": "still\n"}, "the other listens on"
            two.send_signal(signal.SIGINT)
            assert two.wait(timeout=TIMEOUT) == 130
        finally:
            two.kill()
    finally:
        one.kill()
    wait_until(lambda: cli.status()["clients"] == 0, timeout=TIMEOUT)
    wait_until(lambda: on_server(sim["sim001"], TAIL) + on_server(sim["sim002"], TAIL) == 0, timeout=TIMEOUT)
