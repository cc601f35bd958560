"""Hypothesis strategies for cluster shapes, workloads, fault schedules and scenarios."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement, expand_hosts
from simsi.sim import schedules
from simsi.sim.faults import Fault, check_schedule
from simsi.sim.scenario import ClusterSpec, Expectations, Scenario, WorkloadSpec, validate_scenario
from simsi.sim.world import run_scenario
from simsi.testing.strategies import (
    ScheduleBudget,
    cluster_shapes,
    fault_schedules,
    scenarios,
    valid_schedule,
    workloads,
)

HOSTS = ("host-0", "host-1", "host-2")
LIFECYCLE = ScheduleBudget(
    kinds=("crash", "restart", "stop", "duplicate_identity"),
    hosts=("host-1", "host-2"),
    max_faults=6,
    window=(0.0, 30.0),
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(fault_schedules(LIFECYCLE, HOSTS))
def test_schedules_pass_check(schedule: tuple[Fault, ...]) -> None:
    assert check_schedule(schedule, HOSTS) == []
    assert len(schedule) <= LIFECYCLE.max_faults
    assert [fault.at for fault in schedule] == sorted(fault.at for fault in schedule)
    for fault in schedule:
        assert fault.kind in LIFECYCLE.kinds
        assert fault.host in LIFECYCLE.hosts
        assert 0.0 <= fault.at <= 30.0


@FAST
@given(
    fault_schedules(
        ScheduleBudget(
            kinds=("clock_offset", "store_outage"),
            hosts=("host-0",),
            max_faults=3,
            window=(5.0, 6.0),
            params={"clock_offset": {"offset_s": (-0.25, 0.25)}},
        )
    )
)
def test_param_ranges_respected(schedule: tuple[Fault, ...]) -> None:
    for fault in schedule:
        assert 5.0 <= fault.at <= 6.0
        if fault.kind == "clock_offset":
            assert -0.25 <= fault.params["offset_s"] <= 0.25
        else:
            assert 0.1 <= fault.params["duration_s"] <= 10.0


@FAST
@given(fault_schedules(ScheduleBudget(("crash",), ("host-0",), 3, (0.0, 1.0), min_faults=1)))
def test_min_faults_respected(schedule: tuple[Fault, ...]) -> None:
    assert len(schedule) >= 1


def test_valid_schedule_drops_impossible() -> None:
    faults = [
        Fault(3.0, "restart", "host-1"),
        Fault(1.0, "crash", "host-1"),
        Fault(2.0, "crash", "host-1"),
    ]

    kept = valid_schedule(faults, HOSTS)

    assert kept == (Fault(1.0, "crash", "host-1"), Fault(3.0, "restart", "host-1"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kinds": ("meteor",)}, "invalid budget kinds"),
        ({"kinds": ()}, "invalid budget kinds"),
        ({"hosts": ()}, "hosts is empty"),
        ({"min_faults": 5, "max_faults": 2}, "invalid budget counts"),
        ({"window": (10.0, 5.0)}, "invalid budget window"),
    ],
)
def test_budget_rejects_invalid(changes: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "kinds": ("crash",),
        "hosts": ("host-0",),
        "max_faults": 2,
        "window": (0.0, 1.0),
    }
    values.update(changes)

    with pytest.raises(ConfigError, match=message):
        ScheduleBudget(**values)  # type: ignore[arg-type]


def test_budget_needs_range_for_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(schedules.DEFAULT_PARAM_RANGES, "clock_step")

    with pytest.raises(ConfigError, match="parameter 'step_s' of fault kind 'clock_step'"):
        ScheduleBudget(("clock_step",), ("host-0",), 1, (0.0, 1.0))
    budget = ScheduleBudget(
        ("clock_step",), ("host-0",), 1, (0.0, 1.0), params={"clock_step": {"step_s": (0, 1)}}
    )
    assert budget.param_range("clock_step", "step_s") == (0, 1)


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
@given(scenarios(kinds=("crash", "restart", "clock_offset"), max_faults=3, duration_s=5, drain_s=5))
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
