"""Scenario loading: the catalogue loads, bad files name the file, key, value and fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simsi.core.errors import ConfigError, ScenarioError
from simsi.sim.faults import FAULT_KINDS, Fault, check_schedule
from simsi.sim.scenario import (
    ClusterSpec,
    RunSpec,
    Scenario,
    WorkloadSpec,
    load_scenario,
    scenario_from_dict,
    validate_scenario,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

GOOD = """
name = "t"
[cluster]
hosts = "host-{0..2}"
shards = 16
[workload]
instances = 5
request_rate = 2
[run]
duration_s = 10
drain_s = 5
"""


def write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> ScenarioError:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    error = info.value
    assert error.path == str(path)
    assert str(path) in str(error)
    return error


@pytest.mark.parametrize(
    "name", ["quickstart", "statefulset-rolling-update", "deployment-surge-duplicate-identity"]
)
def test_catalogue_scenario_loads(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")

    assert scenario.name == name
    assert scenario.path == str(SCENARIOS / f"{name}.toml")
    assert scenario.expect.single_instance in ("holds", "violated")
    assert scenario.faults


def test_catalogue_scenarios_have_header_comment() -> None:
    for path in sorted(SCENARIOS.glob("*.toml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# "), f"{path.name} has no header comment naming its event"


def test_quickstart_values() -> None:
    scenario = load_scenario(SCENARIOS / "quickstart.toml")

    assert scenario.cluster == ClusterSpec("host-{0..2}", 64, "counter")
    assert [(f.at, f.kind, f.host) for f in scenario.faults] == [
        (20.0, "crash", "host-1"),
        (26.0, "restart", "host-1"),
    ]
    assert scenario.expect.alarms_lost == 0
    assert scenario.run.end_s == 70.0


def test_defaults_fill_missing_tables(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD, "good.toml"))

    assert scenario.network.latency_ms == (1.0, 5.0)
    assert scenario.store.kind == "sim"
    assert scenario.workload.alarms_per_request == 1
    assert scenario.expect.single_instance is None
    assert scenario.faults == ()


def test_python_scenario_round_trips() -> None:
    scenario = Scenario(
        name="py",
        workload=WorkloadSpec(instances=3),
        faults=(Fault(5.0, "crash", "host-0"), Fault(6.0, "restart", "host-0")),
        run=RunSpec(duration_s=10, drain_s=5, seed=4),
    )

    checked = validate_scenario(scenario)

    assert checked == scenario
    assert scenario_from_dict(scenario.to_dict()) == scenario


def test_python_scenario_errors_name_key() -> None:
    scenario = Scenario(workload=WorkloadSpec(request_rate=-1))

    with pytest.raises(ScenarioError) as info:
        validate_scenario(scenario)

    assert info.value.key == "workload.request_rate"
    assert info.value.path is None
    assert "-1" in str(info.value)


def test_with_seed_replaces_only_seed() -> None:
    scenario = Scenario(run=RunSpec(duration_s=7, seed=1))

    assert scenario.with_seed(9).run == RunSpec(duration_s=7, seed=9)


# -- bad files ----------------------------------------------------------------------------------


def test_missing_file_named() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("no/such/scenario.toml")

    assert "no/such/scenario.toml" in str(info.value)
    assert "not found" in str(info.value)


def test_invalid_toml_reports_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "[cluster\nhosts = 1\n")

    assert "invalid TOML" in str(error)
    assert "line 1" in str(error)


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("request_rate", "request_rte"))

    assert error.key == "workload.request_rte"
    assert "did you mean 'request_rate'?" in str(error)


def test_unknown_section_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + "\n[netwrok]\nloss = 0.1\n")

    assert error.key == "netwrok"
    assert "did you mean 'network'?" in str(error)


def test_wrong_type_names_value_and_fix(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("request_rate = 2", 'request_rate = "fast"'))

    assert error.key == "workload.request_rate"
    assert "'fast'" in str(error)
    assert "request_rate = 10" in str(error)


def test_reversed_range_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + "\n[network]\nlatency_ms = [5, 1]\n")

    assert error.key == "network.latency_ms"
    assert "[5, 1]" in str(error)
    assert "min <= max" in str(error)


def test_loss_of_one_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + "\n[network]\nloss = 1.0\n")

    assert error.key == "network.loss"
    assert "1.0" in str(error)


def test_too_few_shards_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("shards = 16", "shards = 2"))

    assert error.key == "cluster.shards"
    assert "at least 3 shards" in str(error)


def test_bad_host_pattern_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("host-{0..2}", "host-{2..0}"))

    assert error.key == "cluster.hosts"
    assert "reversed" in str(error)


def test_unknown_interface_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace("shards = 16", 'shards = 16\ninterface = "countr"'))

    assert error.key == "cluster.interface"
    assert "'countr'" in str(error)
    assert "pkg.module:Class" in str(error)


def test_unimportable_interface_rejected(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, GOOD.replace("shards = 16", 'shards = 16\ninterface = "no_such_pkg:Thing"')
    )

    assert error.key == "cluster.interface"
    assert "no_such_pkg" in str(error)


def test_unknown_store_kind_lists_kinds(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + '\n[store]\nkind = "etcd"\n')

    assert error.key == "store.kind"
    assert "'etcd'" in str(error)
    assert "'foundationdb'" in str(error)


def test_unknown_fault_kind_lists_kinds(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + '\n[[faults]]\nat = 1\nkind = "explode"\nhost = "host-0"\n')

    assert error.key == "faults[0].kind"
    assert "'explode'" in str(error)
    assert "'crash'" in str(error)


def test_fault_host_outside_pattern(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + '\n[[faults]]\nat = 1\nkind = "crash"\nhost = "host-7"\n')

    assert error.key == "faults[0].host"
    assert "'host-7'" in str(error)
    assert "'host-0'" in str(error)


def test_fault_after_run_end_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + '\n[[faults]]\nat = 99\nkind = "crash"\nhost = "host-0"\n')

    assert error.key == "faults[0].at"
    assert "99" in str(error)
    assert "<= 15" in str(error)


def test_fault_unknown_param_rejected(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, GOOD + '\n[[faults]]\nat = 1\nkind = "crash"\nhost = "host-0"\ndelay = 3\n'
    )

    assert error.key == "faults[0].delay"
    assert "Valid keys: at, host, incarnation, kind" in str(error)


def test_fault_missing_required_param(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, GOOD + '\n[[faults]]\nat = 1\nkind = "clock_step"\nhost = "host-0"\n'
    )

    assert error.key == "faults[0].step_s"
    assert "missing required key" in str(error)
    assert "step_s = -3" in str(error)


def test_fault_host_on_hostless_kind_rejected(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        GOOD + '\n[[faults]]\nat = 1\nkind = "store_outage"\nhost = "host-0"\nduration_s = 2\n',
    )

    assert error.key == "faults[0].host"
    assert "targets no host" in str(error)


def test_restart_of_running_host_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + '\n[[faults]]\nat = 1\nkind = "restart"\nhost = "host-2"\n')

    assert error.key == "faults[0]"
    assert "restart of 'host-2' at 1 s" in str(error)
    assert "still running" in str(error)


def test_crash_of_crashed_host_rejected(tmp_path: Path) -> None:
    faults = (
        '\n[[faults]]\nat = 3\nkind = "crash"\nhost = "host-1"\n'
        '\n[[faults]]\nat = 2\nkind = "crash"\nhost = "host-1"\n'
    )

    error = load_error(tmp_path, GOOD + faults)

    assert error.key == "faults[0]"
    assert "crash of 'host-1' at 3 s" in str(error)


def test_bad_expectation_value(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + '\n[expect]\nsingle_instance = "ok"\n')

    assert error.key == "expect.single_instance"
    assert "'ok'" in str(error)
    assert "'holds', 'violated'" in str(error)


def test_negative_expected_count_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD + "\n[expect]\nalarms_lost = -1\n")

    assert error.key == "expect.alarms_lost"
    assert "-1" in str(error)


def test_faults_must_be_array_of_tables(tmp_path: Path) -> None:
    error = load_error(tmp_path, GOOD.replace('name = "t"', 'name = "t"\nfaults = 3'))

    assert error.key == "faults"
    assert "array of tables" in str(error)


def test_scenario_error_is_config_error() -> None:
    assert issubclass(ScenarioError, ConfigError)


# -- the schedule check ---------------------------------------------------------------------------


def test_schedule_duplicate_then_stop_oldest_is_valid() -> None:
    faults = [
        Fault(1, "duplicate_identity", "host-1"),
        Fault(2, "stop", "host-1", {"incarnation": "oldest"}),
        Fault(3, "crash", "host-1"),
        Fault(4, "restart", "host-1"),
    ]

    assert check_schedule(faults, ["host-0", "host-1"]) == []


def test_schedule_replace_of_down_host_reported() -> None:
    faults = [Fault(1, "stop", "host-0"), Fault(2, "replace", "host-0")]

    problems = check_schedule(faults, ["host-0"])

    assert [index for index, _ in problems] == [1]
    assert "replace of 'host-0' at 2 s" in problems[0][1]


def test_every_fault_kind_documents_itself() -> None:
    for name, kind in FAULT_KINDS.items():
        assert kind.name == name
        assert kind.summary
        for param in kind.params:
            assert param.example.startswith(param.name)


def test_fault_to_dict_is_flat() -> None:
    fault = Fault(3.0, "clock_step", "host-0", {"step_s": -2.0})

    assert fault.to_dict() == {"at": 3.0, "kind": "clock_step", "host": "host-0", "step_s": -2.0}
    assert dataclasses.replace(fault, host=None).to_dict() == {
        "at": 3.0,
        "kind": "clock_step",
        "step_s": -2.0,
    }


@pytest.mark.parametrize(
    "name", ["quickstart", "statefulset-rolling-update", "deployment-surge-duplicate-identity"]
)
def test_to_toml_round_trips(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    path = write(tmp_path, scenario.to_toml(), f"{name}.toml")

    again = load_scenario(path)

    assert dataclasses.replace(again, path=scenario.path) == scenario


def test_to_toml_writes_description_as_header() -> None:
    scenario = Scenario(description="a crash during a deploy")

    text = scenario.to_toml()

    assert text.startswith("# a crash during a deploy\n")
    assert 'description = "a crash during a deploy"' in text


def test_non_utf8_file_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ScenarioError, match="not UTF-8 text") as info:
        load_scenario(path)
    assert str(path) in str(info.value)


def test_interface_not_a_stable_interface_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dict.toml"
    path.write_text('[cluster]\nhosts = "host-{0..1}"\nshards = 4\ninterface = "builtins:dict"\n')
    with pytest.raises(ScenarioError, match=r"does not derive from simsi\.StableInterface"):
        load_scenario(path)


def test_interface_module_raising_on_import_rejected(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "raising_module.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "raising.toml"
    path.write_text('[cluster]\nhosts = "host-0"\nshards = 4\ninterface = "raising_module:X"\n')
    with pytest.raises(ScenarioError, match="raised RuntimeError: broken on import"):
        load_scenario(path)
