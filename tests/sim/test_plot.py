"""Timelines: the PNG written by ``simsi sim --plot`` and the artists of the figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simsi.cli import main
from simsi.sim.faults import Fault
from simsi.sim.plot import clock_offsets, incarnation_spans, timeline_figure, write_timeline
from simsi.sim.scenario import ClusterSpec, RunSpec, Scenario, WorkloadSpec, load_scenario
from simsi.sim.world import SimResult, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small(*faults: Fault) -> SimResult:
    scenario = Scenario(
        name="plot-small",
        cluster=ClusterSpec("host-{0..2}", 16),
        workload=WorkloadSpec(instances=6, request_rate=8, alarm_delay_s=(1, 3)),
        faults=faults,
        run=RunSpec(duration_s=12, drain_s=6, seed=2),
    )
    return run_scenario(scenario)


def gids(figure: object, prefix: str) -> list[str]:
    found = []
    for axes in figure.axes:  # type: ignore[attr-defined]
        for artist in [*axes.patches, *axes.lines]:
            gid = artist.get_gid()
            if gid is not None and gid.startswith(prefix):
                found.append(gid)
    return found


def test_one_bar_per_incarnation() -> None:
    result = small(Fault(3.0, "crash", "host-1"), Fault(5.0, "restart", "host-1"))

    figure = timeline_figure(result)

    starts = [event["inc"] for event in result.trace.of_kind("host_start")]
    assert sorted(gids(figure, "incarnation:")) == sorted(f"incarnation:{inc}" for inc in starts)
    assert len(starts) == 4


def test_faults_and_fires_drawn() -> None:
    result = small(Fault(3.0, "crash", "host-1"), Fault(5.0, "restart", "host-1"))

    figure = timeline_figure(result)

    assert gids(figure, "fault:") == ["fault:crash", "fault:restart"]
    assert "fires:host-0#0" in gids(figure, "fires:")
    assert sorted(gids(figure, "clock:")) == ["clock:host-0", "clock:host-1", "clock:host-2"]
    assert gids(figure, "holding:") == []


def test_violating_instance_highlighted() -> None:
    result = run_scenario(load_scenario(SCENARIOS / "deployment-surge-duplicate-identity.toml"))
    first = result.checks.single_instance.first
    assert first is not None

    figure = timeline_figure(result)

    holdings = gids(figure, "holding:")
    assert f"holding:{first.instance_id}:{first.first.inc}" in holdings
    assert f"holding:{first.instance_id}:{first.second.inc}" in holdings
    assert all(gid.startswith(f"holding:{first.instance_id}:") for gid in holdings)
    assert "clock:host-1#1" in gids(figure, "clock:")
    assert "violated" in figure._suptitle.get_text()  # type: ignore[union-attr]


def test_duplicates_get_own_lane() -> None:
    result = small(Fault(2.0, "duplicate_identity", "host-1", {"offset_s": 0.2}))

    spans = {span.label: span for span in incarnation_spans(result.trace.events, 18.0)}

    assert spans["host-1#0"].lane == 0
    assert spans["host-1#1"].lane == 1
    assert spans["host-1#1"].start == 2.0
    assert spans["host-1#0"].ended == "running at the end"


def test_restart_reuses_lane() -> None:
    result = small(Fault(3.0, "crash", "host-1"), Fault(5.0, "restart", "host-1"))

    spans = {span.label: span for span in incarnation_spans(result.trace.events, 18.0)}

    assert spans["host-1#0"].ended == "crashed"
    assert spans["host-1#0"].end == 3.0
    assert spans["host-1#1"].lane == 0


def test_clock_offsets_follow_faults() -> None:
    result = small(
        Fault(2.0, "clock_offset", "host-0", {"offset_s": 0.5}),
        Fault(4.0, "clock_step", "host-0", {"step_s": -0.25}),
    )

    lines = clock_offsets(result.trace.events, ["host-0", "host-1", "host-2"], 18.0)

    points = dict(lines["host-0"])
    assert points[0.0] == pytest.approx(0.0)
    assert points[2.0] == pytest.approx(500.0)
    assert points[4.0] == pytest.approx(250.0)
    assert points[18.0] == pytest.approx(250.0)
    assert all(offset == pytest.approx(0.0) for _, offset in lines["host-1"])


def test_png_written(tmp_path: Path) -> None:
    path = write_timeline(small(Fault(3.0, "stop", "host-2")), tmp_path / "timeline.png")

    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 20_000


def test_cli_plot_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "quickstart.png"

    code = main(["sim", str(SCENARIOS / "quickstart.toml"), "--plot", str(path)])

    capsys.readouterr()
    assert code == 0
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size > 20_000


def test_cli_unwritable_plot_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing-dir" / "plot.png"

    code = main(["sim", str(SCENARIOS / "quickstart.toml"), "--plot", str(path)])

    assert code == 2
    assert "cannot write the plot" in capsys.readouterr().err


def test_hostless_fault_is_vertical_line() -> None:
    result = small(Fault(4.0, "store_outage", None, {"duration_s": 1.0}))

    figure = timeline_figure(result)

    assert gids(figure, "fault:") == ["fault:store_outage"]
    line = next(a for a in figure.axes[0].lines if a.get_gid() == "fault:store_outage")
    assert list(line.get_xdata()) == [4.0, 4.0]


def test_rerun_same_figure_artists() -> None:
    scenario = dataclasses.replace(small().scenario, faults=(Fault(3.0, "crash", "host-1"),))

    first = gids(timeline_figure(run_scenario(scenario)), "")
    second = gids(timeline_figure(run_scenario(scenario)), "")

    assert first == second


def test_restart_moves_to_new_clock() -> None:
    result = small(
        Fault(2.0, "crash", "host-1"),
        Fault(4.0, "restart", "host-1", {"offset_s": 3.0}),
    )

    points = dict(
        clock_offsets(result.trace.events, ["host-0", "host-1", "host-2"], 18.0)["host-1"]
    )

    assert points[0.0] == pytest.approx(0.0)
    assert points[4.0 - 1e-9] == pytest.approx(0.0, abs=1e-3)
    assert points[4.0] == pytest.approx(3000.0)
    assert points[18.0] == pytest.approx(3000.0)
