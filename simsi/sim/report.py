"""Reports of a finished run: expectations, invariants, alarm and request counts.

:func:`evaluate` compares the checks with the scenario's ``[expect]`` table;
:func:`report_dict` gives everything as JSON-ready data and :func:`format_report`
as text for a terminal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from simsi.sim.checkers import CheckResults
from simsi.sim.scenario import Expectations
from simsi.sim.trace import MICROS
from simsi.sim.world import SimResult

logger = logging.getLogger(__name__)

LOST_ALARMS_SHOWN = 10
"""Lost alarms listed in the text report; the JSON report lists all of them."""


@dataclass(frozen=True)
class Verdict:
    """One expectation and whether the run met it."""

    name: str
    expected: Any
    actual: Any
    met: bool


def _verdict(holds: bool) -> str:
    return "holds" if holds else "violated"


def evaluate(expect: Expectations, checks: CheckResults) -> list[Verdict]:
    """Return one :class:`Verdict` per expectation the scenario sets, in a fixed order."""
    alarms = checks.alarms
    verdicts: list[Verdict] = []
    for name, expected, actual in (
        ("single_instance", expect.single_instance, _verdict(checks.single_instance.holds)),
        ("routing", expect.routing, _verdict(checks.routing.holds)),
    ):
        if expected is not None:
            verdicts.append(Verdict(name, expected, actual, expected == actual))
    if expect.alarms_lost is not None:
        lost = len(alarms.lost)
        verdicts.append(
            Verdict("alarms_lost", expect.alarms_lost, lost, lost == expect.alarms_lost)
        )
    for name, limit, actual_count in (
        ("max_alarm_duplicates", expect.max_alarm_duplicates, alarms.duplicates),
        ("max_early_fires", expect.max_early_fires, alarms.early_fires),
    ):
        if limit is not None:
            verdicts.append(Verdict(name, limit, actual_count, actual_count <= limit))
    if expect.min_requests_served is not None:
        served = checks.routing.served
        verdicts.append(
            Verdict(
                "min_requests_served",
                expect.min_requests_served,
                served,
                served >= expect.min_requests_served,
            )
        )
    return verdicts


def expectations_met(result: SimResult) -> bool:
    """Return whether the run met every expectation of its scenario."""
    return all(verdict.met for verdict in evaluate(result.scenario.expect, result.checks))


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
        "fraction": served / routing.sent if routing.sent else None,
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
        "alarms": {
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
            "lag_max_s": alarms.lags_s[-1] if alarms.lags_s else None,
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
        },
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
        "run": {
            "events": stats.events,
            "trace_events": stats.trace_events,
            "sim_s": stats.sim_s,
            "wall_s": stats.wall_s,
            "sim_s_per_wall_s": stats.sim_per_wall,
            "events_per_wall_s": stats.events / stats.wall_s if stats.wall_s > 0 else None,
            "messages_sent": stats.messages_sent,
            "messages_dropped": stats.messages_dropped,
            "store_calls": stats.store_calls,
            "store_failures": stats.store_failures,
        },
    }


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _fmt_fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def format_report(result: SimResult) -> str:
    """Return the report of a run as text for a terminal."""
    data = report_dict(result)
    single = data["single_instance"]
    alarms = data["alarms"]
    routing = data["routing"]
    requests = data["requests"]
    available = data["availability"]
    run = data["run"]
    where = f" ({data['path']})" if data["path"] else ""

    lines = [
        f"scenario {data['scenario']}{where}, seed {data['seed']}",
        f"trace digest {data['digest']}",
        "",
        "invariants",
        f"  single instance  {_verdict(single['holds']):8}  {single['holdings']} holdings checked, "
        f"{single['instances_violated']} instances on two incarnations at once",
    ]
    if single["first_overlap"] is not None:
        lines.append(f"    first counterexample: {single['first_overlap']['description']}")

    lines.append(
        f"  routing          {_verdict(routing['holds']):8}  {routing['misrouted']} served by a "
        f"non-owner, {routing['not_owner']} rejected as not owner"
    )
    first_misrouted = routing["first_misrouted"]
    if first_misrouted is not None:
        lines.append(
            f"    first counterexample: request {first_misrouted['rid']} for "
            f"{first_misrouted['instance']!r} served by {first_misrouted['served_by']}, "
            f"owner {first_misrouted['owner']}"
        )

    lines.append(
        f"  alarm delivery   {_verdict(alarms['holds']):8}  {alarms['lost']} lost, "
        f"{alarms['stored_at_end']} still stored at the end"
    )
    for lost in alarms["lost_alarms"][:LOST_ALARMS_SHOWN]:
        lines.append(
            f"    lost: {lost['instance']} alarm {lost['alarm']} set by {lost['set_by']} at "
            f"{lost['set_s']:.3f} s, due {lost['due_s']:.3f} s, fired {lost['fires']} times"
        )
    if alarms["lost"] > LOST_ALARMS_SHOWN:
        lines.append(f"    ... and {alarms['lost'] - LOST_ALARMS_SHOWN} more (use --json)")

    outcomes = ", ".join(f"{name} {count}" for name, count in requests["client_outcomes"].items())
    lines += [
        "",
        f"alarms    set {alarms['set']}, fired {alarms['fired']}, done {alarms['done']}, "
        f"cancelled {alarms['cancelled']}, exhausted {alarms['exhausted']}, "
        f"replaced {alarms['replaced']}, lost {alarms['lost']}, pending {alarms['pending']}",
        f"          duplicates {alarms['duplicates']}, early fires {alarms['early_fires']} "
        f"(max {_fmt_s(alarms['max_early_s'])} early), lag p50 {_fmt_s(alarms['lag_p50_s'])}, "
        f"p99 {_fmt_s(alarms['lag_p99_s'])}, max {_fmt_s(alarms['lag_max_s'])}",
        f"requests  sent {requests['sent']}, served {requests['served']}; "
        f"client saw: {outcomes or 'nothing'}",
        f"          availability {_fmt_fraction(available['fraction'])}: "
        f"{available['served']} served, {available['failed']} failed, "
        f"{available['unanswered']} unanswered at the end",
        f"faults    {len(data['faults']['applied'])} applied, "
        f"{len(data['faults']['skipped'])} skipped",
        f"run       {run['sim_s']:g} simulated s in {run['wall_s']:.3f} wall s "
        f"({run['sim_s_per_wall_s']:.0f} simulated s per wall s), {run['events']} events "
        f"({run['events_per_wall_s'] or 0:,.0f} per wall s), {run['trace_events']} trace events",
    ]
    for skipped in data["faults"]["skipped"]:
        lines.append(f"    fault skipped at {skipped['at_s']:.3f} s: {skipped['reason']}")
    lines += ["", "expectations"]

    if not data["expectations"]:
        lines.append("  none set in [expect]")
    for verdict in data["expectations"]:
        state = "met" if verdict["met"] else "NOT MET"
        lines.append(
            f"  {verdict['name']} = {verdict['expected']!r}: got {verdict['actual']!r}, {state}"
        )
    lines.append(
        "result: " + ("expectations met" if data["expectations_met"] else "expectations NOT met")
    )
    return "\n".join(lines)


def log_summary(result: SimResult) -> None:
    """Log one line about the run on the ``simsi.sim.report`` logger."""
    logger.info(
        "scenario %s seed %d: %s, digest %s",
        result.scenario.name,
        result.seed,
        "expectations met" if expectations_met(result) else "expectations not met",
        result.digest[:16],
    )
