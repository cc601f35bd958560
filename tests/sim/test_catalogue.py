"""The scenario catalogue: every file meets its expectations on its default seed.

Beyond the verdicts, each scenario's own test checks the numbers that show
its event happened as its header describes.
"""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path

import pytest

from simsi.sim.expectations import evaluate
from simsi.sim.scenario import load_scenario
from simsi.sim.world import SimResult, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
S = 1_000_000
SLOW = {"restart-all-100k-alarms"}
"""Scenarios that take more than a few seconds; they still run in CI."""

FILES = sorted(path.stem for path in SCENARIOS.glob("*.toml"))


@cache
def result_of(name: str) -> SimResult:
    return run_scenario(load_scenario(SCENARIOS / f"{name}.toml"))


def params() -> list[object]:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in FILES]


def test_catalogue_has_twelve_or_more_scenarios() -> None:
    assert len(FILES) >= 12


@pytest.mark.parametrize("name", params())
def test_scenario_meets_expectations(name: str) -> None:
    result = result_of(name)

    verdicts = evaluate(result.scenario.expect, result.checks)
    assert verdicts, f"{name} sets no expectation"
    assert [v for v in verdicts if not v.met] == []


@pytest.mark.parametrize("name", FILES)
def test_scenario_header_names_event_and_outcome(name: str) -> None:
    lines = (SCENARIOS / f"{name}.toml").read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)

    text = " ".join(header)
    assert lines[0].startswith("# ")
    assert "Models" in text
    assert "xpect" in text


@pytest.mark.parametrize("name", FILES)
def test_scenario_sets_an_invariant(name: str) -> None:
    expect = load_scenario(SCENARIOS / f"{name}.toml").expect

    assert expect.single_instance is not None


# -- what each scenario shows ------------------------------------------------------------------


def test_scale_out_adds_host_with_new_configuration() -> None:
    result = result_of("scale-out-rollout")

    steps = [(e["host"], e["action"]) for e in result.trace.of_kind("rollout_step")]
    assert steps == [
        ("host-3", "add"),
        ("host-2", "replace"),
        ("host-1", "replace"),
        ("host-0", "replace"),
    ]
    assert [e["hosts"] for e in result.trace.of_kind("client_view")] == [4]
    assert result.checks.alarms.lost
    assert result.checks.alarms.duplicates > 0


def test_scale_in_removes_host_first() -> None:
    result = result_of("scale-in-rollout")

    steps = [(e["host"], e["action"]) for e in result.trace.of_kind("rollout_step")]
    assert steps[0] == ("host-3", "remove")
    assert next(e["inc"] for e in result.trace.of_kind("host_stop")) == "host-3#0"
    assert not any(e["inc"] == "host-3#1" for e in result.trace.of_kind("host_start"))


def test_force_deleted_pod_keeps_firing_alarms() -> None:
    result = result_of("k8s-force-delete-partitioned-pod")

    old_fires = [
        e for e in result.trace.of_kind("alarm_fire") if e["inc"] == "host-1#0" and e.t_us > 20 * S
    ]
    first = result.checks.single_instance.first
    assert old_fires
    assert first is not None
    assert {first.first.inc, first.second.inc} == {"host-1#0", "host-1#1"}
    lost = [e for e in result.trace.of_kind("message") if e["action"] == "lost"]
    assert lost
    assert {e["reason"] for e in lost} == {"partition:node-a"}


def test_ntp_step_backward_makes_alarms_late_not_early() -> None:
    alarms = result_of("ntp-step-backward").checks.alarms

    assert alarms.early_fires == 0
    assert alarms.max_lag_s is not None
    assert 29.9 <= alarms.max_lag_s <= 30.1


def test_clock_skew_early_fires_are_reported_with_size() -> None:
    alarms = result_of("clock-skew-restart").checks.alarms

    assert alarms.early_fires > 0
    assert alarms.max_early_s == pytest.approx(10.0, abs=0.001)
    largest = alarms.early[0]
    assert largest.set_by == "host-1#0"
    assert largest.fired_by == "host-1#1"
    assert largest.early_s == alarms.max_early_s


def test_store_outage_fails_calls_for_30s() -> None:
    result = result_of("store-outage-30s")

    failed = result.trace.of_kind("store_failed")
    assert failed
    assert min(e.t_us for e in failed) >= 20 * S
    assert max(e.t_us for e in failed) <= 50 * S + S
    assert result.checks.alarms.pending == 0


def test_crash_after_handled_redelivers_that_alarm() -> None:
    result = result_of("crash-after-alarm-handled")

    triggered = result.trace.of_kind("fault_triggered")
    assert len(triggered) == 1
    alarm = triggered[0]["alarm"]
    handled = [e["inc"] for e in result.trace.of_kind("alarm_handled") if e["alarm"] == alarm]
    assert handled == ["host-1#0", "host-1#1"]
    crash = result.trace.of_kind("host_crash")[0]
    assert crash["cause"] == "after_alarm_handled"


def test_short_grace_starts_replacement_during_drain() -> None:
    result = result_of("graceful-stop-short-grace")

    stopping = result.trace.of_kind("host_stopping")[0]
    start = next(e for e in result.trace.of_kind("host_start") if e["inc"] == "host-1#1")
    stop = next(e for e in result.trace.of_kind("host_stop") if e["inc"] == "host-1#0")
    assert start.t_us == stopping.t_us + 5 * S
    assert stop.t_us > start.t_us


def test_blue_green_runs_two_fleets_on_one_store() -> None:
    result = result_of("blue-green-shared-store")

    green = {e["inc"] for e in result.trace.of_kind("host_start") if e["inc"].startswith("green:")}
    served = {e["inc"] for e in result.trace.of_kind("request_served")}
    assert green == {"green:host-0#0", "green:host-1#0", "green:host-2#0"}
    assert served & green
    assert [e["inc"] for e in result.trace.of_kind("host_stop")] == [
        "host-0#0",
        "host-1#0",
        "host-2#0",
    ]


@pytest.mark.slow
def test_restart_all_bounds_concurrent_reads() -> None:
    result = result_of("restart-all-100k-alarms")

    assert result.checks.store.peak_concurrent_reads == 3 * 8
    assert result.checks.alarms.set >= 100_000
    assert result.checks.alarms.done > 10_000
    assert result.checks.alarms.pending > 80_000


def test_partitioned_host_loses_availability_only() -> None:
    result = result_of("partitioned-host")

    timeouts = result.trace.of_kind("request_timeout")
    assert timeouts
    assert all(15 * S <= e.t_us <= 50 * S for e in timeouts)
    assert result.checks.alarms.duplicates == 0


def test_fdb_commit_unknown_exercises_retries() -> None:
    checks = result_of("fdb-commit-unknown").checks

    assert checks.store.unknown_results > 0
    assert checks.store.conflicts > 0
    assert checks.alarms.phantoms == 0
    assert checks.alarms.lost == ()


def test_random_mix_draws_six_faults() -> None:
    result = result_of("random-fault-mix")

    faults = result.trace.of_kind("fault")
    assert len(faults) == 6
    assert all(e["drawn"] for e in faults)
    times = [e.t_us for e in faults]
    assert all(5 * S <= t <= 60 * S for t in times)
    assert all(later - earlier >= 3 * S - 1 for earlier, later in itertools.pairwise(times))


def test_scale_out_with_hosts_stopped_moves_shards_safely() -> None:
    result = result_of("scale-out-stopped")
    starts = [event for event in result.trace if event.kind == "host_start"]
    assert [event["inc"] for event in starts] == [
        "host-0#0", "host-1#0", "host-2#0", "host-3#0", "host-0#1", "host-1#1", "host-2#1",
    ]  # fmt: skip
    served_by_new_host = [
        event
        for event in result.trace
        if event.kind == "request_served"
        and event["inc"] == "host-3#0"
        and event["outcome"] == "ok"
    ]
    assert served_by_new_host
    assert result.checks.alarms.lost == ()
    assert result.checks.single_instance.holds
