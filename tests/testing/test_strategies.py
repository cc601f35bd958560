"""Hypothesis strategies for cluster shapes, workloads, fault schedules and scenarios."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement, expand_hosts
from simsi.sim import schedules
from simsi.sim.budget import ChoiceSpace, FaultBudget, NumberSpace
from simsi.sim.faults import Fault, check_schedule
from simsi.sim.scenario import ClusterSpec, Expectations, Scenario, WorkloadSpec, validate_scenario
from simsi.sim.world import run_scenario
from simsi.testing.strategies import (
    cluster_shapes,
    fault_schedules,
    scenarios,
    valid_schedule,
    workloads,
)

HOSTS = ("host-0", "host-1", "host-2")
LIFECYCLE = FaultBudget(
    kinds=("crash", "restart", "stop", "duplicate_identity"),
    window_s=(0.0, 30.0),
    max_count=6,
    hosts=("host-1", "host-2"),
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(fault_schedules(LIFECYCLE, HOSTS))
def test_schedules_pass_check(schedule: tuple[Fault, ...]) -> None:
    assert check_schedule(schedule, HOSTS) == []
    assert len(schedule) <= 6
    assert [fault.at for fault in schedule] == sorted(fault.at for fault in schedule)
    for fault in schedule:
        assert fault.kind in LIFECYCLE.kinds
        assert fault.host in ("host-1", "host-2")
        assert 0.0 <= fault.at <= 30.0


@FAST
@given(
    fault_schedules(
        FaultBudget(
            kinds=("clock_offset", "store_outage", "crash"),
            window_s=(5.0, 6.0),
            max_count=3,
            hosts=("host-0",),
            params={
                "clock_offset": {"offset_s": NumberSpace(-0.25, 0.25)},
                "crash": {"incarnation": ChoiceSpace(("oldest",))},
            },
        ),
        HOSTS,
    )
)
def test_param_spaces_respected(schedule: tuple[Fault, ...]) -> None:
    for fault in schedule:
        assert 5.0 <= fault.at <= 6.0
        if fault.kind == "clock_offset":
            assert -0.25 <= fault.params["offset_s"] <= 0.25
        elif fault.kind == "store_outage":
            assert "duration_s" in fault.params
        else:
            assert fault.params["incarnation"] == "oldest"
            assert 1.0 <= fault.params["restart_after_s"] <= 10.0


@FAST
@given(
    fault_schedules(
        FaultBudget(kinds=("clock_step",), window_s=(0.0, 10.0), count=3, min_gap_s=2.0),
        HOSTS,
    )
)
def test_gap_and_count_respected(schedule: tuple[Fault, ...]) -> None:
    times = [fault.at for fault in schedule]

    assert 1 <= len(schedule) <= 3
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= 2.0 - 1e-9


@FAST
@given(
    fault_schedules(
        FaultBudget(kinds=("restart",), window_s=(0.0, 5.0), max_count=2, hosts=("host-1",)),
        HOSTS,
        fixed=(Fault(1.0, "crash", "host-1"),),
    )
)
def test_drawn_fit_fixed_faults(schedule: tuple[Fault, ...]) -> None:
    assert check_schedule((Fault(1.0, "crash", "host-1"), *schedule), HOSTS) == []
    assert all(fault.at >= 1.0 for fault in schedule)
    assert len(schedule) <= 1


def test_valid_schedule_drops_impossible() -> None:
    faults = [
        Fault(3.0, "restart", "host-1"),
        Fault(1.0, "crash", "host-1"),
        Fault(2.0, "crash", "host-1"),
    ]

    kept = valid_schedule(faults, HOSTS)

    assert kept == (Fault(1.0, "crash", "host-1"), Fault(3.0, "restart", "host-1"))


def test_valid_schedule_keeps_gap() -> None:
    faults = [Fault(1.0, "clock_step", "host-0", {"step_s": 1.0}) for _ in range(2)]
    faults.append(Fault(4.0, "clock_step", "host-0", {"step_s": 1.0}))

    kept = valid_schedule(faults, HOSTS, min_gap_s=2.0)

    assert [fault.at for fault in kept] == [1.0, 4.0]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (FaultBudget(("meteor",), (0.0, 1.0), max_count=1), "invalid budget kinds"),
        (FaultBudget((), (0.0, 1.0), max_count=1), "invalid budget kinds"),
        (FaultBudget(("crash",), (0.0, 1.0), max_count=1, hosts=()), "no hosts to target"),
        (FaultBudget(("crash",), (5.0, 1.0), max_count=1), "invalid budget window"),
    ],
)
def test_budget_rejects_invalid(budget: FaultBudget, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        schedules.check_budget(budget, HOSTS)


def test_budget_needs_space_for_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FaultBudget, "spaces", lambda self, kind: {})

    with pytest.raises(ConfigError, match="parameter 'step_s' of fault kind 'clock_step'"):
        schedules.check_budget(FaultBudget(("clock_step",), (0.0, 1.0), max_count=1), HOSTS)


@FAST
@given(cluster_shapes(max_hosts=4, max_shards=32))
def test_cluster_shapes_valid(cluster: ClusterSpec) -> None:
    placement = Placement(cluster.hosts, cluster.shards)

    assert 1 <= len(placement.hosts) <= 4
    assert len(placement.hosts) <= cluster.shards <= 32
    if len(placement.hosts) == 1:
        assert "{" not in cluster.hosts


@FAST
@given(workloads(max_instances=7, max_request_rate=3.0, max_alarm_delay_s=4.0))
def test_workloads_within_bounds(workload: WorkloadSpec) -> None:
    low, high = workload.alarm_delay_s

    assert 1 <= workload.instances <= 7
    assert 0.1 <= workload.request_rate <= 3.0
    assert 0.1 <= low <= high <= 4.0
    assert validate_scenario(Scenario(workload=workload)).workload == workload


@settings(max_examples=8, deadline=None)
@given(scenarios(kinds=("crash", "stop", "clock_step"), max_faults=3, duration_s=5, drain_s=5))
def test_scenarios_run(scenario: Scenario) -> None:
    result = run_scenario(scenario)

    assert validate_scenario(scenario).faults == scenario.faults
    assert result.checks.single_instance.holds
    for fault in scenario.faults:
        assert fault.host is None or fault.host in expand_hosts(scenario.cluster.hosts)


@settings(max_examples=5, deadline=None)
@given(
    scenarios(
        seeds=st.integers(0, 3),
        expect=Expectations(single_instance="holds"),
        loads=st.just(WorkloadSpec(instances=2, request_rate=1.0)),
        duration_s=3,
        drain_s=2,
    )
)
def test_scenarios_take_seeds_and_loads(scenario: Scenario) -> None:
    assert 0 <= scenario.run.seed <= 3
    assert scenario.workload == WorkloadSpec(instances=2, request_rate=1.0)
    assert scenario.expect.single_instance == "holds"


@pytest.mark.parametrize(
    "kwargs",
    [{"max_hosts": 0}, {"max_hosts": 5, "max_shards": 4}, {"prefixes": ()}],
)
def test_cluster_shapes_bad_bounds(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid cluster bounds"):
        cluster_shapes(**kwargs)  # type: ignore[arg-type]


def test_workloads_bad_bounds() -> None:
    with pytest.raises(ValueError, match="invalid workload bounds"):
        workloads(max_instances=0)
    with pytest.raises(ValueError, match="invalid max_alarm_delay_s"):
        workloads(max_alarm_delay_s=0.0)
