"""Report fields: availability, alarm lag quantiles, early and duplicate fires, run rates."""

from __future__ import annotations

from simsi.sim.faults import Fault
from simsi.sim.report import availability, format_report, report_dict
from simsi.sim.scenario import ClusterSpec, RunSpec, Scenario, WorkloadSpec
from simsi.sim.world import SimResult, run_scenario


def run(*faults: Fault) -> SimResult:
    return run_scenario(
        Scenario(
            name="report",
            cluster=ClusterSpec("host-{0..2}", 16),
            workload=WorkloadSpec(instances=8, request_rate=10, alarm_delay_s=(1, 3)),
            faults=faults,
            run=RunSpec(duration_s=15, drain_s=10, seed=3),
        )
    )


def test_availability_all_served() -> None:
    result = run()

    data = availability(result.checks)

    assert data["sent"] == result.checks.routing.sent
    assert data["served"] == data["sent"]
    assert data["failed"] == 0
    assert data["unanswered"] == 0
    assert data["fraction"] == 1.0


def test_availability_drops_on_crash() -> None:
    result = run(Fault(2.0, "crash", "host-1"))

    data = availability(result.checks)

    assert data["failed"] > 0
    assert data["served"] + data["failed"] + data["unanswered"] == data["sent"]
    assert 0.0 < data["fraction"] < 1.0
    assert data["fraction"] == data["served"] / data["sent"]


def test_report_dict_has_every_field() -> None:
    data = report_dict(run(Fault(2.0, "duplicate_identity", "host-1", {"offset_s": 0.5})))

    alarms = data["alarms"]
    assert {"lag_p50_s", "lag_p99_s", "lag_max_s", "early_fires", "max_early_s"} <= set(alarms)
    assert alarms["duplicates"] >= 0
    assert alarms["lag_p50_s"] <= alarms["lag_p99_s"] <= alarms["lag_max_s"]
    assert alarms["early_fires"] > 0
    assert alarms["max_early_s"] > 0
    assert data["availability"]["fraction"] is not None
    assert data["run"]["events"] > 0
    assert data["run"]["events_per_wall_s"] > 0
    assert data["run"]["sim_s_per_wall_s"] > 0


def test_text_report_shows_availability() -> None:
    text = format_report(run(Fault(2.0, "crash", "host-1")))

    assert "availability " in text
    assert " failed, " in text
    assert "per wall s)" in text
