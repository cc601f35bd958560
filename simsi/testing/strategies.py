"""Hypothesis strategies for simulated clusters: shapes, workloads, fault schedules, scenarios.

Use them in your own property tests to run your interface class through many
cluster shapes and fault schedules::

    from hypothesis import given, settings
    from simsi.sim.world import run_scenario
    from simsi.testing import strategies as sst


    @settings(max_examples=20, deadline=None)
    @given(sst.scenarios(interface="myapp.carts:Cart", kinds=("crash", "stop")))
    def test_single_instance(scenario):
        result = run_scenario(scenario)
        assert result.checks.single_instance.holds, result.checks.single_instance.first

Each strategy shrinks toward a small case: one host, few shards and
instances, a low request rate, and fault schedules with few, early faults.
Every scenario they build passes :func:`~simsi.sim.scenario.validate_scenario`.
Fault schedules are bounded by a :class:`~simsi.sim.budget.FaultBudget`, the
type of a scenario's ``[faults_random]`` table. To search the schedules of a
scenario you already have, use ``simsi explore`` or
``fault_schedules(budget_for(scenario), hosts, fixed=scenario.faults)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import strategies as st

from simsi.core.placement import expand_hosts
from simsi.sim.budget import ChoiceSpace, FaultBudget, NumberSpace, ParamSpace
from simsi.sim.faults import Fault
from simsi.sim.scenario import ClusterSpec, Expectations, RunSpec, Scenario, WorkloadSpec
from simsi.sim.schedules import budget_for, budget_from_faults, valid_schedule
from simsi.sim.schedules import schedules as _schedules

__all__ = [
    "ChoiceSpace",
    "FaultBudget",
    "NumberSpace",
    "budget_for",
    "budget_from_faults",
    "cluster_shapes",
    "fault_schedules",
    "scenarios",
    "valid_schedule",
    "workloads",
]


def fault_schedules(
    budget: FaultBudget, cluster_hosts: Sequence[str], *, fixed: Sequence[Fault] = ()
) -> st.SearchStrategy[tuple[Fault, ...]]:
    """Return a strategy of valid fault schedules within ``budget``, sorted by time.

    Faults that cannot apply where they fall (a crash of a host that is down)
    or that come closer than ``budget.min_gap_s`` to the previous one are
    dropped, so a schedule may hold fewer faults than drawn. Example::

        budget = FaultBudget(
            kinds=("crash", "clock_step"),
            window_s=(0.0, 30.0),
            max_count=4,
            hosts=("host-1",),
            params={"crash": {"restart_after_s": NumberSpace(1.0, 5.0)}},
        )

        @given(fault_schedules(budget, ["host-0", "host-1", "host-2"]))
        def test_crashes(schedule): ...

    Args:
        budget: kinds, count, time window, hosts, gap and parameter spaces.
        cluster_hosts: every host of the cluster, for the schedule check.
        fixed: faults every run has; drawn faults must apply alongside them and
            are not part of the drawn schedule.

    Raises:
        ConfigError: the budget cannot draw schedules.
    """
    return _schedules(budget, cluster_hosts, fixed=fixed)


def cluster_shapes(
    *,
    max_hosts: int = 5,
    max_shards: int = 256,
    prefixes: Sequence[str] = ("host-",),
    interface: str = "counter",
) -> st.SearchStrategy[ClusterSpec]:
    """Return a strategy of clusters: a host pattern, a shard count and ``interface``.

    A cluster of one host uses a pattern without a range (``"host-0"``); larger
    ones use ``"{prefix}{0..n-1}"``. Shards range from the host count to
    ``max_shards``. Example::

        @given(cluster_shapes(max_hosts=3, interface="myapp.carts:Cart"))
        def test_any_shape(cluster): ...

    Raises:
        ValueError: ``max_hosts`` is below 1, ``max_shards`` below ``max_hosts``,
            or ``prefixes`` is empty.
    """
    if max_hosts < 1 or max_shards < max_hosts or not prefixes:
        raise ValueError(
            f"invalid cluster bounds max_hosts={max_hosts}, max_shards={max_shards}, "
            f"prefixes={list(prefixes)!r}: expected 1 <= max_hosts <= max_shards and a prefix"
        )

    @st.composite
    def build(draw: st.DrawFn) -> ClusterSpec:
        prefix = draw(st.sampled_from(list(prefixes)))
        count = draw(st.integers(1, max_hosts))
        hosts = f"{prefix}0" if count == 1 else f"{prefix}{{0..{count - 1}}}"
        shards = draw(st.integers(count, max_shards))
        return ClusterSpec(hosts, shards, interface)

    return build()


def workloads(
    *,
    max_instances: int = 50,
    max_request_rate: float = 20.0,
    max_alarms_per_request: int = 2,
    max_alarm_delay_s: float = 20.0,
) -> st.SearchStrategy[WorkloadSpec]:
    """Return a strategy of workloads within the given bounds.

    Rates and delays are drawn in tenths of a unit, so they read well in a
    scenario file. Example::

        @given(workloads(max_instances=10, max_request_rate=5))
        def test_light_load(workload): ...

    Raises:
        ValueError: a bound is below its smallest sensible value (1 instance,
            0.1 requests per second, 0 alarms, 0.1 seconds of delay).
    """
    if max_instances < 1 or max_request_rate < 0.1 or max_alarms_per_request < 0:
        raise ValueError(
            f"invalid workload bounds max_instances={max_instances}, "
            f"max_request_rate={max_request_rate}, max_alarms_per_request="
            f"{max_alarms_per_request}: expected >= 1, >= 0.1 and >= 0"
        )
    if max_alarm_delay_s < 0.1:
        raise ValueError(f"invalid max_alarm_delay_s {max_alarm_delay_s}: expected >= 0.1")

    def tenths(low: float, high: float) -> st.SearchStrategy[float]:
        return st.integers(round(low * 10), round(high * 10)).map(lambda value: value / 10)

    @st.composite
    def build(draw: st.DrawFn) -> WorkloadSpec:
        low = draw(tenths(0.1, max_alarm_delay_s))
        high = draw(tenths(low, max_alarm_delay_s))
        return WorkloadSpec(
            instances=draw(st.integers(1, max_instances)),
            request_rate=draw(tenths(0.1, max_request_rate)),
            alarms_per_request=draw(st.integers(0, max_alarms_per_request)),
            alarm_delay_s=(low, high),
            request_timeout_s=5.0,
        )

    return build()


def scenarios(
    *,
    interface: str = "counter",
    kinds: Sequence[str] = ("crash", "stop"),
    max_faults: int = 4,
    max_hosts: int = 4,
    max_shards: int = 64,
    duration_s: float = 20.0,
    drain_s: float = 20.0,
    params: Mapping[str, Mapping[str, ParamSpace]] | None = None,
    expect: Expectations | None = None,
    seeds: st.SearchStrategy[int] | None = None,
    loads: st.SearchStrategy[WorkloadSpec] | None = None,
) -> st.SearchStrategy[Scenario]:
    """Return a strategy of whole scenarios: a cluster, a light workload and a fault schedule.

    Faults fall anywhere in the run but its last millisecond and target any host.
    Crashes and stops draw ``restart_after_s`` from the kinds' default space, so
    hosts come back. The seed is 0 unless ``seeds`` draws it. Example::

        @settings(max_examples=10, deadline=None)
        @given(scenarios(kinds=("crash", "stop", "clock_step"), max_faults=3))
        def test_no_alarm_lost(scenario):
            result = run_scenario(scenario)
            assert not result.checks.alarms.lost

    Args:
        interface: the interface every cluster runs.
        kinds: fault kinds to draw.
        max_faults: the maximum number of faults in one schedule.
        max_hosts: the maximum number of hosts in one cluster.
        max_shards: the maximum number of shards.
        duration_s: true seconds the workload runs.
        drain_s: true seconds the run goes on after the workload.
        params: per kind, parameter spaces that replace the kinds' defaults, as
            in a :class:`FaultBudget`.
        expect: the scenario's expectations (none by default).
        seeds: a strategy for the run's seed.
        loads: a strategy for the workload; defaults to light workloads of at
            most 20 instances and 10 requests per second.
    """
    workload_strategy = (
        loads
        if loads is not None
        else workloads(max_instances=20, max_request_rate=10.0, max_alarm_delay_s=10.0)
    )
    end_s = duration_s + drain_s

    @st.composite
    def build(draw: st.DrawFn) -> Scenario:
        cluster = draw(
            cluster_shapes(max_hosts=max_hosts, max_shards=max_shards, interface=interface)
        )
        hosts = tuple(expand_hosts(cluster.hosts))
        # NOTE: faults stop 1 ms before the end because World.run raises ValueError
        # when an event falls exactly on the end time.
        budget = FaultBudget(
            kinds=tuple(kinds),
            window_s=(0.0, end_s - 0.001),
            max_count=max_faults,
            params=params or {},
        )
        workload = draw(workload_strategy)
        faults = draw(fault_schedules(budget, hosts))
        seed = draw(seeds) if seeds is not None else 0
        return Scenario(
            name="generated",
            cluster=cluster,
            workload=workload,
            faults=faults,
            run=RunSpec(duration_s=duration_s, drain_s=drain_s, seed=seed),
            expect=expect or Expectations(),
        )

    return build()
