"""Stage planning and the failure budget (pure functions)."""
from __future__ import annotations

import pytest

from fleetclt.errors import ConfigError
from fleetclt.rollout.plan import Budget, RolloutPlan, parse_batch, plan_stages

HOSTS = [f"h{i:02d}" for i in range(45)]


@pytest.mark.parametrize("spec, sizes", [
    ("1,10%,100%", [1, 4, 40]),           # 10% of 45 rounds down to 4
    ("1,5", [1] + [5] * 8 + [4]),          # the last entry repeats
    ("1%", [1] * 45),                      # a share rounds down but is at least 1
    ("50%", [22, 22, 1]),
    ("100", [45]),
])
def test_stages_follow_ansible_serial(spec, sizes):
    stages = plan_stages(HOSTS, parse_batch(spec))
    assert [len(s) for s in stages] == sizes
    assert [h for stage in stages for h in stage] == HOSTS, "order kept, every host once"


@pytest.mark.parametrize("spec", ["", "0", "-1", "abc", "150%", "1,,2"])
def test_bad_batch_specs_are_clear_errors(spec):
    with pytest.raises(ConfigError, match="--batch"):
        parse_batch(spec)


def test_count_budget():
    budget = Budget.parse("2")
    assert not budget.exceeded(2, 10) and budget.exceeded(3, 10)
    assert Budget.parse("0").exceeded(1, 1)


def test_percent_budget_counts_hosts_started_so_far():
    budget = Budget.parse("10%")
    assert budget.exceeded(1, 1), "one failure of one started host is 100%"
    assert not budget.exceeded(1, 10) and budget.exceeded(2, 10)
    assert not Budget.parse("100%").exceeded(45, 45), "100% never halts, even a fully failed stage"


@pytest.mark.parametrize("text", ["x", "-1", "101%"])
def test_bad_budgets(text):
    with pytest.raises(ConfigError, match="--max-fail"):
        Budget.parse(text)


def test_plan_round_trips_through_its_journal_form():
    plan = RolloutPlan("update.update", ({"reboot": False},), batch="1,10%", health=("system.ready",))
    fixed = plan.with_stages(HOSTS)
    assert RolloutPlan.from_json(fixed.to_json()) == fixed
    assert [len(s) for s in RolloutPlan("m", window=5).with_stages(HOSTS).stages] == [45]
