"""Loading the newer scenario tables and fault parameters: values, defaults and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from simsi.core.errors import ScenarioError
from simsi.sim.faults import Fault
from simsi.sim.scenario import (
    AlarmsSpec,
    Expectations,
    Scenario,
    StoreSpec,
    WorkloadSpec,
    load_scenario,
    scenario_from_dict,
)

GOOD = """
name = "t"
[cluster]
hosts = "host-{0..2}"
shards = 16
[workload]
instances = 5
request_rate = 2
[run]
duration_s = 40
drain_s = 10
"""


def load(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "s.toml"
    path.write_text(GOOD + text)
    return load_scenario(path)


def load_error(tmp_path: Path, text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(tmp_path, text)
    return info.value


def fault(kind: str, body: str, at: float = 5) -> str:
    return f'\n[[faults]]\nat = {at}\nkind = "{kind}"\n{body}\n'


# -- tables ------------------------------------------------------------------------------------


def test_alarms_table_values(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        "\n[alarms]\nmax_attempts = 2\nbackoff_s = [1, 4]\njitter = 0\npage_size = 10\n"
        "load_concurrency = 2\nmax_concurrent = 3\nhandler_timeout_s = 9\n"
        "store_retry_delay_s = 0.1\nstore_attempts = 7\n",
    )

    assert scenario.alarms == AlarmsSpec(2, (1.0, 4.0), 0.0, 10, 2, 3, 9.0, 0.1, 7)
    options = scenario.alarms.options()
    assert (options.backoff_base, options.backoff_cap) == (1.0, 4.0)
    assert options.handler_timeout == 9.0
    assert options.store_attempts == 7


def test_alarms_defaults_match_core() -> None:
    from simsi.core.alarm_engine import AlarmOptions

    assert AlarmsSpec().options() == AlarmOptions()


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("max_attempts = 0", "alarms.max_attempts", "integer >= 1"),
        ("page_size = 2.5", "alarms.page_size", "2.5"),
        ("backoff_s = [5, 1]", "alarms.backoff_s", "min <= max"),
        ("jitter = 2", "alarms.jitter", "<= 1"),
        ("handler_timeout_s = 0", "alarms.handler_timeout_s", "> 0"),
        ("max_atempts = 3", "alarms.max_atempts", "did you mean 'max_attempts'"),
    ],
)
def test_alarms_table_errors(tmp_path: Path, body: str, key: str, fragment: str) -> None:
    error = load_error(tmp_path, f"\n[alarms]\n{body}\n")

    assert error.key == key
    assert fragment in str(error)


def test_foundationdb_store_values(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        '\n[store]\nkind = "foundationdb"\nconflict_probability = 0.1\n'
        "commit_unknown_probability = 0.2\nunknown_applied_probability = 1\n",
    )

    assert scenario.store == StoreSpec("foundationdb", (1.0, 3.0), 0.1, 0.2, 1.0)


def test_foundationdb_keys_need_foundationdb(tmp_path: Path) -> None:
    error = load_error(tmp_path, "\n[store]\ncommit_unknown_probability = 0.2\n")

    assert error.key == "store.commit_unknown_probability"
    assert 'kind = "foundationdb"' in str(error)


def test_store_probability_above_one_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, '\n[store]\nkind = "foundationdb"\nconflict_probability = 1.5\n')

    assert error.key == "store.conflict_probability"
    assert "1.5" in str(error)


def test_preload_values_and_errors(tmp_path: Path) -> None:
    scenario = load(tmp_path, "\n[store]\npreload_alarms = 50\npreload_due_s = [1, 2]\n")

    assert (scenario.store.preload_alarms, scenario.store.preload_due_s) == (50, (1.0, 2.0))
    error = load_error(tmp_path, "\n[store]\npreload_alarms = -5\n")
    assert error.key == "store.preload_alarms"


def test_workload_handler_ranges(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        GOOD.replace(
            "request_rate = 2", "request_rate = 2\nhandler_s = [0.1, 0.2]\nalarm_handler_s = [3, 4]"
        )
    )
    scenario = load_scenario(path)

    assert scenario.workload == WorkloadSpec(5, 2.0, 1, (1.0, 10.0), 5.0, (0.1, 0.2), (3.0, 4.0))


def test_expect_new_keys(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        '\n[expect]\nalarm_delivery = "holds"\nphantom_alarms = 0\nmin_availability = 0.5\n'
        "max_availability = 0.9\nmax_concurrent_store_reads = 24\nmin_alarm_duplicates = 1\n"
        "min_early_fires = 2\nmax_early_s = 10\nmax_alarm_lag_s = 31\n",
    )

    assert scenario.expect == Expectations(
        alarm_delivery="holds",
        phantom_alarms=0,
        min_availability=0.5,
        max_availability=0.9,
        max_concurrent_store_reads=24,
        min_alarm_duplicates=1,
        min_early_fires=2,
        max_early_s=10.0,
        max_alarm_lag_s=31.0,
    )


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("min_availability = 1.5", "expect.min_availability", "<= 1"),
        ('alarm_delivery = "fine"', "expect.alarm_delivery", "'holds', 'violated'"),
        ("max_early_s = -1", "expect.max_early_s", ">= 0"),
        ("phantom_alarms = 0.5", "expect.phantom_alarms", "integer"),
    ],
)
def test_expect_errors(tmp_path: Path, body: str, key: str, fragment: str) -> None:
    error = load_error(tmp_path, f"\n[expect]\n{body}\n")

    assert error.key == key
    assert fragment in str(error)


# -- fault parameters ----------------------------------------------------------------------------


def test_partition_groups_and_endpoints_load(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        fault("partition", 'groups = [["host-0#0", "store"], ["client", "green:host-1"]]')
        + fault("partition_one_way", 'from = ["client"]\nto = ["host-2"]\nduration_s = 3')
        + fault("heal", 'name = "partition"', at=9),
    )

    assert scenario.faults == (
        Fault(
            5.0, "partition", None, {"groups": (("host-0#0", "store"), ("client", "green:host-1"))}
        ),
        Fault(
            5.0,
            "partition_one_way",
            None,
            {"from": ("client",), "to": ("host-2",), "duration_s": 3.0},
        ),
        Fault(9.0, "heal", None, {"name": "partition"}),
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('groups = [["host-0"]]', "at least 2 lists"),
        ('groups = [["host-0"], ["host-0", "client"]]', "in two groups"),
        ('groups = [["host-9"], ["client"]]', "no host 'host-9'"),
        ('groups = [["host 1"], ["client"]]', "expected 'client', 'store'"),
        ('groups = [[], ["client"]]', "at least 1 item"),
    ],
)
def test_partition_group_errors(tmp_path: Path, body: str, fragment: str) -> None:
    error = load_error(tmp_path, fault("partition", body))

    assert error.key == "faults[0].groups"
    assert fragment in str(error)


def test_endpoint_may_name_rollout_host(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        fault("config_rollout", 'hosts = "host-{0..3}"')
        + fault("isolate", 'host = "host-3"\nduration_s = 2', at=20),
    )

    assert scenario.faults[1].host == "host-3"


def test_rollout_needs_a_change(tmp_path: Path) -> None:
    error = load_error(tmp_path, fault("config_rollout", "min_ready_s = 1"))

    assert error.key == "faults[0]"
    assert "changes nothing" in str(error)


def test_rollout_with_too_few_shards(tmp_path: Path) -> None:
    error = load_error(tmp_path, fault("config_rollout", 'hosts = "host-{0..19}"'))

    assert error.key == "faults[0]"
    assert "shard" in str(error)


def test_rollout_pattern_checked(tmp_path: Path) -> None:
    error = load_error(tmp_path, fault("config_rollout", 'hosts = "host-{3..1}"'))

    assert error.key == "faults[0].hosts"
    assert "reversed" in str(error)


def test_rollout_removing_host_blocks_its_restart(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        fault("config_rollout", 'hosts = "host-{0..1}"') + fault("crash", 'host = "host-2"', at=20),
    )

    assert error.key == "faults[1]"
    assert "no incarnation of it is running" in str(error)


def test_fleet_names_checked(tmp_path: Path) -> None:
    main = load_error(tmp_path, fault("fleet_start", 'fleet = "main"'))
    spaced = load_error(tmp_path, fault("fleet_stop", 'fleet = "new fleet"'))

    assert main.key == "faults[0].fleet"
    assert "'main' is the fleet that starts at time 0" in str(main)
    assert spaced.key == "faults[0].fleet"
    assert "letters, digits" in str(spaced)


def test_traffic_split_weight_range(tmp_path: Path) -> None:
    error = load_error(tmp_path, fault("traffic_split", 'fleet = "green"\nweight = 1.5'))

    assert error.key == "faults[0].weight"
    assert "1.5" in str(error)


def test_replace_start_after_choices(tmp_path: Path) -> None:
    error = load_error(tmp_path, fault("replace", 'host = "host-1"\nstart_after = "ready"'))

    assert error.key == "faults[0].start_after"
    assert "'exit', 'stop'" in str(error)


def test_crash_restart_after_keeps_host_up_in_schedule(tmp_path: Path) -> None:
    scenario = load(
        tmp_path,
        fault("crash", 'host = "host-1"\nrestart_after_s = 2')
        + fault("stop", 'host = "host-1"\ndrain_s = 3', at=20),
    )

    assert [f.kind for f in scenario.faults] == ["crash", "stop"]


def test_store_latency_range_param(tmp_path: Path) -> None:
    scenario = load(tmp_path, fault("store_latency", "duration_s = 4\nlatency_ms = [100, 200]"))

    assert scenario.faults[0].params == {"duration_s": 4.0, "latency_ms": (100.0, 200.0)}


def test_new_tables_round_trip(tmp_path: Path) -> None:
    text = (
        '\n[store]\nkind = "foundationdb"\ncommit_unknown_probability = 0.1\n'
        "\n[alarms]\nmax_attempts = 3\n"
        '\n[expect]\nphantom_alarms = 0\nalarm_delivery = "holds"\n'
        + fault("partition", 'groups = [["host-0"], ["client"]]\nduration_s = 2')
        + fault("fleet_start", 'fleet = "green"\nshards = 32')
    )
    scenario = load(tmp_path, text)
    path = tmp_path / "again.toml"
    path.write_text(scenario.to_toml())

    again = load_scenario(path)

    assert scenario_from_dict(scenario.to_dict(), path=scenario.path) == scenario
    assert again.store == scenario.store
    assert again.alarms == scenario.alarms
    assert again.expect == scenario.expect
    assert again.faults == scenario.faults
