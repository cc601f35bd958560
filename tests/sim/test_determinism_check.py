"""``simsi sim --check-determinism``: two processes, two hash seeds, one digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simsi.cli import main
from simsi.sim.determinism import (
    DeterminismCheckError,
    check_determinism,
    first_divergence,
    format_determinism,
)
from simsi.sim.scenario import ClusterSpec, RunSpec, Scenario, WorkloadSpec

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"

PLANTED = """
name = "set-order"
[cluster]
hosts = "host-{0..1}"
shards = 8
interface = "tests.sim.planted_interfaces:SetOrderAlarms"
[workload]
instances = 3
request_rate = 2
[run]
duration_s = 5
drain_s = 5
"""


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, so children import ``tests.sim.planted_interfaces``."""
    monkeypatch.chdir(ROOT)
    return ROOT


def planted_file(tmp_path: Path) -> Path:
    path = tmp_path / "set-order.toml"
    path.write_text(PLANTED)
    return path


def test_quickstart_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", str(QUICKSTART), "--seed", "4", "--check-determinism"])

    out = capsys.readouterr().out
    assert code == 0
    assert "deterministic" in out
    assert "PYTHONHASHSEED=0 " in out
    assert "PYTHONHASHSEED=12345" in out
    assert "first diverging" not in out


def test_planted_set_order_caught(
    in_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", str(planted_file(tmp_path)), "--check-determinism"])

    out = capsys.readouterr().out
    assert code == 1
    assert "NOT deterministic" in out
    assert "first diverging trace event: index " in out
    assert out.count("true time ") == 2
    assert '"kind":"alarm_set"' in out or '"kind":"message"' in out


def test_planted_divergence_in_api(in_root: Path, tmp_path: Path) -> None:
    result = check_determinism(planted_file(tmp_path), seed=1)

    divergence = result.divergence
    assert not result.deterministic
    assert divergence is not None
    assert divergence.first is not None
    assert divergence.second is not None
    assert divergence.first != divergence.second
    assert json.loads(divergence.first)["seq"] == divergence.index
    assert divergence.previous is not None
    assert divergence.true_time_s(divergence.first) is not None


def test_planted_json_names_both_events(
    in_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", str(planted_file(tmp_path)), "--check-determinism", "--json"])

    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["deterministic"] is False
    assert [run["python_hash_seed"] for run in data["runs"]] == ["0", "12345"]
    first, second = data["first_divergence"]["events"]
    assert first["seq"] == second["seq"] == data["first_divergence"]["index"]
    assert first != second


def test_same_hash_seed_is_deterministic(in_root: Path, tmp_path: Path) -> None:
    result = check_determinism(planted_file(tmp_path), hash_seeds=("7", "7"))

    assert result.deterministic
    assert result.divergence is None


def test_python_scenario_is_written_first() -> None:
    scenario = Scenario(
        name="tiny",
        cluster=ClusterSpec("host-{0..1}", 4),
        workload=WorkloadSpec(instances=2, request_rate=2),
        run=RunSpec(duration_s=3, drain_s=2),
    )

    result = check_determinism(scenario, seed=2)

    assert result.deterministic
    assert "tiny" in format_determinism(result)


def test_failing_child_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(PLANTED.replace("tests.sim.planted_interfaces", "no_such_module_here"))

    with pytest.raises(DeterminismCheckError, match="PYTHONHASHSEED=0 failed with exit code"):
        check_determinism(path)


def test_bad_hash_seeds_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", str(QUICKSTART), "--check-determinism", "--hash-seeds", "0"])

    assert code == 2
    assert "invalid --hash-seeds '0'" in capsys.readouterr().err


def test_trace_with_check_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(tmp_path / "t.jsonl")
    code = main(["sim", str(QUICKSTART), "--check-determinism", "--trace", trace])

    assert code == 2
    assert "--trace does not apply" in capsys.readouterr().err


def test_first_divergence_shorter_trace(tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    other = tmp_path / "other.jsonl"
    one.write_text('{"t_us":0,"seq":0}\n{"t_us":5,"seq":1}\n')
    other.write_text('{"t_us":0,"seq":0}\n')

    divergence = first_divergence(one, other)

    assert divergence is not None
    assert divergence.index == 1
    assert divergence.second is None
    assert divergence.true_time_s(divergence.first) == 5e-6
    assert first_divergence(one, one) is None
