"""``simsi sim``: report text and JSON, trace files and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simsi.cli import main
from simsi.sim.trace import Trace

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
QUICKSTART = SCENARIOS / "quickstart.toml"
SURGE = SCENARIOS / "deployment-surge-duplicate-identity.toml"

SMALL = """
# A small run for command-line tests.
name = "cli-small"
[cluster]
hosts = "host-{0..1}"
shards = 8
[workload]
instances = 4
request_rate = 5
alarm_delay_s = [1, 2]
[run]
duration_s = 5
drain_s = 5
[expect]
single_instance = "SINGLE"
alarms_lost = 0
"""


def small_file(tmp_path: Path, single_instance: str = "holds") -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL.replace("SINGLE", single_instance))
    return path


def test_quickstart_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", str(QUICKSTART)])

    out = capsys.readouterr().out
    assert code == 0
    assert "scenario quickstart" in out
    assert "single instance  holds" in out
    assert "alarm delivery   holds" in out
    assert "lag p50" in out
    assert "p99" in out
    assert "simulated s per wall s" in out
    assert "result: expectations met" in out


def test_surge_report_names_counterexample(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", str(SURGE)])

    out = capsys.readouterr().out
    assert code == 0
    assert "single instance  violated" in out
    assert "first counterexample: instance 'inst-" in out
    assert "host-1#0" in out
    assert "host-1#1" in out
    assert "single_instance = 'violated': got 'violated', met" in out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", str(small_file(tmp_path)), "--json", "--seed", "3"])

    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["seed"] == 3
    assert data["expectations_met"] is True
    assert data["single_instance"]["holds"] is True
    assert data["alarms"]["lost"] == 0
    assert data["alarms"]["set"] == data["alarms"]["done"]
    assert data["requests"]["sent"] > 0
    assert data["run"]["events"] > 0
    assert len(data["digest"]) == 64


def test_trace_file_matches_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace_path = tmp_path / "trace.jsonl"

    code = main(["sim", str(small_file(tmp_path)), "--json", "--trace", str(trace_path)])

    data = json.loads(capsys.readouterr().out)
    trace = Trace.read_jsonl(trace_path)
    assert code == 0
    assert len(trace) == data["run"]["trace_events"]
    assert trace.digest() == data["digest"]
    first = json.loads(trace_path.read_text().splitlines()[0])
    assert first["kind"] == "host_start"
    assert first["t_us"] == 0


def test_unmet_expectation_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", str(small_file(tmp_path, single_instance="violated"))])

    out = capsys.readouterr().out
    assert code == 1
    assert "single_instance = 'violated': got 'holds', NOT MET" in out
    assert "result: expectations NOT met" in out


def test_invalid_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[workload]\nrequest_rte = 3\n")

    code = main(["sim", str(path)])

    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err
    assert "workload.request_rte" in err
    assert "did you mean 'request_rate'?" in err


def test_missing_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "does-not-exist.toml"])

    assert code == 2
    assert "does-not-exist.toml: file not found" in capsys.readouterr().err


def test_unwritable_trace_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace_path = tmp_path / "missing-dir" / "trace.jsonl"

    code = main(["sim", str(small_file(tmp_path)), "--trace", str(trace_path)])

    assert code == 2
    assert "cannot write the trace" in capsys.readouterr().err
