"""Whole simulated runs: the catalogue scenarios, faults, crashed incarnations and hooks."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from simsi.core.alarms import Alarm, DoneReason
from simsi.core.errors import DeadIncarnationError, LifecycleError
from simsi.core.placement import Placement, internal_id
from simsi.sim.faults import Fault
from simsi.sim.host import Incarnation, IncarnationState
from simsi.sim.report import evaluate, expectations_met, format_report, report_dict
from simsi.sim.scenario import (
    ClusterSpec,
    Expectations,
    NetworkSpec,
    RunSpec,
    Scenario,
    StoreSpec,
    WorkloadSpec,
    load_scenario,
)
from simsi.sim.store import run_now
from simsi.sim.world import SimResult, World, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
S = 1_000_000


def small(**changes: object) -> Scenario:
    """A fast three-host scenario; keyword arguments replace its fields."""
    base = Scenario(
        name="small",
        cluster=ClusterSpec("host-{0..2}", 16),
        workload=WorkloadSpec(instances=10, request_rate=10, alarm_delay_s=(1, 5)),
        run=RunSpec(duration_s=20, drain_s=15, seed=1),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def events_of(result: SimResult, kind: str) -> list[dict[str, object]]:
    return [event.to_dict() for event in result.trace if event.kind == kind]


# -- the catalogue ---------------------------------------------------------------------------------


def test_quickstart_restart_delivers_crashed_hosts_alarms() -> None:
    result = run_scenario(load_scenario(SCENARIOS / "quickstart.toml"))

    set_by_crashed = {
        (e["inst"], e["alarm"]) for e in events_of(result, "alarm_set") if e["inc"] == "host-1#0"
    }
    done_by_restarted = {
        (e["inst"], e["alarm"]) for e in events_of(result, "alarm_done") if e["inc"] == "host-1#1"
    }
    assert [e["inc"] for e in events_of(result, "host_crash")] == ["host-1#0"]
    assert len(set_by_crashed & done_by_restarted) > 0
    assert result.checks.alarms.lost == ()
    assert result.checks.alarms.set == result.checks.alarms.done
    assert result.stats.stored_alarms_left == 0


def test_rolling_update_replaces_hosts_highest_first() -> None:
    result = run_scenario(load_scenario(SCENARIOS / "statefulset-rolling-update.toml"))

    stops = [e["inc"] for e in events_of(result, "host_stop")]
    starts = [(e["inc"], e["t_us"]) for e in events_of(result, "host_start")][3:]
    assert stops == ["host-2#0", "host-1#0", "host-0#0"]
    assert [inc for inc, _ in starts] == ["host-2#1", "host-1#1", "host-0#1"]
    stop_times = [e["t_us"] for e in events_of(result, "host_stop")]
    for (_inc, started), stopped in zip(starts, stop_times, strict=True):
        assert started == stopped + 2 * S


def test_surge_reports_instance_incarnations_and_overlap() -> None:
    result = run_scenario(load_scenario(SCENARIOS / "deployment-surge-duplicate-identity.toml"))

    first = result.checks.single_instance.first
    assert first is not None
    assert {first.first.inc, first.second.inc} == {"host-1#0", "host-1#1"}
    assert first.first.host == first.second.host == "host-1"
    assert 15 * S <= first.start_us < first.end_us <= 30 * S
    assert result.checks.alarms.duplicates > 0


# -- crashed incarnations --------------------------------------------------------------------------


def test_crashed_incarnation_store_write_refused() -> None:
    scenario = small(store=StoreSpec(latency_ms=(0, 0)), workload=WorkloadSpec(request_rate=1))
    world = World(scenario)
    world.run()
    incarnation = world.incarnation("host-0#0")
    alarm = Alarm("inst-x", internal_id("inst-x"), "late", fires_at_us=10**15)
    shard = world.placement.shard_of("inst-x")

    assert run_now(incarnation.store.set_alarm(shard, alarm)) is True
    run_now(
        incarnation.store.mark_alarm_done(shard, alarm.internal_id, "late", DoneReason.SUCCEEDED)
    )
    world.crash_host("host-0", "all")
    stored_before = world.store.all_alarms(world.placement.shards)

    with pytest.raises(DeadIncarnationError):
        run_now(incarnation.store.set_alarm(shard, alarm))
    with pytest.raises(DeadIncarnationError):
        run_now(
            incarnation.store.mark_alarm_done(shard, alarm.internal_id, "a", DoneReason.SUCCEEDED)
        )

    assert world.store.all_alarms(world.placement.shards) == stored_before
    rejected = [e for e in world.trace if e.kind == "effect_rejected"]
    assert [e["inc"] for e in rejected] == ["host-0#0", "host-0#0"]
    assert incarnation.state is IncarnationState.CRASHED


def test_crashed_incarnation_records_nothing_after_crash() -> None:
    # Slow store calls leave writes in flight at the crash.
    scenario = small(
        store=StoreSpec(latency_ms=(200, 400)),
        faults=(Fault(8.0, "crash", "host-1"), Fault(12.0, "restart", "host-1")),
    )

    result = run_scenario(scenario)

    crash = next(e for e in result.trace if e.kind == "host_crash")
    later = [e for e in result.trace if e.seq > crash.seq and e.get("inc") == "host-1#0"]
    assert later == []
    assert result.checks.single_instance.holds
    assert result.checks.alarms.lost == ()


def test_crash_between_handler_and_mark_done_redelivers() -> None:
    world = World(small())
    crashed: list[str] = []

    def crash_once(incarnation: Incarnation, alarm: Alarm) -> None:
        if not crashed and incarnation.host_id == "host-0":
            crashed.append(alarm.alarm_id)
            incarnation.crash()
            world.env.process(_restart_later(world, "host-0", 1.0))

    world.services.alarm_handled_hooks.append(crash_once)
    result = world.run()

    assert len(crashed) == 1
    handled = [e for e in result.trace if e.kind == "alarm_handled" and e["alarm"] == crashed[0]]
    assert [e["inc"] for e in handled] == ["host-0#0", "host-0#1"]
    assert result.checks.alarms.duplicates == 1
    assert result.checks.alarms.lost == ()


def _restart_later(world: World, host_id: str, delay: float):  # type: ignore[no-untyped-def]
    yield world.env.timeout(delay)
    world.start_host(host_id)


# -- faults ------------------------------------------------------------------------------------------


def test_clock_step_forward_fires_alarms_early() -> None:
    scenario = small(faults=(Fault(10.0, "clock_step", "host-0", {"step_s": 3.0}),))

    result = run_scenario(scenario)

    alarms = result.checks.alarms
    assert alarms.early_fires > 0
    assert 2.99 <= alarms.max_early_s <= 3.0
    assert alarms.lost == ()


def test_clock_offset_behind_delays_alarms() -> None:
    scenario = small(
        faults=(
            Fault(8.0, "crash", "host-2"),
            Fault(9.0, "clock_offset", "host-2", {"offset_s": -2.0}),
            Fault(10.0, "restart", "host-2"),
        )
    )

    result = run_scenario(scenario)

    # A clock behind the setter's delays alarms; none fires early.
    assert result.checks.alarms.early_fires == 0
    assert result.checks.alarms.lags_s[-1] >= 1.9


def test_clock_drift_changes_host_reading() -> None:
    world = World(small(faults=(Fault(0.0, "clock_drift", "host-1", {"drift_ppm": 1000.0}),)))
    world.run()

    clock = world.host_clock("host-1")
    assert clock.drift_ppm == 1000.0
    assert clock.read(35.0) - clock.read(0.0) == pytest.approx(35.035)


def test_store_outage_fails_calls_without_losing_alarms() -> None:
    scenario = small(faults=(Fault(5.0, "store_outage", None, {"duration_s": 3.0}),))

    result = run_scenario(scenario)

    failed = events_of(result, "store_failed")
    served = events_of(result, "request_served")
    assert result.stats.store_failures > 0
    assert len(failed) > 0
    assert all(e["t_us"] >= 5 * S for e in failed)
    assert any(e["outcome"] == "handler_error" for e in served)
    assert result.checks.alarms.lost == ()


def test_network_loss_times_out_requests() -> None:
    scenario = small(network=NetworkSpec(latency_ms=(1, 5), loss=0.2))

    result = run_scenario(scenario)

    lost = [e for e in result.trace if e.kind == "message" and e["action"] == "lost"]
    outcomes = result.checks.routing.client_outcomes
    assert len(lost) > 0
    assert outcomes["timeout"] > 0
    assert outcomes["ok"] + outcomes["timeout"] == result.checks.routing.sent
    assert result.checks.single_instance.holds


def test_graceful_stop_deactivates_instances() -> None:
    result = run_scenario(small(faults=(Fault(10.0, "stop", "host-0"),)))

    activated = {e["inst"] for e in events_of(result, "activate") if e["inc"] == "host-0#0"}
    deactivated = {e["inst"] for e in events_of(result, "deactivate") if e["inc"] == "host-0#0"}
    assert activated
    assert deactivated == activated
    assert [e["inc"] for e in events_of(result, "host_stop")] == ["host-0#0"]


def test_replace_starts_replacement_after_stop() -> None:
    result = run_scenario(small(faults=(Fault(6.0, "replace", "host-2", {"start_delay_s": 1.5}),)))

    stop = events_of(result, "host_stop")[0]
    start = events_of(result, "host_start")[-1]
    assert start["inc"] == "host-2#1"
    assert start["t_us"] == stop["t_us"] + 1_500_000
    assert result.checks.single_instance.holds


def test_duplicate_identity_violation_detected_in_small_run() -> None:
    scenario = small(faults=(Fault(5.0, "duplicate_identity", "host-0"),))

    result = run_scenario(scenario)

    assert not result.checks.single_instance.holds


def test_user_interface_class_with_retries() -> None:
    scenario = small(
        cluster=ClusterSpec("host-{0..2}", 16, "tests.sim.sample_interfaces:FlakyAlarms"),
        expect=Expectations(alarms_lost=0, single_instance="holds"),
    )

    result = run_scenario(scenario)

    alarms = result.checks.alarms
    assert alarms.set > 0
    assert alarms.fired == 2 * alarms.set
    assert alarms.done == alarms.set
    assert len(events_of(result, "alarm_retry")) == alarms.set
    assert expectations_met(result)


def test_unmet_expectation_reported() -> None:
    result = run_scenario(small(expect=Expectations(single_instance="violated")))

    verdicts = evaluate(result.scenario.expect, result.checks)
    assert [(v.name, v.expected, v.actual, v.met) for v in verdicts] == [
        ("single_instance", "violated", "holds", False)
    ]
    assert not expectations_met(result)


# -- determinism ---------------------------------------------------------------------------------------


def test_same_seed_same_digest() -> None:
    scenario = small(faults=(Fault(5.0, "crash", "host-1"), Fault(7.0, "restart", "host-1")))

    first = run_scenario(scenario)
    second = run_scenario(scenario)

    assert first.digest == second.digest
    assert len(first.trace) == len(second.trace)
    assert first.stats.events == second.stats.events


def test_different_seed_different_digest() -> None:
    scenario = small()

    assert run_scenario(scenario, seed=1).digest != run_scenario(scenario, seed=2).digest


def test_seed_override_recorded() -> None:
    result = run_scenario(small(), seed=42)

    assert result.seed == 42
    assert result.scenario.run.seed == 42


def test_result_pickles_for_process_pools() -> None:
    result = run_scenario(small())

    copy = pickle.loads(pickle.dumps(result))

    assert copy.digest == result.digest
    assert copy.trace.digest() == result.digest
    assert copy.checks == result.checks


def test_stale_client_view_counts_not_owner() -> None:
    world = World(small())
    world.client.view = Placement(["host-2", "host-0", "host-1"], 16)

    result = world.run()

    routing = result.checks.routing
    assert routing.not_owner > 0
    assert routing.client_outcomes["not_owner"] == routing.not_owner
    assert routing.holds


def test_world_runs_only_once() -> None:
    world = World(small(run=RunSpec(duration_s=1, drain_s=0)))
    world.run()

    with pytest.raises(LifecycleError, match="already run"):
        world.run()


def test_restart_of_running_host_skipped() -> None:
    world = World(small())
    world.env.process(_restart_at_5s(world))

    result = world.run()

    skipped = report_dict(result)["faults"]["skipped"]
    assert len(skipped) == 1
    assert skipped[0]["at_s"] == 5.0
    assert "'host-0'" in skipped[0]["reason"]
    assert "fault skipped at 5.000 s" in format_report(result)


def _restart_at_5s(world: World):  # type: ignore[no-untyped-def]
    yield world.env.timeout(5.0)
    world.start_host("host-0")


def test_fault_at_end_time_runs() -> None:
    scenario = small(faults=(Fault(at=35.0, kind="crash", host="host-0"),))
    result = run_scenario(scenario)
    assert result.stats.sim_s == 35.0
    faults = events_of(result, "fault")
    assert [(event["fault"], event["host"]) for event in faults] == [("crash", "host-0")]
