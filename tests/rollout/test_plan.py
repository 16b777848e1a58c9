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


@pytest.mark.parametrize("spec, sizes", [
    ([1, "10%", "100%"], [1, 4, 40]),      # a list of counts and percentage strings
    (5, [5] * 9),                          # a bare host count
    (["50%"], [22, 22, 1]),
])
def test_batch_accepts_python_forms(spec, sizes):
    plan = RolloutPlan("m", batch=spec).with_stages(HOSTS)
    assert [len(s) for s in plan.stages] == sizes
    assert isinstance(plan.batch, str), "the journal keeps the plain string form"


def test_batch_is_kept_in_its_plain_string_form():
    assert RolloutPlan("m", batch=[1, "10%", 1000000]).batch == "1,10%,1000000"
    assert RolloutPlan("m", batch=" 1, 12.5% ").batch == "1,12.5%"


@pytest.mark.parametrize("spec", ["", "0", "-1", "abc", "150%", "1,,2", [], [0], ["abc"], [1.5], [True],
                                  True, None, 2.5, [1, None], "nan%", "inf%", "1,nan%"])
def test_bad_batch_specs_are_errors_worded_for_python(spec):
    with pytest.raises(ConfigError, match=r"^batch: ") as caught:
        RolloutPlan("update.update", batch=spec)
    assert "--" not in str(caught.value)


def test_parsers_name_no_option_so_each_caller_adds_its_own():
    with pytest.raises(ConfigError, match=r"^'0' must be a positive count"):
        parse_batch("0")
    with pytest.raises(ConfigError, match=r"^'x' is neither"):
        Budget.parse("x")


def test_count_budget():
    budget = Budget.parse("2")
    assert not budget.exceeded(2, 10) and budget.exceeded(3, 10)
    assert Budget.parse("0").exceeded(1, 1)


def test_percent_budget_counts_hosts_started_so_far():
    budget = Budget.parse("10%")
    assert budget.exceeded(1, 1), "one failure of one started host is 100%"
    assert not budget.exceeded(1, 10) and budget.exceeded(2, 10)
    assert not Budget.parse("100%").exceeded(45, 45), "100% never halts, even a fully failed stage"


@pytest.mark.parametrize("spec, text", [(2, "2"), ("2", "2"), ("5%", "5%"), (0, "0"), (" 10% ", "10%")])
def test_max_fail_takes_a_count_or_a_percentage(spec, text):
    assert RolloutPlan("m", max_fail=spec).max_fail == text


@pytest.mark.parametrize("spec", ["x", "-1", -1, "101%", True, None, 1.5, ["1"], "nan", "inf", "nan%", "-inf"])
def test_bad_budgets_are_errors_worded_for_python(spec):
    with pytest.raises(ConfigError, match=r"^max_fail: ") as caught:
        RolloutPlan("update.update", max_fail=spec)
    assert "--" not in str(caught.value)


@pytest.mark.parametrize("health, normalized", [
    ("system.ready", ("system.ready",)),   # one method name, not iterated letter by letter
    (("system.ready",), ("system.ready",)),
    (["pool.query", [["name", "=", "tank"]]], ("pool.query", [["name", "=", "tank"]])),
    ("", ()),
    ((), ()),
])
def test_health_takes_a_method_name_or_a_call(health, normalized):
    assert RolloutPlan("m", health=health).health == normalized


@pytest.mark.parametrize("health", [5, ("",), (3, "x"), {"method": "system.ready"}])
def test_bad_health_gates_are_errors_worded_for_python(health):
    with pytest.raises(ConfigError, match=r"^health: "):
        RolloutPlan("m", health=health)


@pytest.mark.parametrize("window", [0, -2, "3", True])
def test_bad_windows(window):
    with pytest.raises(ConfigError, match=r"^window: "):
        RolloutPlan("m", window=window)


def test_plan_round_trips_through_its_journal_form():
    plan = RolloutPlan("update.update", ({"reboot": False},), batch=[1, "10%"], max_fail=2, health="system.ready")
    fixed = plan.with_stages(HOSTS)
    assert fixed.to_json()["batch"] == "1,10%" and fixed.to_json()["max_fail"] == "2"
    assert fixed.to_json()["health"] == ["system.ready"]
    assert RolloutPlan.from_json(fixed.to_json()) == fixed
    assert [len(s) for s in RolloutPlan("m", window=5).with_stages(HOSTS).stages] == [45]


def test_a_window_takes_no_batch_but_one_stage():
    with pytest.raises(ConfigError, match=r"^window 5 and batch '1,10%' conflict: a window runs every host in one "):
        RolloutPlan("m", window=5, batch="1,10%")
    assert RolloutPlan("m", window=5, batch="100%").with_stages(HOSTS).stages == (tuple(HOSTS),)


def test_a_changed_batch_restages_only_the_hosts_never_started():
    plan = RolloutPlan("m", batch="2").with_stages(HOSTS[:6])   # a,b | c,d | e,f
    unstarted = set(HOSTS[3:6])                                  # d, e, f never started
    changed = plan.changed(unstarted, batch="1", max_fail="2")
    assert changed.stages == ((HOSTS[0], HOSTS[1]), (HOSTS[2],), (HOSTS[3],), (HOSTS[4],), (HOSTS[5],))
    assert (changed.batch, changed.max_fail, changed.window) == ("1", "2", None)
    windowed = plan.changed(unstarted, window=2)
    assert windowed.stages == ((HOSTS[0], HOSTS[1]), (HOSTS[2],), tuple(HOSTS[3:6]))
    assert (windowed.batch, windowed.window) == ("100%", 2)
    assert plan.changed(unstarted, max_fail="1").stages == plan.stages, "a budget alone keeps the stages"
