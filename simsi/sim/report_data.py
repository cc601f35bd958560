"""The report of a finished run as JSON-ready data: every check, count and rate.

:func:`report_dict` is what ``simsi sim --json`` prints, and the text report of
:mod:`simsi.sim.report` is formatted from it. Times are true seconds since the
start of the run.
"""

from __future__ import annotations

from typing import Any

from simsi.sim.alarm_check import AlarmResult
from simsi.sim.checkers import CheckResults
from simsi.sim.expectations import evaluate
from simsi.sim.trace import MICROS
from simsi.sim.world import RunStats, SimResult


def _seconds(us: int) -> float:
    return us / MICROS


def availability(checks: CheckResults) -> dict[str, Any]:
    """Return what the client saw of its requests: sent, served, failed and the served fraction.

    A request counts as served when the client received an ``ok`` response. Every
    other outcome (``not_owner``, ``handler_error``, ``closed``, a timeout) counts
    as failed, and requests with neither a response nor a timeout by the end of
    the run count as unanswered. The fraction is served over sent, or ``None``
    when the client sent nothing.
    """
    routing = checks.routing
    outcomes = routing.client_outcomes
    served = outcomes.get("ok", 0)
    failed = sum(count for name, count in outcomes.items() if name != "ok")
    return {
        "sent": routing.sent,
        "served": served,
        "failed": failed,
        "unanswered": routing.sent - served - failed,
        "fraction": routing.availability,
    }


def report_dict(result: SimResult) -> dict[str, Any]:
    """Return the full report of a run as JSON-ready data."""
    checks = result.checks
    single = checks.single_instance
    alarms = checks.alarms
    routing = checks.routing
    stats = result.stats
    verdicts = evaluate(result.scenario.expect, checks)
    first = single.first
    return {
        "scenario": result.scenario.name,
        "path": result.scenario.path,
        "seed": result.seed,
        "digest": result.digest,
        "expectations_met": all(verdict.met for verdict in verdicts),
        "expectations": [
            {"name": v.name, "expected": v.expected, "actual": v.actual, "met": v.met}
            for v in verdicts
        ],
        "single_instance": {
            "holds": single.holds,
            "holdings": single.holdings,
            "instances_violated": single.instances_violated,
            "first_overlap": None
            if first is None
            else {
                "instance": first.instance_id,
                "incarnations": [first.first.inc, first.second.inc],
                "hosts": [first.first.host, first.second.host],
                "starts_s": [_seconds(first.first.start_us), _seconds(first.second.start_us)],
                "overlap_s": [_seconds(first.start_us), _seconds(first.end_us)],
                "description": first.describe(),
            },
        },
        "alarms": alarms_dict(alarms, stats),
        "routing": {
            "holds": routing.holds,
            "misrouted": routing.misrouted,
            "first_misrouted": None
            if routing.first_misrouted is None
            else dict(
                zip(("rid", "instance", "served_by", "owner"), routing.first_misrouted, strict=True)
            ),
            "not_owner": routing.not_owner,
        },
        "faults": {
            "applied": [
                {"at_s": event.t, "kind": event["fault"], "host": event["host"]}
                for event in result.trace.of_kind("fault")
            ],
            "skipped": [
                {"at_s": event.t, "reason": event["reason"]}
                for event in result.trace.of_kind("fault_skipped")
            ],
        },
        "requests": {
            "sent": routing.sent,
            "served": routing.served,
            "client_outcomes": routing.client_outcomes,
        },
        "availability": availability(checks),
        "store": {
            "peak_concurrent_reads": checks.store.peak_concurrent_reads,
            "calls": checks.store.calls,
            "failures": checks.store.failures,
            "commits": checks.store.commits,
            "conflicts": checks.store.conflicts,
            "unknown_results": checks.store.unknown_results,
        },
        "run": {
            "events": stats.events,
            "trace_events": stats.trace_events,
            "sim_s": stats.sim_s,
            "wall_s": stats.wall_s,
            "sim_s_per_wall_s": stats.sim_per_wall,
            "events_per_wall_s": stats.events / stats.wall_s if stats.wall_s > 0 else None,
            "messages_sent": stats.messages_sent,
            "messages_dropped": stats.messages_dropped,
            "messages_duplicated": stats.messages_duplicated,
            "store_calls": stats.store_calls,
            "store_failures": stats.store_failures,
        },
    }


def alarms_dict(alarms: AlarmResult, stats: RunStats) -> dict[str, Any]:
    """Return the alarm delivery check as JSON-ready data, lost and phantom alarms listed."""
    return {
        "holds": alarms.holds,
        "set": alarms.set,
        "fired": alarms.fired,
        "done": alarms.done,
        "cancelled": alarms.cancelled,
        "exhausted": alarms.exhausted,
        "replaced": alarms.replaced,
        "lost": len(alarms.lost),
        "pending": alarms.pending,
        "duplicates": alarms.duplicates,
        "early_fires": alarms.early_fires,
        "max_early_s": alarms.max_early_s,
        "lag_p50_s": alarms.lag_quantile(0.5),
        "lag_p99_s": alarms.lag_quantile(0.99),
        "lag_max_s": alarms.max_lag_s,
        "stored_at_end": stats.stored_alarms_left,
        "lost_alarms": [
            {
                "instance": lost.instance_id,
                "alarm": lost.alarm_id,
                "set_by": lost.set_by,
                "set_s": _seconds(lost.set_us),
                "due_s": _seconds(lost.due_us),
                "fires": lost.fires,
            }
            for lost in alarms.lost
        ],
        "phantoms": alarms.phantoms,
        "phantom_fires": [
            {
                "instance": phantom.instance_id,
                "alarm": phantom.alarm_id,
                "rev": phantom.rev,
                "fired_by": phantom.fired_by,
                "fire_s": _seconds(phantom.fire_us),
                "reason": phantom.reason,
            }
            for phantom in alarms.phantom_fires
        ],
        "earliest_fires": [
            {
                "instance": early.instance_id,
                "alarm": early.alarm_id,
                "set_by": early.set_by,
                "fired_by": early.fired_by,
                "fire_s": _seconds(early.fire_us),
                "early_s": early.early_s,
            }
            for early in alarms.early
        ],
    }
