"""Bad input is one specific line on stderr and exit 1, never a traceback or a library's wording.

Run in-process through `main(argv)`: each case fails before anything connects
(the options are checked first), so no host is needed.
"""
from __future__ import annotations

import pytest

from fleetclt.cli.main import main
from fleetclt.errors import did_you_mean


def run(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as stopped:  # argparse's usage errors
        code = stopped.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line and not line.startswith(("usage:", " "))]
    return code, lines, captured.out


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    path = tmp_path / "inventory.yaml"
    path.write_text("defaults: {username: admin, password: {env: NO_SUCH_PW}}\n"
                    "hosts:\n  nas01: {uri: 'ws://127.0.0.1:1/api/current'}\n")
    monkeypatch.setenv("FLEETCLT_INVENTORY", str(path))
    return path


PARSE_ERRORS = [
    (["fingerprint", "host:abc"], "fingerprint 'host:abc': the port 'abc' is not a number"),
    (["fingerprint", "wss://[::1"], "fingerprint 'wss://[::1': an IPv6 address needs both brackets"),
    (["fingerprint", "host:99999"], "fingerprint 'host:99999': the port 99999 is out of range (1-65535)"),
    (["--uri", "ws://h:70000", "call", "core.ping"], "--uri 'ws://h:70000': the port 70000 is out of range"),
    (["--uri", "ws://127.0.0.1:0", "call", "core.ping"], "the port 0 is out of range (1-65535)"),
    (["call"], "call needs METHOD, the method to call"),
    (["rollout", "--hosts", "all", "--max-fail", "nan", "update.update"],
     "--max-fail: 'nan' is out of range (a count from 0, or 0% to 100%)"),
    (["rollout", "--hosts", "all", "--max-fail", "inf", "update.update"],
     "--max-fail: 'inf' is out of range (a count from 0, or 0% to 100%)"),
    (["rollout", "--hosts", "all", "--batch", "1,nan%", "update.update"],
     "--batch: 'nan%' must be a positive count or a percentage up to 100%"),
    (["call", "--hosts", "all", "--deadline", "nan", "core.ping"], "argument --deadline: not a number of seconds"),
    (["rollout", "--hosts", "all", "--health", 'system.ready "x', "update.update"],
     """fleetclt: --health: cannot read 'system.ready "x': No closing quotation"""),
    (["sim", "--version", "1.2"], "argument --version: '1.2' is not a version the simulator plays: X.Y.Z of 24.10, "
                                  "25.04, 25.10, 26.0"),
    (["sim", "--count", "2", "--port", "0", "--failing", "nope"],
     "--failing: no simulated host named 'nope'; the hosts are sim001, sim002"),
]


@pytest.mark.parametrize("argv, message", PARSE_ERRORS, ids=[" ".join(a) for a, _ in PARSE_ERRORS])
def test_a_parse_error_is_one_specific_line(capsys, argv, message):
    code, lines, out = run(capsys, argv)
    assert code == 1 and out == ""
    assert len(lines) == 1 and message in lines[0], lines


IGNORED = [
    (["call", "--hosts", "all", "-jp", "description", "core.ping"], "-jp draws one job's progress"),
    (["call", "--hosts", "all", "--insecure", "core.ping"], "--insecure does not apply: in fleet mode"),
    (["call", "--hosts", "all", "--ca-file", "ca.pem", "core.ping"], "--ca-file does not apply: in fleet mode"),
    (["call", "--hosts", "all", "-U", "bob", "core.ping"], "-U does not apply: in fleet mode"),
    (["ping", "--hosts", "all", "-P", "pw"], "-P does not apply: in fleet mode"),
    (["-U", "bob", "hosts"], "-U does not apply: in fleet mode"),
    (["--insecure", "rollout", "--hosts", "all", "update.update"], "--insecure does not apply: in fleet mode"),
    (["--uri", "ws://127.0.0.1:1", "call", "-o", "json", "core.ping"], "-o applies to fleet mode (--hosts PATTERN)"),
    (["--uri", "ws://127.0.0.1:1", "call", "--deadline", "5", "core.ping"], "--deadline applies to fleet mode"),
    (["--uri", "ws://127.0.0.1:1", "ping", "--forks", "3"], "--forks applies to fleet mode"),
    (["--uri", "ws://127.0.0.1:1", "ping", "--max-connecting", "3"], "--max-connecting applies to fleet mode"),
    (["--uri", "ws://127.0.0.1:1", "fingerprint", "127.0.0.1:1"], "--uri does not apply to `fleetclt fingerprint`"),
    # after a command that takes no connection options: the reason, not argparse's usage screen
    (["hosts", "-U", "bob"], "-U does not apply to `fleetclt hosts`: in fleet mode"),
    (["rollout", "list", "--insecure"], "--insecure does not apply to `fleetclt rollout`"),
    (["agent", "status", "--password-env=PW"], "--password-env does not apply to `fleetclt agent`"),
    (["hosts", "--bogus"], "error: unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("argv, message", IGNORED, ids=[" ".join(a) for a, _ in IGNORED])
def test_a_flag_that_does_not_apply_in_the_mode_is_refused(capsys, inventory, argv, message):
    code, lines, _ = run(capsys, argv)
    assert code == 1 and len(lines) == 1 and message in lines[0], lines


def test_a_call_with_neither_hosts_nor_uri_names_fleet_mode_first(capsys):
    code, lines, _ = run(capsys, ["call", "core.ping"])
    assert code == 1 and lines == ["fleetclt: call needs --hosts PATTERN (hosts of the inventory) or --uri URI "
                                   "(one host: ws://HOST, wss://HOST or ws+unix://PATH)"]


def test_an_unknown_group_with_no_groups_defined_says_so(capsys, tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  nas1: {uri: 'ws://127.0.0.1:1/api/current', groups: [nope]}\n")
    code, lines, _ = run(capsys, ["-i", str(path), "hosts"])
    assert code == 1 and lines == [f"fleetclt: {path}:2: hosts.nas1.groups[0]: unknown group 'nope' (none are defined)"]


def test_did_you_mean_lists_equally_close_names_in_their_order():
    assert did_you_mean("nsa01", ["nas01", "nas02", "nas03", "nas04", "nas05"]) == \
        "; did you mean 'nas01' or 'nas02' or 'nas03'?"
    assert did_you_mean("sim00", ["sim001", "sim002", "sim003"]) == "; did you mean 'sim001' or 'sim002' or 'sim003'?"


def test_sim_from_an_inventory_whose_secret_is_unset_says_why(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SIM_SECRET_UNSET", raising=False)
    path = tmp_path / "inventory.yaml"
    path.write_text("defaults: {username: admin, password: {env: SIM_SECRET_UNSET}}\n"
                    "hosts:\n  a: {uri: 'ws://127.0.0.1:1/api/current'}\n  b: {uri: 'ws://127.0.0.2:1/api/current'}\n")
    code, lines, _ = run(capsys, ["sim", "-i", str(path)])
    assert code == 1
    assert lines[-1] == (f"fleetclt: {path}: no host to serve: {path}:1: defaults.password: "
                         "environment variable SIM_SECRET_UNSET is not set")
    assert "127.0.0.0/8" not in lines[-1], "the hosts are on loopback: that is not the reason"
