"""``simsi sweep`` and :func:`sweep`: many seeds, worker processes, failing seeds and replays."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from simsi.cli import main
from simsi.sim.faults import Fault
from simsi.sim.scenario import (
    ClusterSpec,
    Expectations,
    RunSpec,
    Scenario,
    WorkloadSpec,
    load_scenario,
)
from simsi.sim.sweep import format_sweep, run_seed, sweep, sweep_dict
from simsi.sim.world import run_scenario

SMALL = """
name = "sweep-small"
[cluster]
hosts = "host-{0..1}"
shards = 8
[workload]
instances = 4
request_rate = 4
alarm_delay_s = [1, 2]
[run]
duration_s = 4
drain_s = 4
[expect]
single_instance = "SINGLE"
alarms_lost = 0
"""


def small_file(tmp_path: Path, single_instance: str = "holds") -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL.replace("SINGLE", single_instance))
    return path


def tiny(**expect: object) -> Scenario:
    return Scenario(
        name="tiny",
        cluster=ClusterSpec("host-{0..1}", 8),
        workload=WorkloadSpec(instances=4, request_rate=4, alarm_delay_s=(1, 2)),
        run=RunSpec(duration_s=4, drain_s=4),
        expect=Expectations(**expect),  # type: ignore[arg-type]
    )


def test_outcomes_in_seed_order() -> None:
    result = sweep(tiny(single_instance="holds"), [5, 2, 9, 2], workers=1)

    assert [outcome.seed for outcome in result.outcomes] == [2, 5, 9]
    assert result.met
    assert result.failing == []
    assert result.workers == 1


def test_digests_match_single_runs() -> None:
    scenario = tiny()

    result = sweep(scenario, range(3), workers=1)

    for outcome in result.outcomes:
        assert outcome.digest == run_scenario(scenario, seed=outcome.seed).digest


def test_pool_matches_in_process() -> None:
    scenario = tiny(alarms_lost=0)

    pooled = sweep(scenario, range(4), workers=2)
    local = sweep(scenario, range(4), workers=1)

    assert pooled.workers == 2
    assert [o.digest for o in pooled.outcomes] == [o.digest for o in local.outcomes]
    assert [o.violations for o in pooled.outcomes] == [o.violations for o in local.outcomes]


def test_unmet_seeds_fail_with_replay(tmp_path: Path) -> None:
    scenario = load_scenario(small_file(tmp_path, single_instance="violated"))

    result = sweep(scenario, range(3), workers=1)

    assert not result.met
    assert [o.seed for o in result.failing] == [0, 1, 2]
    assert result.failing[0].unmet == ("single_instance = 'violated': got 'holds'",)
    assert result.unmet_by_name == {"single_instance": 3}
    assert result.replay_command(1) == f"simsi sim {scenario.path} --seed 1"


def test_summary_counts_violations() -> None:
    duplicated = dataclasses.replace(
        tiny(single_instance="holds"),
        faults=(Fault(1.0, "duplicate_identity", "host-1"),),
    )

    result = sweep(duplicated, range(3), workers=1)
    rows = {row.key: row for row in result.summary()}

    assert len(result.failing) == 3
    assert rows["single_instance"].seeds == 3
    assert rows["single_instance"].total >= rows["single_instance"].seeds
    assert rows["unmet_expectations"].seeds == len(result.failing)
    assert rows["errors"].total == 0
    assert list(rows) == [
        "single_instance",
        "routing",
        "lost_alarms",
        "phantom_alarms",
        "early_fires",
        "duplicates",
        "unmet_expectations",
        "errors",
    ]


def test_run_error_is_failing_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(scenario: Scenario, seed: int | None = None) -> None:
        raise RuntimeError(f"planted failure for seed {seed}")

    monkeypatch.setattr("simsi.sim.sweep.run_scenario", broken)

    result = sweep(tiny(), [3], workers=1)

    outcome = result.outcomes[0]
    assert not outcome.met
    assert outcome.violations["errors"] == 1
    assert outcome.error is not None
    assert "planted failure for seed 3" in outcome.error
    assert "run raised RuntimeError: planted failure for seed 3" in format_sweep(result)


def test_outcome_pickles() -> None:
    outcome = run_seed(tiny(), 0)

    assert pickle.loads(pickle.dumps(outcome)) == outcome


def test_bad_workers_rejected() -> None:
    with pytest.raises(ValueError, match="invalid workers 0"):
        sweep(tiny(), [0], workers=0)


def test_cli_all_met(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(small_file(tmp_path)), "--seeds", "3", "--workers", "1"])

    captured = capsys.readouterr()
    assert code == 0
    assert "3 seeds, 1 worker," in captured.out
    assert "single instance" in captured.out
    assert "lost alarms" in captured.out
    assert "duplicate fires" in captured.out
    assert "result: all 3 seeds met the expectations" in captured.out
    assert "3/3" in captured.err


def test_cli_failing_lists_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = small_file(tmp_path, single_instance="violated")

    code = main(["sweep", str(path), "--seeds", "2", "--start", "7", "--workers", "2"])

    out = capsys.readouterr().out
    assert code == 1
    assert f"replay: simsi sim {path} --seed 7" in out
    assert f"replay: simsi sim {path} --seed 8" in out
    assert "unmet expectations: single_instance in 2 seeds" in out
    assert "2 of 2 seeds did NOT meet the expectations" in out


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(small_file(tmp_path)), "--seeds", "2", "--workers", "1", "--json"])

    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["seeds"] == 2
    assert data["failing_seeds"] == []
    assert set(data["summary"]) >= {"single_instance", "lost_alarms", "unmet_expectations"}
    assert [o["seed"] for o in data["outcomes"]] == [0, 1]
    assert all(len(o["digest"]) == 64 for o in data["outcomes"])


def test_sweep_dict_replay_only_failing(tmp_path: Path) -> None:
    scenario = load_scenario(small_file(tmp_path, single_instance="violated"))

    data = sweep_dict(sweep(scenario, [0], workers=1))

    assert data["outcomes"][0]["replay"] == f"simsi sim {scenario.path} --seed 0"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--seeds", "0", "invalid --seeds 0"), ("--workers", "0", "invalid --workers 0")],
)
def test_cli_bad_counts_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    args = ["sweep", str(small_file(tmp_path)), "--seeds", "1", option, value]

    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_cli_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "nope.toml", "--seeds", "1"]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err
