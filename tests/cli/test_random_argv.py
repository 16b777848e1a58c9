"""Any command line at all ends in one of the documented exit codes, with no traceback.

Hypothesis builds argv from the CLI's own vocabulary (every command and flag,
good and bad values, in any order) and runs `main(argv)` in-process. No host
is reachable: the inventory's hosts and every --uri point at loopback ports
where nothing listens, so each connect is refused at once and every example
is quick. Commands that serve until interrupted (sim, demo) are left out.
"""
from __future__ import annotations

import io
import sys
from unittest import mock

import gevent
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from fleetclt.cli.main import main

EXIT_CODES = {0, 1, 2, 130}
EXAMPLE_LIMIT = 30  # seconds: an example that takes longer is a hang, reported as such

NUMBERS = st.sampled_from(["0", "1", "3", "-1", "nan", "inf", "-inf", "1e9", "x", "", "2.5"]) | \
    st.integers(min_value=-10, max_value=10**6).map(str)
SECONDS = st.sampled_from(["0", "0.05", "-1", "nan", "inf", "1e300", "x", "", "1e-300"]) | \
    st.floats(min_value=-5, max_value=5).map(str)
VALUES = {
    "--hosts": st.sampled_from(["all", "*", "", "nas01", "nas0[12]", "~nas0", "eu,!canary", "@failed", "&eu",
                                "!nas01", "nosuch", "[", "~(", ",", ":", "eu:&canary"]),
    "-o": st.sampled_from(["table", "json", "jsonl", "yaml", "xml", ""]),
    "--forks": NUMBERS, "--max-connecting": NUMBERS, "-n": NUMBERS, "--window": NUMBERS,
    "-t": SECONDS, "--deadline": SECONDS, "--stall": SECONDS,
    "--pause": st.sampled_from(["0", "0.01", "-1", "nan", "inf", "x"]),  # bounded: a real pause would wait
    "--batch": st.sampled_from(["nan%", "1,inf", "0", "-1", "101%", "", "x", "1,,2"]),
    "--max-fail": st.sampled_from(["nan", "inf", "-1", "101%", "", "x"]),
    "--health": st.sampled_from(["system.ready", "'x", 'system.ready "x', "", "core.ping 1 {}"]),
    "--uri": st.sampled_from(["ws://127.0.0.1:1", "wss://127.0.0.1:1", "ws://h:70000", "ws://127.0.0.1:0",
                              "wss://[::1", "http://x", "ws+unix:///nonexistent/sock", "", "ws://127.0.0.1:x"]),
    "-U": st.sampled_from(["admin", ""]),
    "-P": st.sampled_from(["pw", "-", ""]),
    "-K": st.sampled_from(["key", "-", "/nonexistent/key"]),
    "--password-env": st.sampled_from(["RANDOM_ARGV_PW", "RANDOM_ARGV_UNSET"]),
    "--password-file": st.sampled_from(["/nonexistent/pw"]),
    "--tls-fingerprint": st.sampled_from(["abc", "0" * 64]),
    "--ca-file": st.sampled_from(["/nonexistent/ca.pem"]),
    "-jp": st.sampled_from(["progressbar", "description", "x"]),
    "--args-json": st.sampled_from(["[]", "[1", "{}", "-", "[1, {}]"]),
    "--resume": st.sampled_from(["nosuch", "../x", ""]),
}
SWITCHES = ["--insecure", "-j", "--abort-on-halt", "-h", "--version"]
GOOD = {  # values that pass parsing, so that the run gets as far as connecting (and being refused)
    "--hosts": st.sampled_from(["all", "eu", "nas0[12]", "~nas0", "eu,!canary", "@failed"]),
    "-o": st.sampled_from(["table", "json", "jsonl", "yaml"]),
    "--forks": st.sampled_from(["1", "2", "100"]), "--max-connecting": st.sampled_from(["1", "50"]),
    "--deadline": st.sampled_from(["0.5", "5"]), "-t": st.sampled_from(["0.5", "5"]), "-n": st.just("1"),
    "--uri": st.sampled_from(["ws://127.0.0.1:1", "wss://127.0.0.1:1", "ws+unix:///nonexistent/sock"]),
    "--password-env": st.just("RANDOM_ARGV_PW"),
    "--batch": st.sampled_from(["1,50%,100%", "2", "100%"]), "--max-fail": st.sampled_from(["0", "1", "50%"]),
    "--window": st.sampled_from(["1", "2"]), "--pause": st.sampled_from(["0", "0.01"]),
    "--health": st.sampled_from(["system.ready", "core.ping"]), "--stall": st.just("10"),
    "-jp": st.sampled_from(["progressbar", "description"]), "--args-json": st.sampled_from(["[]", "[1, {}]"]),
    "--tls-fingerprint": st.just("0" * 64),
}
FLEET = ["-o", "--forks", "--max-connecting", "--deadline"]
ONE_HOST = ["--password-env", "--insecure", "--tls-fingerprint"]
COMMANDS = {  # command -> the flags that apply to it, and its positionals
    "call": (["--hosts", *FLEET, "-j", "-t", "--args-json"], ["core.ping", "system.info", "no.such", "{}", "1"]),
    "call --uri": ([*ONE_HOST, "-j", "-jp", "-t", "--args-json"], ["core.ping", "system.info", "-", "{}"]),
    "ping": (["--hosts", *FLEET, "-t"], []),
    "ping --uri": ([*ONE_HOST, "-t"], []),
    "subscribe --uri": ([*ONE_HOST, "-n", "-t"], ["core.get_jobs", "*"]),
    "hosts": (["--hosts", "-o"], []),
    "rollout": (["--hosts", "-o", "--batch", "--max-fail", "--window", "--pause", "--health", "--abort-on-halt",
                 "--stall", "--forks"], ["update.update", "core.ping", "{}"]),
    "fingerprint": ([], ["127.0.0.1:1", "[::1]:1", "wss://127.0.0.1:1"]),
}
WILD = st.sampled_from(["core.ping", "", "-", "nan", "x y", "127.0.0.1:1", "host:abc", "wss://[::1", "127.0.0.1:99999",
                        "nosuch", "sim", "--nosuch"])


@st.composite
def argv(draw):
    """A command line of flags that apply to the command (so runs get far), each value good or bad,
    with a few wild pieces anywhere in it."""
    name = draw(st.sampled_from(list(COMMANDS)))
    flags, positionals = COMMANDS[name]
    command, _, mode = name.partition(" ")
    if mode:  # one host: --uri (before the command or after it) and a user to log in as
        tokens = [mode, draw(GOOD["--uri"]), command, "-U", "admin"]
    else:
        tokens = [command, "--hosts", draw(GOOD["--hosts"])] if "--hosts" in flags else [command]
    for flag in [flag for flag in flags if flag != "--hosts" and draw(st.booleans())]:
        tokens += [flag] if flag in SWITCHES else [flag, draw(GOOD[flag] | VALUES.get(flag, GOOD[flag]))]
    if positionals:
        tokens += draw(st.lists(st.sampled_from(positionals), min_size=1, max_size=3))
    for _ in range(draw(st.integers(0, 2))):  # the wild part: any flag, any value, or a stray word
        flag = draw(st.sampled_from([*VALUES, *SWITCHES, None]))
        piece = [draw(WILD)] if flag is None else [flag] if flag in SWITCHES else [flag, draw(VALUES[flag])]
        at = draw(st.integers(0, len(tokens)))
        tokens[at:at] = piece
    return tokens


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inv") / "inventory.yaml"
    path.write_text("defaults: {username: admin, password: {env: RANDOM_ARGV_PW}, connect_timeout: 2}\n"
                    "groups:\n  eu: {}\n  canary: {}\nhosts:\n"
                    "  nas01: {uri: 'ws://127.0.0.1:1/api/current', groups: [eu, canary]}\n"
                    "  nas02: {uri: 'wss://127.0.0.1:1/api/current', groups: [eu]}\n"
                    "  nas03: {uri: 'ws://127.0.0.2:1/api/current'}\n")
    return path


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=argv())
@example(args=["rollout", "--hosts", "all", "--batch", "nan%", "update.update"])  # was a ValueError traceback
@example(args=["fingerprint", "host:abc"])
def test_any_argv_exits_with_a_documented_code_and_no_traceback(capsys, inventory, monkeypatch, args):
    monkeypatch.setenv("FLEETCLT_INVENTORY", str(inventory))
    monkeypatch.setenv("RANDOM_ARGV_PW", "pw")
    monkeypatch.setenv("FLEETCLT_PASSWORD", "pw")  # never a prompt, even where a terminal exists
    monkeypatch.delenv("RANDOM_ARGV_UNSET", raising=False)
    with mock.patch.object(sys, "stdin", io.StringIO("")), \
            gevent.Timeout(EXAMPLE_LIMIT, AssertionError(f"{args} still running after {EXAMPLE_LIMIT} s")):
        try:
            code = main(args)
        except SystemExit as stopped:  # argparse: usage errors, --help, --version
            code = stopped.code if stopped.code is not None else 0
    err = capsys.readouterr().err
    event(f"exit {code}")
    assert code in EXIT_CODES, (args, code, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
