"""stdout that goes away: `| head -1` is quiet, a full disk or a closed stdout is one line and exit 1.

Real subprocesses and real pipes: a reader that closes its end after one line,
as head does, /dev/full, and a stdout closed before the start (`>&-`). The
hosts of the inventory are loopback addresses where nothing listens, so every
connect is refused at once and the run is quick.
"""
from __future__ import annotations

import os
import sys

import orjson
import pytest
from gevent import subprocess

HOSTS = 1500  # enough output to fill a pipe's 64 KiB buffer, so that writing blocks until the reader leaves


@pytest.fixture(scope="module")
def big_inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inv") / "inventory.yaml"
    lines = ["defaults: {username: admin, password: {env: UNUSED_PW}, connect_timeout: 2}", "hosts:"]
    lines += [f"  host{i:05d}-with-a-long-name: {{uri: 'ws://127.9.{i // 250}.{i % 250 + 1}:1/api/current'}}"
              for i in range(HOSTS)]  # one server each: no login budget shared by 1500 hosts
    path.write_text("\n".join(lines) + "\n")
    return path


def fleetclt(*args, **popen):
    env = {**os.environ, "UNUSED_PW": "pw"}
    return subprocess.Popen([sys.executable, "-m", "fleetclt.cli", *args], env=env, **popen)


def read_one_line_and_leave(*args):
    """What `fleetclt ... | head -1` does: the reader takes one line and closes the pipe."""
    process = fleetclt(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    code = process.wait(timeout=120)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    return code, first.decode(), stderr


@pytest.mark.parametrize("args, code", [
    (("hosts", "--hosts", "all", "-o", "table"), 0),
    (("hosts", "--hosts", "all", "-o", "json"), 0),
    (("call", "--hosts", "all", "-o", "json", "core.ping"), 2),
    (("call", "--hosts", "all", "-o", "jsonl", "core.ping"), 2),
    (("call", "--hosts", "all", "-o", "table", "core.ping"), 2),
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else None)
def test_a_reader_that_leaves_early_is_quiet_and_the_exit_code_is_the_runs(big_inventory, args, code):
    exit_code, first, stderr = read_one_line_and_leave("-i", str(big_inventory), *args)
    assert first, "the reader got its line"
    assert stderr == "", "no BrokenPipeError traceback, no message"
    assert exit_code == code, "the run's own outcome: every host was still tried and recorded"


def test_jsonl_streams_every_host_while_the_reader_reads(big_inventory):
    process = fleetclt("-i", str(big_inventory), "call", "--hosts", "all", "-o", "jsonl", "core.ping",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=120)
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert process.returncode == 2 and err == b""
    assert len(rows) == HOSTS and {row["status"] for row in rows} == {"unreachable"}


def test_a_full_disk_is_one_line_and_exit_1(big_inventory):
    with open("/dev/full", "w") as full:
        process = fleetclt("-i", str(big_inventory), "hosts", "--hosts", "all", "-o", "json",
                           stdout=full, stderr=subprocess.PIPE)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.decode() == "fleetclt: cannot write the output: No space left on device\n"


@pytest.mark.parametrize("args", [("hosts", "--hosts", "all"), ("--uri", "ws://127.9.0.1:1", "call", "core.ping")])
def test_a_closed_stdout_is_refused_before_anything_runs(big_inventory, args):
    """`>&-`: Python starts with sys.stdout None and print() writes nowhere; it used to exit 0, output lost."""
    process = fleetclt("-i", str(big_inventory), *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       preexec_fn=lambda: os.close(1))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.decode() == "fleetclt: stdout is closed: there is nowhere to write the output\n"
