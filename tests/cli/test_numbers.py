"""Counts and durations on the command line: a bad one is a usage error (exit 1), never a hang or a traceback."""
from __future__ import annotations

import pytest

from fleetclt import Fleet
from fleetclt.cli.fleet import fleet_for
from fleetclt.cli.main import build_parser
from fleetclt.fleet.runner import DEFAULT_FORKS, DEFAULT_MAX_CONNECTING
from fleetclt.inventory.load import load_inventory


@pytest.mark.parametrize("argv, message", [
    (["call", "--forks", "0", "core.ping"], "argument --forks: must be 1 or more, not 0"),
    (["ping", "--forks", "-3"], "argument --forks: must be 1 or more, not -3"),
    (["call", "--max-connecting", "x", "core.ping"], "argument --max-connecting: not a whole number: 'x'"),
    (["call", "--deadline", "-1", "core.ping"], "argument --deadline: must be more than 0 seconds, not -1"),
    (["call", "-t", "nan", "core.ping"], "argument -t/--timeout: not a number of seconds: 'nan'"),
    (["call", "-t", "inf", "core.ping"], "argument -t/--timeout: not a number of seconds: 'inf'"),
    (["subscribe", "-n", "0", "core.get_jobs"], "argument -n/--number: must be 1 or more, not 0"),
    (["rollout", "--window", "0", "update.update"], "argument --window: must be 1 or more, not 0"),
    (["rollout", "--pause", "-0.5", "update.update"], "argument --pause: must be 0 seconds or more, not -0.5"),
    (["rollout", "--max-connecting", "0", "update.update"], "argument --max-connecting: must be 1 or more"),
])
def test_a_bad_count_or_duration_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 1
    assert message in capsys.readouterr().err


def test_good_counts_and_durations_are_taken_as_given():
    args = build_parser().parse_args(["call", "--forks", "1", "--max-connecting", "250", "--deadline", "0.5",
                                      "core.ping"])
    assert (args.forks, args.max_connecting, args.deadline) == (1, 250, 0.5)
    assert build_parser().parse_args(["rollout", "--pause", "0", "update.update"]).pause == 0.0
    unset = build_parser().parse_args(["call", "core.ping"])
    assert unset.max_connecting is None and unset.forks is None, "unset, so one-host mode can refuse them"


def test_unset_counts_take_the_fleet_defaults(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  nas01:\n    uri: ws://127.0.0.1:1/api/current\n")
    args = build_parser().parse_args(["call", "--hosts", "all", "core.ping"])
    with fleet_for(load_inventory(path), args) as fleet:
        assert (fleet.forks, fleet.runner.max_connecting) == (DEFAULT_FORKS, DEFAULT_MAX_CONNECTING)


def test_the_python_api_refuses_an_empty_pool_too(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  nas01:\n    uri: ws://127.0.0.1:1/api/current\n")
    with pytest.raises(ValueError, match="forks and max_connecting must be 1 or more, not 0 and 100"):
        Fleet(load_inventory(path), forks=0)
