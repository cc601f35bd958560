"""The ``reshard`` fault kind and the two shard-count-change scenarios."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from simsi.core.errors import ScenarioError
from simsi.sim.scenario import load_scenario, scenario_from_dict
from simsi.sim.world import SimResult, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@cache
def result_of(name: str) -> SimResult:
    return run_scenario(load_scenario(SCENARIOS / f"{name}.toml"))


def test_reshard_moves_alarms_between_stop_and_start() -> None:
    result = result_of("shard-count-change-with-reshard")

    (event,) = result.trace.of_kind("reshard")
    assert event["from_shards"] == 64
    assert event["to_shards"] == 128
    assert event["moved"] > 0
    assert event["moved"] < event["scanned"]
    assert event["conflicts"] == 0
    assert result.stats.stored_alarms_left == 0
    assert result.checks.alarms.lost == ()


def test_without_reshard_moved_alarms_stay_stored() -> None:
    result = result_of("shard-count-change-without-reshard")

    assert result.trace.of_kind("reshard") == []
    lost = result.checks.alarms.lost
    assert len(lost) > 0
    assert result.stats.stored_alarms_left == len(lost)
    assert all(alarm.fires == 0 for alarm in lost)


def test_both_scenarios_differ_only_in_reshard() -> None:
    def faults(name: str) -> list[str]:
        return [fault.kind for fault in load_scenario(SCENARIOS / f"{name}.toml").faults]

    without = faults("shard-count-change-without-reshard")
    with_reshard = faults("shard-count-change-with-reshard")
    assert [kind for kind in with_reshard if kind != "reshard"] == without
    assert with_reshard.count("reshard") == 1


def scenario(store_kind: str, reshard: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": {"hosts": "host-{0..1}", "shards": 8},
        "store": {"kind": store_kind, "preload_alarms": 60, "preload_due_s": [20, 30]},
        "workload": {"instances": 10, "request_rate": 5},
        "faults": [
            {"at": 5, "kind": "stop", "host": "host-0"},
            {"at": 5, "kind": "stop", "host": "host-1"},
            {"at": 8, "kind": "reshard", **reshard},
            {"at": 9, "kind": "config_rollout", "shards": 3, "start_delay_s": 0},
        ],
        "run": {"duration_s": 15, "drain_s": 30},
    }


@pytest.mark.parametrize("store_kind", ["sim", "foundationdb"])
def test_shrinking_reshard_loses_nothing(store_kind: str) -> None:
    data = scenario(store_kind, {"from_shards": 8, "to_shards": 3})
    result = run_scenario(scenario_from_dict(data))

    (event,) = result.trace.of_kind("reshard")
    assert event["moved"] > 0
    assert result.checks.alarms.lost == ()
    assert result.stats.stored_alarms_left == 0


def test_reshard_to_same_count_rejected() -> None:
    data = scenario("sim", {"from_shards": 8, "to_shards": 8})
    with pytest.raises(ScenarioError, match="from_shards equals to_shards"):
        scenario_from_dict(data)


def test_reshard_needs_both_counts() -> None:
    data = scenario("sim", {"to_shards": 3})
    with pytest.raises(ScenarioError, match="from_shards"):
        scenario_from_dict(data)
