"""Each fault kind, alone in a small run, and its effect in the trace."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from simsi.core.placement import Placement
from simsi.sim.faults import Fault
from simsi.sim.scenario import (
    AlarmsSpec,
    ClusterSpec,
    RunSpec,
    Scenario,
    StoreSpec,
    WorkloadSpec,
)
from simsi.sim.trace import TraceEvent
from simsi.sim.world import SimResult, World, run_scenario

S = 1_000_000


def small(*faults: Fault, **changes: Any) -> Scenario:
    """A fast three-host scenario with ``faults``; keyword arguments replace its fields."""
    base = Scenario(
        name="small",
        cluster=ClusterSpec("host-{0..2}", 16),
        workload=WorkloadSpec(instances=10, request_rate=10, alarm_delay_s=(1, 5)),
        run=RunSpec(duration_s=30, drain_s=15, seed=1),
        faults=faults,
    )
    return dataclasses.replace(base, **changes)


def messages(result: SimResult, action: str) -> list[TraceEvent]:
    return [e for e in result.trace.of_kind("message") if e["action"] == action]


def between(events: list[TraceEvent], start_s: float, end_s: float) -> list[TraceEvent]:
    return [e for e in events if start_s * S <= e.t_us < end_s * S]


def incs(result: SimResult, kind: str) -> list[str]:
    return [e["inc"] for e in result.trace.of_kind(kind)]


# -- processes -----------------------------------------------------------------------------------


def test_crash_restart_after_starts_new_incarnation() -> None:
    result = run_scenario(small(Fault(10.0, "crash", "host-1", {"restart_after_s": 2.5})))

    starts = [e for e in result.trace.of_kind("host_start") if e["host"] == "host-1"]
    assert [e["inc"] for e in starts] == ["host-1#0", "host-1#1"]
    assert starts[1].t_us == 12_500_000
    assert result.checks.alarms.lost == ()


def test_stop_restart_after_waits_for_exit() -> None:
    result = run_scenario(small(Fault(10.0, "stop", "host-0", {"restart_after_s": 1.0})))

    stop = result.trace.of_kind("host_stop")[0]
    start = next(e for e in result.trace.of_kind("host_start") if e["inc"] == "host-0#1")
    assert stop.t_us >= 10 * S
    assert start.t_us == stop.t_us + S


def test_stop_drain_timeout_kills_long_handler() -> None:
    scenario = small(
        Fault(10.0, "stop", "host-1", {"drain_s": 2.0}),
        workload=WorkloadSpec(
            instances=10, request_rate=10, alarm_delay_s=(1, 3), alarm_handler_s=(5, 8)
        ),
    )

    result = run_scenario(scenario)

    crash = result.trace.of_kind("host_crash")
    assert len(crash) == 1
    assert crash[0]["inc"] == "host-1#0"
    assert crash[0]["cause"] == "drain_timeout"
    assert crash[0].t_us == 12 * S
    assert incs(result, "host_stop") == []
    assert result.trace.of_kind("host_stopping")[0]["drain_s"] == 2.0


def test_stop_without_long_handler_exits_before_drain_timeout() -> None:
    result = run_scenario(small(Fault(10.0, "stop", "host-1", {"drain_s": 5.0})))

    assert incs(result, "host_stop") == ["host-1#0"]
    assert result.trace.of_kind("host_crash") == []


def test_restart_on_other_machine_changes_clock() -> None:
    world = World(
        small(
            Fault(10.0, "crash", "host-2"),
            Fault(11.0, "restart", "host-2", {"offset_s": 4.0}),
        )
    )

    result = world.run()

    clock = world.host_clock("host-2")
    assert clock.offset == 4.0
    assert world.incarnation("host-2#1").clock is clock
    assert world.incarnation("host-2#0").clock is not clock
    assert result.checks.alarms.early_fires > 0


def test_replace_start_after_stop_overlaps_drain() -> None:
    scenario = small(
        Fault(10.0, "replace", "host-1", {"start_after": "stop", "start_delay_s": 1.0}),
        workload=WorkloadSpec(
            instances=10, request_rate=5, alarm_delay_s=(1, 3), alarm_handler_s=(4, 6)
        ),
    )

    result = run_scenario(scenario)

    start = next(e for e in result.trace.of_kind("host_start") if e["inc"] == "host-1#1")
    stop = next(e for e in result.trace.of_kind("host_stop") if e["inc"] == "host-1#0")
    assert start.t_us == 11 * S
    assert stop.t_us > start.t_us


def test_crash_after_alarm_handled_skipped_without_alarms() -> None:
    scenario = small(
        Fault(10.0, "crash_after_alarm_handled", "host-0", {"window_s": 5.0}),
        workload=WorkloadSpec(instances=10, request_rate=10, alarms_per_request=0),
    )

    result = run_scenario(scenario)

    skipped = [e["reason"] for e in result.trace.of_kind("fault_skipped")]
    assert len(skipped) == 1
    assert "no alarm of it succeeded within 5 s" in skipped[0]
    assert result.trace.of_kind("host_crash") == []


def test_crash_after_alarm_handled_keeps_alarm_stored() -> None:
    world = World(small(Fault(5.0, "crash_after_alarm_handled", "host-2")))

    result = world.run()

    triggered = result.trace.of_kind("fault_triggered")
    assert len(triggered) == 1
    assert triggered[0]["inc"] == "host-2#0"
    stored = [alarm.alarm_id for _, alarm in world.store.all_alarms(16)]
    lost = [alarm.alarm_id for alarm in result.checks.alarms.lost]
    # Without a restart, the handled alarm stays stored and counts as lost.
    assert triggered[0]["alarm"] in stored
    assert triggered[0]["alarm"] in lost


# -- network -----------------------------------------------------------------------------------


def test_partition_drops_between_groups_until_duration() -> None:
    groups = (("host-0",), ("client", "host-1", "host-2"))
    result = run_scenario(
        small(Fault(5.0, "partition", None, {"groups": groups, "duration_s": 10.0, "name": "p"}))
    )

    lost = messages(result, "lost")
    assert lost
    assert {e["reason"] for e in lost} == {"partition:p"}
    assert all(5 * S <= e.t_us < 15 * S for e in lost)
    assert all("host-0" in (e["dst"], e["src"].split("#")[0]) for e in lost)
    heal = result.trace.of_kind("heal")
    assert [(e.t_us, e["name"], e["cause"]) for e in heal] == [(15 * S, "p", "duration")]
    assert between(messages(result, "deliver"), 16, 30)


def test_heal_ends_partition() -> None:
    groups = (("host-1",), ("client",))
    result = run_scenario(
        small(
            Fault(5.0, "partition", None, {"groups": groups}),
            Fault(9.0, "heal", None),
        )
    )

    lost = messages(result, "lost")
    assert lost
    assert all(5 * S <= e.t_us < 9 * S for e in lost)
    assert [(e.t_us, e["cause"]) for e in result.trace.of_kind("heal")] == [(9 * S, "heal")]


def test_one_way_partition_drops_one_direction() -> None:
    fault = Fault(
        5.0,
        "partition_one_way",
        None,
        {"from": ("host-1",), "to": ("client",), "duration_s": 10.0},
    )

    result = run_scenario(small(fault))

    lost = messages(result, "lost")
    assert lost
    assert {e["msg"] for e in lost} == {"response"}
    assert {e["src"] for e in lost} == {"host-1#0"}
    delivered_to_host1 = [
        e for e in between(messages(result, "deliver"), 5, 15) if e["dst"] == "host-1"
    ]
    assert delivered_to_host1
    assert result.checks.routing.client_outcomes["timeout"] >= len(lost)


def test_isolate_with_store_unreachable_fails_store_calls() -> None:
    result = run_scenario(
        small(
            Fault(5.0, "isolate", "host-2", {"duration_s": 5.0, "store": "unreachable"}),
            workload=WorkloadSpec(instances=10, request_rate=10, alarm_delay_s=(1, 2)),
        )
    )

    failed = [e for e in result.trace.of_kind("store_failed") if e["host"] == "host-2"]
    assert failed
    assert all(5 * S <= e.t_us <= 10 * S + S for e in failed)
    lost = messages(result, "lost")
    assert {e["reason"] for e in lost} == {"partition:isolate"}
    assert result.checks.alarms.lost == ()


def test_isolate_keeps_store_reachable_by_default() -> None:
    result = run_scenario(small(Fault(5.0, "isolate", "host-2", {"duration_s": 5.0})))

    assert result.trace.of_kind("store_failed") == []
    assert messages(result, "lost")


def test_message_loss_window_loses_messages() -> None:
    fault = Fault(5.0, "message_loss", None, {"probability": 0.5, "duration_s": 5.0})

    result = run_scenario(small(fault))

    lost = messages(result, "lost")
    sent = between(messages(result, "send"), 5, 10)
    assert lost
    assert {e["reason"] for e in lost} == {"loss:message_loss"}
    assert all(5 * S <= e.t_us < 10 * S for e in lost)
    assert 0.3 * len(sent) <= len(lost) <= 0.7 * len(sent)


def test_message_loss_filters_endpoints() -> None:
    fault = Fault(
        5.0,
        "message_loss",
        None,
        {"probability": 1.0, "duration_s": 5.0, "endpoints": ("host-0",)},
    )

    result = run_scenario(small(fault))

    lost = messages(result, "lost")
    assert lost
    assert all("host-0" in (e["dst"], e["src"].split("#")[0]) for e in lost)


def test_message_duplication_serves_request_twice() -> None:
    fault = Fault(5.0, "message_duplication", None, {"probability": 1.0, "duration_s": 2.0})

    result = run_scenario(small(fault))

    copies = messages(result, "duplicate")
    assert copies
    rid = next(e["rid"] for e in copies if e["msg"] == "request")
    served = [e for e in result.trace.of_kind("request_served") if e["rid"] == rid]
    assert len(served) == 2
    assert result.stats.messages_duplicated == len(copies)
    assert result.checks.alarms.replaced > 0


def test_message_reordering_delivers_out_of_order() -> None:
    fault = Fault(
        2.0,
        "message_reordering",
        None,
        {"probability": 0.5, "duration_s": 20.0, "delay_ms": (50.0, 500.0)},
    )

    result = run_scenario(small(fault))

    delayed = messages(result, "delay")
    assert delayed
    assert all(0.05 <= e["extra_s"] <= 0.5 for e in delayed)
    requests = [e["rid"] for e in messages(result, "deliver") if e["msg"] == "request"]
    assert requests != sorted(requests)


# -- fleets and rollouts -----------------------------------------------------------------------


def test_fleet_start_split_and_stop() -> None:
    world = World(
        small(
            Fault(5.0, "fleet_start", None, {"fleet": "green"}),
            Fault(8.0, "traffic_split", None, {"fleet": "green", "weight": 1.0}),
            Fault(12.0, "fleet_stop", None, {"fleet": "main"}),
        )
    )

    result = world.run()

    green = [e for e in result.trace.of_kind("host_start") if e["inc"].startswith("green:")]
    assert [e["inc"] for e in green] == ["green:host-0#0", "green:host-1#0", "green:host-2#0"]
    assert all(e["host"] in world.placement.hosts for e in green)
    requests = [e for e in result.trace.of_kind("request") if e.t_us > 8 * S]
    assert requests
    assert all(e["dst"].startswith("green:") for e in requests)
    assert sorted(incs(result, "host_stop")) == ["host-0#0", "host-1#0", "host-2#0"]
    assert world.incarnation("green:host-1#0").host.fleet == "green"
    assert not result.checks.single_instance.holds


def test_traffic_split_to_unknown_fleet_skipped() -> None:
    result = run_scenario(
        small(Fault(5.0, "traffic_split", None, {"fleet": "green", "weight": 0.5}))
    )

    skipped = [e["reason"] for e in result.trace.of_kind("fault_skipped")]
    assert skipped == ["traffic_split to 'green': no such second fleet is running"]


def test_config_rollout_gives_new_placement() -> None:
    world = World(
        small(
            Fault(
                5.0,
                "config_rollout",
                None,
                {"hosts": "host-{0..3}", "client_switch": "start", "min_ready_s": 1.0},
            )
        )
    )

    result = world.run()

    new = Placement("host-{0..3}", 16)
    assert world.authority == new
    assert world.client.view == new
    assert world.incarnation("host-3#0").placement == new
    assert world.incarnation("host-0#1").placement == new
    assert world.incarnation("host-0#0").placement == world.placement
    assert [e.t_us for e in result.trace.of_kind("client_view")] == [5 * S]
    assert len(result.trace.of_kind("rollout_done")) == 1


def test_config_rollout_of_shard_count_only() -> None:
    world = World(small(Fault(5.0, "config_rollout", None, {"shards": 32, "order": "ascending"})))

    result = world.run()

    steps = [e["host"] for e in result.trace.of_kind("rollout_step")]
    assert steps == ["host-0", "host-1", "host-2"]
    assert world.incarnation("host-2#1").placement == Placement("host-{0..2}", 32)
    assert [e["shards"] for e in result.trace.of_kind("client_view")] == [32]
    assert result.stats.stored_alarms_left == len(world.store.all_alarms(32))


def test_rollout_never_switching_client_gets_not_owner() -> None:
    result = run_scenario(
        small(
            Fault(5.0, "config_rollout", None, {"hosts": "host-{0..3}", "client_switch": "never"})
        )
    )

    assert result.trace.of_kind("client_view") == []
    assert result.checks.routing.not_owner > 0


# -- store ---------------------------------------------------------------------------------------


def test_store_latency_factor_slows_requests() -> None:
    fault = Fault(10.0, "store_latency", None, {"duration_s": 5.0, "factor": 100.0})

    result = run_scenario(small(fault))

    def answer_times(start: float, end: float) -> list[int]:
        sent = {e["rid"]: e.t_us for e in result.trace.of_kind("request")}
        return [
            e.t_us - sent[e["rid"]] for e in between(result.trace.of_kind("response"), start, end)
        ]

    assert [e["factor"] for e in result.trace.of_kind("store_latency")] == [100.0]
    assert max(answer_times(11, 15)) > 100_000
    assert max(answer_times(20, 30)) < 20_000


def test_store_latency_replaces_range() -> None:
    world = World(small())
    world.env.run(until=5)
    world.store_latency(5.0, 2.0, (400.0, 400.0))

    assert world.store.latency_range() == (0.8, 0.8)
    world.env.run(until=10)
    assert world.store.latency_range() == (0.001, 0.003)


def test_foundationdb_store_outage_uses_kv_availability() -> None:
    world = World(small(store=StoreSpec(kind="foundationdb")))
    world.env.run(until=5)
    world.store_outage(3.0)
    kv = world.store.kv

    assert kv is not None
    assert not kv.available
    world.env.run(until=8.001)
    assert kv.available


def test_foundationdb_store_delivers_alarms() -> None:
    scenario = small(
        Fault(10.0, "crash", "host-1", {"restart_after_s": 1.0}),
        store=StoreSpec(
            kind="foundationdb", conflict_probability=0.1, commit_unknown_probability=0.2
        ),
    )

    result = run_scenario(scenario)

    assert result.checks.store.unknown_results > 0
    assert result.checks.alarms.lost == ()
    assert result.checks.alarms.phantoms == 0
    assert result.stats.stored_alarms_left == result.checks.alarms.pending


def test_preload_writes_alarms_before_start() -> None:
    scenario = small(store=StoreSpec(preload_alarms=200, preload_due_s=(5.0, 20.0)))

    result = run_scenario(scenario)

    preloaded = [e for e in result.trace.of_kind("alarm_set") if e["inc"] == "preload"]
    assert len(preloaded) == 200
    assert all(e.t_us == 0 for e in preloaded)
    ready = result.trace.of_kind("host_ready")
    assert sum(e["alarms"] for e in ready[:3]) == 200
    assert result.checks.alarms.done >= 200
    assert result.checks.alarms.lost == ()


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_alarm_options_reach_hosts(max_attempts: int) -> None:
    scenario = small(
        cluster=ClusterSpec("host-{0..2}", 16, "tests.sim.sample_interfaces:FlakyAlarms"),
        alarms=AlarmsSpec(max_attempts=max_attempts, backoff_s=(0.5, 0.5), jitter=0.0),
    )

    result = run_scenario(scenario)

    alarms = result.checks.alarms
    if max_attempts == 1:
        assert alarms.exhausted == alarms.set
    else:
        assert alarms.done == alarms.set
        retries = result.trace.of_kind("alarm_retry")
        # The retry is traced once its store write returned, 1 to 3 ms after the delay began.
        assert retries
        assert all(495_000 <= e["due_us"] - e.t_us <= 500_000 for e in retries)


def test_slow_handlers_sleep_for_drawn_time() -> None:
    scenario = small(
        workload=WorkloadSpec(
            instances=10,
            request_rate=2,
            alarm_delay_s=(1, 2),
            handler_s=(0.5, 0.5),
            alarm_handler_s=(1.0, 1.0),
        )
    )

    result = run_scenario(scenario)

    sent = {e["rid"]: e.t_us for e in result.trace.of_kind("request")}
    served = result.trace.of_kind("request_served")
    assert served
    assert all(e.t_us - sent[e["rid"]] >= 500_000 for e in served)
    fires = {(e["inst"], e["alarm"]): e.t_us for e in result.trace.of_kind("alarm_fire")}
    handled = result.trace.of_kind("alarm_handled")
    assert handled
    assert all(e.t_us - fires[(e["inst"], e["alarm"])] >= S for e in handled)
