"""FaultBudget: drawing is deterministic and stays within every constraint it states."""

from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path

import pytest

from simsi.core.errors import ScenarioError
from simsi.sim.budget import ChoiceSpace, FaultBudget, NumberSpace
from simsi.sim.faults import FAULT_KINDS, Fault, check_schedule
from simsi.sim.rng import component_random
from simsi.sim.scenario import Scenario, load_scenario, scenario_from_dict
from simsi.sim.world import World

HOSTS = ("host-0", "host-1", "host-2")

BUDGET = FaultBudget(
    kinds=("crash", "stop", "clock_step", "store_outage", "isolate", "message_loss"),
    window_s=(10.0, 50.0),
    count=5,
    min_gap_s=3.0,
)

GOOD = """
name = "t"
[cluster]
hosts = "host-{0..2}"
shards = 16
[workload]
instances = 5
request_rate = 2
[run]
duration_s = 40
drain_s = 10
"""


def draw(budget: FaultBudget, seed: int, fixed: tuple[Fault, ...] = ()) -> list[Fault]:
    return budget.draw(random.Random(seed), fixed, hosts=HOSTS)


def load_error(tmp_path: Path, text: str) -> ScenarioError:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


# -- drawing ---------------------------------------------------------------------------------


def test_draw_same_seed_same_faults() -> None:
    assert draw(BUDGET, 7) == draw(BUDGET, 7)


def test_draw_different_seeds_differ() -> None:
    schedules = {repr(draw(BUDGET, seed)) for seed in range(10)}

    assert len(schedules) == 10


@pytest.mark.parametrize("seed", range(20))
def test_draw_fits_budget_and_schedule(seed: int) -> None:
    faults = draw(BUDGET, seed)

    assert BUDGET.problems(faults, HOSTS) == []
    assert check_schedule(faults, HOSTS) == []
    assert len(faults) == 5


def test_draw_respects_window_and_gap() -> None:
    faults = draw(BUDGET, 3)

    times = [fault.at for fault in faults]
    assert times == sorted(times)
    assert all(10.0 <= t <= 50.0 for t in times)
    assert all(b - a >= 3.0 - 1e-9 for a, b in itertools.pairwise(times))


def test_max_count_draws_zero_to_max() -> None:
    budget = dataclasses.replace(BUDGET, count=None, max_count=3)

    counts = {len(draw(budget, seed)) for seed in range(40)}

    assert counts == {0, 1, 2, 3}
    assert budget.count_range() == (0, 3)


def test_hosts_limit_targets() -> None:
    budget = dataclasses.replace(BUDGET, kinds=("clock_step",), hosts=("host-2",))

    faults = draw(budget, 1)

    assert {fault.host for fault in faults} == {"host-2"}


def test_param_overrides_bound_values() -> None:
    budget = dataclasses.replace(
        BUDGET,
        kinds=("crash", "clock_step"),
        params={
            "crash": {"incarnation": ChoiceSpace(("oldest",))},
            "clock_step": {"step_s": NumberSpace(-30.0, -20.0)},
        },
    )

    faults = [f for seed in range(10) for f in draw(budget, seed)]

    steps = [f.params["step_s"] for f in faults if f.kind == "clock_step"]
    crashes = [f.params["incarnation"] for f in faults if f.kind == "crash"]
    assert steps
    assert crashes
    assert all(-30.0 <= step <= -20.0 for step in steps)
    assert set(crashes) == {"oldest"}


def test_default_spaces_come_from_kinds() -> None:
    spaces = BUDGET.spaces("crash")

    assert spaces["incarnation"] == ChoiceSpace(("all", "oldest", "newest"))
    assert spaces["restart_after_s"] == NumberSpace(1.0, 10.0)
    assert "drain_s" not in BUDGET.spaces("stop")


def test_crashed_host_not_targeted_again_before_restart() -> None:
    fixed = (
        Fault(9.0, "crash", "host-0"),
        Fault(9.0, "crash", "host-1"),
    )
    budget = dataclasses.replace(BUDGET, kinds=("crash",), count=3, min_gap_s=1.0)

    for seed in range(10):
        faults = draw(budget, seed, fixed)
        assert {fault.host for fault in faults} <= {"host-2"}
        assert check_schedule([*fixed, *faults], HOSTS) == []


def test_slot_without_fitting_host_stays_empty() -> None:
    fixed = tuple(Fault(1.0, "crash", host) for host in HOSTS)
    budget = dataclasses.replace(BUDGET, kinds=("crash", "clock_step"), count=4)

    faults = draw(budget, 2, fixed)

    assert all(fault.kind == "clock_step" for fault in faults)
    assert len(faults) == 4


def test_problems_names_each_violation() -> None:
    faults = [
        Fault(5.0, "crash", "host-0", {"restart_after_s": 2.0}),
        Fault(6.0, "replace", "host-1"),
        Fault(20.0, "clock_step", "host-1", {"step_s": 50.0}),
    ]

    problems = BUDGET.problems(faults, HOSTS)

    assert "3 faults, expected 5 to 5" in problems
    assert "crash at 5 s: outside the window [10, 50] s" in problems
    assert "faults at 5 s and 6 s are closer than 3 s" in problems
    assert any("replace at 6 s: kind not in" in problem for problem in problems)
    assert any("step_s = 50.0 outside" in problem for problem in problems)


def test_every_budget_kind_has_drawable_params() -> None:
    budget_kinds = sorted(name for name, kind in FAULT_KINDS.items() if kind.budget)
    budget = FaultBudget(kinds=tuple(budget_kinds), window_s=(0.0, 100.0), count=30)

    faults = [fault for seed in range(5) for fault in draw(budget, seed)]

    assert {fault.kind for fault in faults} == set(budget_kinds)


# -- loading ---------------------------------------------------------------------------------


def test_faults_random_table_loads(tmp_path: Path) -> None:
    path = tmp_path / "random.toml"
    path.write_text(
        GOOD
        + """
[faults_random]
kinds = ["crash", "clock_step"]
max = 4
window_s = [5, 30]
hosts = ["host-1", "host-2"]
min_gap_s = 2
[faults_random.clock_step]
step_s = [-3, 3]
[faults_random.crash]
incarnation = "oldest"
restart_after_s = 2
"""
    )

    budget = load_scenario(path).faults_random

    assert budget == FaultBudget(
        kinds=("crash", "clock_step"),
        window_s=(5.0, 30.0),
        max_count=4,
        hosts=("host-1", "host-2"),
        min_gap_s=2.0,
        params={
            "clock_step": {"step_s": NumberSpace(-3.0, 3.0)},
            "crash": {
                "incarnation": ChoiceSpace(("oldest",)),
                "restart_after_s": NumberSpace(2.0, 2.0),
            },
        },
    )


def test_faults_random_round_trips_through_toml(tmp_path: Path) -> None:
    scenario = Scenario(
        name="r",
        faults_random=dataclasses.replace(
            BUDGET, params={"clock_step": {"step_s": NumberSpace(-1.0, 1.0)}}
        ),
    )
    path = tmp_path / "r.toml"
    path.write_text(scenario.to_toml())

    again = load_scenario(path)

    assert again.faults_random == scenario.faults_random
    assert scenario_from_dict(scenario.to_dict()) == scenario


@pytest.mark.parametrize(
    ("table", "key", "fragment"),
    [
        ('kinds = ["explode"]\ncount = 1\nwindow_s = [1, 2]', "faults_random.kinds", "'explode'"),
        (
            'kinds = ["partition"]\ncount = 1\nwindow_s = [1, 2]',
            "faults_random.kinds",
            "'partition'",
        ),
        ('kinds = ["crash"]\nwindow_s = [1, 2]', "faults_random.count", "missing required key"),
        (
            'kinds = ["crash"]\ncount = 1\nmax = 2\nwindow_s = [1, 2]',
            "faults_random.max",
            "not both",
        ),
        (
            'kinds = ["crash"]\ncount = 1\nwindow_s = [1, 99]',
            "faults_random.window_s",
            "ends at 50",
        ),
        (
            'kinds = ["crash"]\ncount = 5\nwindow_s = [1, 10]\nmin_gap_s = 5',
            "faults_random.min_gap_s",
            "do not fit",
        ),
        (
            'kinds = ["crash"]\ncount = 1\nwindow_s = [1, 2]\nhosts = ["host-9"]',
            "faults_random.hosts",
            "'host-9'",
        ),
        (
            'kinds = ["crash"]\ncount = 1\nwindow_s = [1, 2]\n[faults_random.crash]\nrestart_after_s = [5, 1]',
            "faults_random.crash.restart_after_s",
            "min <= max",
        ),
        (
            'kinds = ["crash"]\ncount = 1\nwindow_s = [1, 2]\n[faults_random.crash]\nincarnation = "youngest"',
            "faults_random.crash.incarnation",
            "'youngest'",
        ),
        (
            'kinds = ["crash"]\ncount = 1\nwindow_s = [1, 2]\n[faults_random.crash]\nrestrat_after_s = 1',
            "faults_random.crash.restrat_after_s",
            "did you mean 'restart_after_s'",
        ),
        (
            'kinds = ["crash"]\ncount = 1\nwindow_s = [1, 2]\n[faults_random.isolate]\nduration_s = 1',
            "faults_random.isolate",
            "unknown key",
        ),
        (
            'kinds = ["message_loss"]\ncount = 1\nwindow_s = [1, 2]\n'
            '[faults_random.message_loss]\nendpoints = ["client"]',
            "faults_random.message_loss.endpoints",
            "cannot be drawn",
        ),
    ],
)
def test_faults_random_errors_name_key(tmp_path: Path, table: str, key: str, fragment: str) -> None:
    error = load_error(tmp_path, GOOD + "\n[faults_random]\n" + table + "\n")

    assert error.key == key
    assert fragment in str(error)


# -- in a run --------------------------------------------------------------------------------


def test_world_adds_drawn_faults_to_schedule() -> None:
    scenario = Scenario(
        faults=(Fault(1.0, "clock_step", "host-0", {"step_s": 1.0}),), faults_random=BUDGET
    )

    world = World(scenario, seed=4)
    result = world.run()

    assert world.faults[0] == scenario.faults[0]
    drawn = BUDGET.draw(component_random(4, "faults"), scenario.faults, hosts=HOSTS)
    assert list(world.faults[1:]) == drawn
    traced = result.trace.of_kind("fault")
    assert len(traced) == 6
    assert traced[0].get("drawn") is None
    assert all(event["drawn"] for event in traced[1:])


def test_drawn_schedule_depends_on_run_seed() -> None:
    scenario = Scenario(faults_random=BUDGET)

    first = World(scenario, seed=1).faults
    again = World(scenario, seed=1).faults
    other = World(scenario, seed=2).faults

    assert first == again
    assert first != other
