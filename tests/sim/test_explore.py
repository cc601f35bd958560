"""``simsi explore`` and :func:`explore`: search, shrink, write and replay a failing schedule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from simsi.cli import main
from simsi.core.errors import ConfigError
from simsi.sim.budget import FaultBudget, NumberSpace
from simsi.sim.explore import explore, judge, with_schedule, write_counterexample
from simsi.sim.faults import Fault
from simsi.sim.scenario import Expectations, load_scenario
from simsi.sim.schedules import budget_for, budget_from_faults
from simsi.sim.world import run_scenario

# A misdeployment: the budget allows a second process to claim host-1, which
# breaks the single-instance guarantee the scenario expects.
MISDEPLOYED = """
name = "misdeployed"
[cluster]
hosts = "host-{0..2}"
shards = 16
[workload]
instances = 10
request_rate = 10
alarm_delay_s = [1, 5]
[[faults]]
at = 5
kind = "crash"
host = "host-1"
[[faults]]
at = 8
kind = "restart"
host = "host-1"
[[faults]]
at = 12
kind = "duplicate_identity"
host = "host-1"
offset_s = 0.05
[run]
duration_s = 15
drain_s = 10
seed = 4
[expect]
single_instance = "holds"
"""

# The same cluster whose budget only crashes and restarts: single instance survives it.
SAFE = (
    MISDEPLOYED.split("[[faults]]\nat = 12")[0]
    + """
[run]
duration_s = 15
drain_s = 10
[expect]
single_instance = "holds"
"""
)


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shrinks_misdeployment_to_one_fault(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MISDEPLOYED))

    result = explore(scenario, examples=30, seed=1)

    assert result.found
    assert result.counterexample is not None
    assert result.verdict is not None
    assert len(result.counterexample.faults) == 1
    assert result.counterexample.faults[0].kind == "duplicate_identity"
    assert result.verdict.unmet == ("single_instance = 'holds': got 'violated'",)
    assert result.counterexample.run.seed == 1


def test_written_file_replays_same_digest(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MISDEPLOYED))
    result = explore(scenario, examples=30, seed=1)

    out = write_counterexample(result, tmp_path / "found.toml")
    replayed = run_scenario(load_scenario(out))

    assert result.verdict is not None
    assert replayed.digest == result.verdict.digest
    assert not replayed.checks.single_instance.holds
    assert "Found by simsi explore" in out.read_text()


def test_same_seed_same_counterexample(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MISDEPLOYED))

    first = explore(scenario, examples=15, seed=7)
    second = explore(scenario, examples=15, seed=7)

    assert first.counterexample is not None
    assert second.counterexample is not None
    assert first.counterexample.faults == second.counterexample.faults
    assert first.runs == second.runs


def test_safe_budget_finds_nothing(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, SAFE))

    result = explore(scenario, examples=8, seed=3)

    assert not result.found
    assert result.counterexample is None
    assert result.runs >= 8


def test_no_expectations_rejected(tmp_path: Path) -> None:
    scenario = dataclasses.replace(
        load_scenario(write(tmp_path, MISDEPLOYED)), expect=Expectations()
    )

    with pytest.raises(ConfigError, match="sets no expectations"):
        explore(scenario, examples=5)


def test_simulator_error_is_finding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MISDEPLOYED))
    real = run_scenario

    def broken(scenario, seed=None):  # type: ignore[no-untyped-def]
        if any(fault.kind == "clock_step" for fault in scenario.faults):
            raise RuntimeError("planted clock step bug")
        return real(scenario, seed)

    monkeypatch.setattr("simsi.sim.explore.run_scenario", broken)
    budget = FaultBudget(
        kinds=("crash", "clock_step"), window_s=(0.0, 20.0), max_count=4, hosts=("host-1",)
    )

    result = explore(scenario, examples=40, seed=2, budget=budget)

    assert result.verdict is not None
    assert result.verdict.error == "RuntimeError: planted clock step bug"
    assert result.counterexample is not None
    assert [fault.kind for fault in result.counterexample.faults] == ["clock_step"]
    assert result.counterexample.faults[0].at == 0.0


def test_judge_reports_unmet(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MISDEPLOYED))

    clean = judge(with_schedule(scenario, ()))
    duplicated = judge(with_schedule(scenario, (Fault(1.0, "duplicate_identity", "host-1"),)))

    assert not clean.failed
    assert duplicated.failed
    assert duplicated.digest is not None


def test_budget_from_faults(tmp_path: Path) -> None:
    budget = budget_from_faults(load_scenario(write(tmp_path, MISDEPLOYED)))

    assert budget.kinds == ("crash", "restart", "duplicate_identity")
    assert budget.hosts == ("host-1",)
    assert budget.count_range() == (0, 6)
    assert budget.window_s == (0.0, 24.999)
    assert budget.params == {"duplicate_identity": {"offset_s": NumberSpace(0.0, 0.05)}}


def test_budget_needs_faults_or_kinds(tmp_path: Path) -> None:
    scenario = with_schedule(load_scenario(write(tmp_path, MISDEPLOYED)), ())

    with pytest.raises(ConfigError, match="no \\[\\[faults\\]\\] and no \\[faults_random\\]"):
        budget_for(scenario)
    budget = budget_for(scenario, ["crash"], 2)
    assert budget.kinds == ("crash",)
    assert budget.hosts is None
    assert budget.count_range() == (0, 2)


def test_cli_writes_and_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path, MISDEPLOYED)
    out = tmp_path / "found.toml"

    code = main(["explore", str(source), "--examples", "30", "--seed", "1", "--out", str(out)])

    text = capsys.readouterr().out
    search = text.split("digest in the search  ")[1].split()[0]
    replay = text.split("digest of the replay  ")[1].split()[0]
    assert code == 1
    assert "found a failing schedule of 1 fault:" in text
    assert "duplicate_identity host-1" in text
    assert search == replay
    assert run_scenario(load_scenario(out)).digest == search
    assert f"replay with: simsi sim {out}" in text


def test_cli_replay_through_sim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "found.toml"
    main(
        [
            "explore",
            str(write(tmp_path, MISDEPLOYED)),
            "--examples",
            "20",
            "--seed",
            "5",
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ]
    )
    found = json.loads(capsys.readouterr().out)

    code = main(["sim", str(out), "--json"])

    replayed = json.loads(capsys.readouterr().out)
    assert code == 1
    assert replayed["digest"] == found["search"]["digest"] == found["replay"]["digest"]
    assert found["written"] == str(out)
    assert len(found["faults"]) == 1


def test_cli_nothing_found_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.toml"

    code = main(
        ["explore", str(write(tmp_path, SAFE)), "--examples", "5", "--seed", "1", "--out", str(out)]
    )

    assert code == 0
    assert "result: no failing schedule in 5 examples" in capsys.readouterr().out
    assert not out.exists()


def test_cli_kinds_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "explore",
            str(write(tmp_path, SAFE)),
            "--examples",
            "20",
            "--seed",
            "1",
            "--kinds",
            "duplicate_identity",
            "--max-faults",
            "1",
            "--out",
            str(tmp_path / "o.toml"),
        ]
    )

    out = capsys.readouterr().out
    assert code == 1
    assert "budget: kinds duplicate_identity on host-1; 0 to 1 faults" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--examples", "0"], "invalid --examples 0"),
        (["--kinds", "meteor"], "invalid budget kinds ['meteor']"),
        (["--max-faults", "-1"], "invalid budget count range 0 to -1"),
        (["--out", "/nonexistent-dir/x.toml"], "directory '/nonexistent-dir' does not exist"),
    ],
)
def test_cli_invalid_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["explore", str(write(tmp_path, MISDEPLOYED)), *args])

    assert code == 2
    assert message in capsys.readouterr().err


# A budget of random faults next to a fixed crash: the drawn duplicate breaks single instance.
WITH_BUDGET = """
name = "budgeted"
[cluster]
hosts = "host-{0..2}"
shards = 16
[workload]
instances = 10
request_rate = 10
alarm_delay_s = [1, 5]
[[faults]]
at = 5
kind = "crash"
host = "host-1"
restart_after_s = 2
[faults_random]
kinds = ["duplicate_identity", "clock_step"]
max = 3
window_s = [1, 20]
hosts = ["host-2"]
[run]
duration_s = 15
drain_s = 10
[expect]
single_instance = "holds"
"""


def test_budget_keeps_fixed_faults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, WITH_BUDGET))

    result = explore(scenario, examples=30, seed=3)

    assert result.counterexample is not None
    assert result.fixed == scenario.faults
    assert result.counterexample.faults_random is None
    assert scenario.faults[0] in result.counterexample.faults
    kinds = sorted(fault.kind for fault in result.counterexample.faults)
    assert kinds == ["crash", "duplicate_identity"]


def test_budget_file_replays_same(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, WITH_BUDGET))
    result = explore(scenario, examples=30, seed=3)

    out = write_counterexample(result, tmp_path / "found.toml")
    replayed = run_scenario(load_scenario(out))

    assert result.verdict is not None
    assert replayed.digest == result.verdict.digest
    assert "[faults_random]" not in out.read_text()
