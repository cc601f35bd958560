"""Checkers over hand-written traces: planted violations are caught, clean traces pass."""

from __future__ import annotations

from typing import Any

from simsi.sim.checkers import (
    EARLY_TOLERANCE_US,
    StoreResult,
    check_alarms,
    check_routing,
    check_single_instance,
    check_store,
)
from simsi.sim.trace import Trace

S = 1_000_000  # microseconds per second


def trace(*events: dict[str, Any]) -> Trace:
    return Trace.from_events(events)


def act(t: float, inst: str, inc: str) -> dict[str, Any]:
    return {
        "t_us": round(t * S),
        "kind": "activate",
        "inst": inst,
        "host": inc.split("#")[0],
        "inc": inc,
        "shard": 0,
    }


def deact(t: float, inst: str, inc: str) -> dict[str, Any]:
    return {
        "t_us": round(t * S),
        "kind": "deactivate",
        "inst": inst,
        "host": inc.split("#")[0],
        "inc": inc,
        "shard": 0,
    }


def host_event(t: float, kind: str, inc: str) -> dict[str, Any]:
    return {"t_us": round(t * S), "kind": kind, "host": inc.split("#")[0], "inc": inc}


# -- single instance ----------------------------------------------------------------------------


def test_single_instance_overlap_reported_with_ids_and_times() -> None:
    events = trace(
        act(1.0, "inst-1", "host-1#0"),
        act(2.0, "inst-2", "host-1#0"),
        act(5.0, "inst-1", "host-1#1"),
        deact(8.0, "inst-1", "host-1#0"),
    ).events

    result = check_single_instance(events, end_us=20 * S)

    assert not result.holds
    assert result.instances_violated == 1
    first = result.first
    assert first is not None
    assert first.instance_id == "inst-1"
    assert (first.first.inc, first.second.inc) == ("host-1#0", "host-1#1")
    assert (first.first.host, first.second.host) == ("host-1", "host-1")
    assert (first.start_us, first.end_us) == (5 * S, 8 * S)
    assert "inst-1" in first.describe()
    assert "host-1#0" in first.describe()
    assert "host-1#1" in first.describe()


def test_single_instance_crash_then_restart_holds() -> None:
    events = trace(
        act(1.0, "inst-1", "host-1#0"),
        host_event(4.0, "host_crash", "host-1#0"),
        act(6.0, "inst-1", "host-1#1"),
    ).events

    result = check_single_instance(events, end_us=20 * S)

    assert result.holds
    assert result.first is None
    assert result.holdings == 2


def test_single_instance_graceful_stop_closes_holdings() -> None:
    events = trace(
        act(1.0, "inst-1", "host-2#0"),
        host_event(3.0, "host_stop", "host-2#0"),
        act(3.0, "inst-1", "host-2#1"),
    ).events

    assert check_single_instance(events, end_us=10 * S).holds


def test_single_instance_touching_intervals_hold() -> None:
    events = trace(
        act(1.0, "inst-1", "host-0#0"),
        deact(2.0, "inst-1", "host-0#0"),
        act(2.0, "inst-1", "host-1#0"),
    ).events

    assert check_single_instance(events, end_us=10 * S).holds


def test_single_instance_reactivation_on_same_incarnation_holds() -> None:
    events = trace(
        act(1.0, "inst-1", "host-0#0"),
        deact(2.0, "inst-1", "host-0#0"),
        act(3.0, "inst-1", "host-0#0"),
    ).events

    result = check_single_instance(events, end_us=10 * S)

    assert result.holds
    assert result.holdings == 2


def test_single_instance_first_counterexample_is_earliest() -> None:
    events = trace(
        act(1.0, "inst-9", "host-0#0"),
        act(1.0, "inst-2", "host-0#0"),
        act(3.0, "inst-9", "host-0#1"),
        act(4.0, "inst-2", "host-0#1"),
    ).events

    result = check_single_instance(events, end_us=10 * S)

    assert result.instances_violated == 2
    assert result.first is not None
    assert result.first.instance_id == "inst-9"
    assert result.first.end_us == 10 * S


# -- alarms -------------------------------------------------------------------------------------


def alarm(
    t: float, kind: str, inst: str, alarm_id: str, rev: int = 7, **fields: Any
) -> dict[str, Any]:
    return {
        "t_us": round(t * S),
        "kind": kind,
        "inst": inst,
        "alarm": alarm_id,
        "rev": rev,
        "host": "host-0",
        "inc": "host-0#0",
        **fields,
    }


def set_alarm(t: float, inst: str, alarm_id: str, due: float, rev: int = 7) -> dict[str, Any]:
    return alarm(t, "alarm_set", inst, alarm_id, rev, fires_at_us=0, due_us=round(due * S))


def delivered(t: float, inst: str, alarm_id: str, rev: int = 7) -> list[dict[str, Any]]:
    return [
        alarm(t, "alarm_fire", inst, alarm_id, rev, attempt=1, fires_at_us=0, lag=0.0),
        alarm(t, "alarm_handled", inst, alarm_id, rev),
        alarm(t, "alarm_done", inst, alarm_id, rev, reason="succeeded"),
    ]


def test_alarms_clean_delivery_holds() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        *delivered(5.5, "inst-1", "a"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.holds
    assert (result.set, result.fired, result.done) == (1, 1, 1)
    assert result.duplicates == 0
    assert result.early_fires == 0
    assert result.lags_s == (0.5,)


def test_alarms_lost_alarm_listed() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        set_alarm(1.0, "inst-2", "b", due=5.0),
        *delivered(5.0, "inst-2", "b"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert not result.holds
    assert len(result.lost) == 1
    lost = result.lost[0]
    assert (lost.instance_id, lost.alarm_id, lost.set_by) == ("inst-1", "a", "host-0#0")
    assert lost.due_us == 5 * S
    assert lost.fires == 0


def test_alarms_due_near_end_are_pending_not_lost() -> None:
    events = trace(set_alarm(1.0, "inst-1", "a", due=55.0)).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.holds
    assert result.pending == 1


def test_alarms_duplicate_handling_counted() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        alarm(5.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
        alarm(5.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
        alarm(5.0, "alarm_handled", "inst-1", "a"),
        alarm(5.0, "alarm_handled", "inst-1", "a"),
        alarm(5.1, "alarm_done", "inst-1", "a", reason="succeeded"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.duplicates == 1
    assert result.fired == 2
    assert result.holds


def test_alarms_early_fire_measured_in_true_time() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        *delivered(3.0, "inst-1", "a"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.early_fires == 1
    assert result.max_early_s == 2.0
    assert result.lags_s == (-2.0,)


def test_alarms_fire_within_tolerance_not_early() -> None:
    due_us = 5 * S
    fire = delivered(0, "inst-1", "a")
    for event in fire:
        event["t_us"] = due_us - EARLY_TOLERANCE_US
    events = trace(set_alarm(1.0, "inst-1", "a", due=5.0), *fire).events

    assert check_alarms(events, end_us=60 * S, grace_s=10).early_fires == 0


def test_alarms_replaced_and_cancelled_need_no_delivery() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0, rev=1),
        set_alarm(2.0, "inst-1", "a", due=6.0, rev=2),
        *delivered(6.0, "inst-1", "a", rev=2),
        set_alarm(2.0, "inst-2", "b", due=9.0, rev=3),
        alarm(3.0, "alarm_done", "inst-2", "b", rev=0, reason="cancelled"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.holds
    assert (result.set, result.replaced, result.done, result.cancelled) == (3, 1, 1, 1)


def test_alarms_retry_moves_due_time() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        alarm(5.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
        alarm(
            5.0,
            "alarm_retry",
            "inst-1",
            "a",
            attempt=1,
            fires_at_us=0,
            due_us=7 * S,
            error="HandlerError",
        ),
        alarm(7.0, "alarm_fire", "inst-1", "a", attempt=2, fires_at_us=0, lag=0.0),
        alarm(7.0, "alarm_handled", "inst-1", "a"),
        alarm(7.0, "alarm_done", "inst-1", "a", reason="succeeded"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.holds
    assert result.early_fires == 0
    assert result.fired == 2
    assert result.lags_s == (0.0,)


def test_alarms_exhausted_counts_as_done() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=2.0),
        alarm(2.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
        alarm(2.0, "alarm_done", "inst-1", "a", reason="attempts_exhausted"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.holds
    assert result.exhausted == 1


def test_alarm_lag_quantiles() -> None:
    events = [set_alarm(0.0, "inst-1", f"a{i}", due=1.0) for i in range(100)]
    for i in range(100):
        events += delivered(1.0 + i / 100, "inst-1", f"a{i}")

    result = check_alarms(trace(*events).events, end_us=60 * S, grace_s=10)

    assert result.lag_quantile(0.5) == 0.49
    assert result.lag_quantile(0.99) == 0.98
    assert result.lags_s[-1] == 0.99


# -- routing ------------------------------------------------------------------------------------


def served(rid: int, host: str, owner: str, outcome: str = "ok") -> dict[str, Any]:
    return {
        "t_us": rid * S,
        "kind": "request_served",
        "rid": rid,
        "inst": f"inst-{rid}",
        "host": host,
        "inc": f"{host}#0",
        "owner": owner,
        "outcome": outcome,
    }


def test_routing_owner_served_holds() -> None:
    events = trace(
        {"t_us": 0, "kind": "request", "rid": 1, "inst": "inst-1", "dst": "host-0"},
        served(1, "host-0", "host-0"),
        {"t_us": 2 * S, "kind": "response", "rid": 1, "inst": "inst-1", "outcome": "ok"},
        served(2, "host-1", "host-0", outcome="not_owner"),
        {"t_us": 3 * S, "kind": "request_timeout", "rid": 3, "inst": "inst-3"},
    ).events

    result = check_routing(events)

    assert result.holds
    assert (result.sent, result.served, result.not_owner) == (1, 1, 1)
    assert result.client_outcomes == {"ok": 1, "timeout": 1}


def test_routing_non_owner_serving_violates() -> None:
    events = trace(served(1, "host-0", "host-0"), served(2, "host-1", "host-2")).events

    result = check_routing(events)

    assert not result.holds
    assert result.misrouted == 1
    assert result.first_misrouted == (2, "inst-2", "host-1#0", "host-2")


# -- phantoms, early fires, availability and the store -------------------------------------------


def test_phantom_fire_of_alarm_never_set() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        *delivered(5.0, "inst-1", "a"),
        *delivered(6.0, "inst-1", "ghost", rev=3),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.phantoms == 1
    phantom = result.phantom_fires[0]
    assert (phantom.instance_id, phantom.alarm_id, phantom.rev) == ("inst-1", "ghost", 3)
    assert phantom.reason == "never set"
    assert phantom.fire_us == 6 * S
    assert result.lost == ()


def test_phantom_fire_after_cancel() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        alarm(2.0, "alarm_done", "inst-1", "a", rev=0, reason="cancelled"),
        alarm(5.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.phantoms == 1
    assert result.phantom_fires[0].reason == "after done (cancelled)"
    assert result.cancelled == 1


def test_refire_after_done_is_phantom_and_duplicate() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        *delivered(5.0, "inst-1", "a"),
        *delivered(7.0, "inst-1", "a"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.phantoms == 1
    assert result.phantom_fires[0].reason == "after done (succeeded)"
    assert result.duplicates == 1


def test_refire_before_done_is_duplicate_only() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        alarm(5.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
        alarm(5.1, "alarm_handled", "inst-1", "a"),
        *delivered(8.0, "inst-1", "a"),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.phantoms == 0
    assert result.duplicates == 1


def test_early_fires_listed_largest_first() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=10.0),
        set_alarm(1.0, "inst-2", "b", due=10.0),
        {**delivered(9.0, "inst-1", "a")[0], "inc": "host-1#1"},
        {**delivered(4.0, "inst-2", "b")[0], "inc": "host-1#1"},
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert result.early_fires == 2
    assert [(e.alarm_id, e.early_s) for e in result.early] == [("b", 6.0), ("a", 1.0)]
    assert result.early[0].set_by == "host-0#0"
    assert result.early[0].fired_by == "host-1#1"
    assert result.max_early_s == 6.0


def test_early_fire_after_retry_names_retrying_host() -> None:
    events = trace(
        set_alarm(1.0, "inst-1", "a", due=5.0),
        alarm(5.0, "alarm_fire", "inst-1", "a", attempt=1, fires_at_us=0, lag=0.0),
        {
            **alarm(5.1, "alarm_retry", "inst-1", "a", attempt=1, fires_at_us=0, error="E"),
            "due_us": 9 * S,
            "inc": "host-2#0",
        },
        alarm(7.0, "alarm_fire", "inst-1", "a", attempt=2, fires_at_us=0, lag=0.0),
    ).events

    result = check_alarms(events, end_us=60 * S, grace_s=10)

    assert [(e.set_by, e.early_s) for e in result.early] == [("host-2#0", 2.0)]
    assert result.lost[0].set_by == "host-0#0"


def test_availability_is_ok_over_sent() -> None:
    events = trace(
        *[{"t_us": i, "kind": "request", "rid": i, "inst": "i", "dst": "host-0"} for i in range(4)],
        {"t_us": 5, "kind": "response", "rid": 0, "inst": "i", "outcome": "ok"},
        {"t_us": 5, "kind": "response", "rid": 1, "inst": "i", "outcome": "not_owner"},
        {"t_us": 6, "kind": "request_timeout", "rid": 2, "inst": "i"},
    ).events

    assert check_routing(events).availability == 0.25
    assert check_routing([]).availability is None


def test_store_stats_read_from_trace() -> None:
    events = trace(
        {"t_us": 9, "kind": "store_stats", "peak_reads": 12, "calls": 40, "failures": 3},
    ).events

    assert check_store(events) == StoreResult(12, 40, 3)
    assert check_store([]) == StoreResult()
