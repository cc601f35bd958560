"""Reports of a finished run: expectations, invariants, alarm and request counts.

:func:`~simsi.sim.expectations.evaluate` compares the checks with the
scenario's ``[expect]`` table. :func:`report_dict` gives everything as
JSON-ready data, and :func:`format_report` gives it as text for a terminal.
"""

from __future__ import annotations

import logging

from simsi.sim.expectations import Verdict, evaluate
from simsi.sim.report_data import availability, report_dict
from simsi.sim.world import SimResult

logger = logging.getLogger(__name__)

LOST_ALARMS_SHOWN = 10
"""Lost alarms listed in the text report; the JSON report lists all of them."""

__all__ = [
    "LOST_ALARMS_SHOWN",
    "Verdict",
    "availability",
    "evaluate",
    "expectations_met",
    "format_report",
    "log_summary",
    "report_dict",
]


def _verdict(holds: bool) -> str:
    return "holds" if holds else "violated"


def expectations_met(result: SimResult) -> bool:
    """Return whether the run met every expectation of its scenario."""
    return all(verdict.met for verdict in evaluate(result.scenario.expect, result.checks))


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _fmt_fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _store_line(store: dict[str, int]) -> str:
    line = (
        f"store     {store['calls']} calls, {store['failures']} failed, "
        f"peak {store['peak_concurrent_reads']} concurrent reads"
    )
    if store["commits"] or store["conflicts"] or store["unknown_results"]:
        line += (
            f"; {store['commits']} commits, {store['conflicts']} conflicts, "
            f"{store['unknown_results']} unknown results"
        )
    return line


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
        f"          duplicates {alarms['duplicates']}, phantoms {alarms['phantoms']}, "
        f"early fires {alarms['early_fires']} "
        f"(max {_fmt_s(alarms['max_early_s'])} early), lag p50 {_fmt_s(alarms['lag_p50_s'])}, "
        f"p99 {_fmt_s(alarms['lag_p99_s'])}, max {_fmt_s(alarms['lag_max_s'])}",
        f"requests  sent {requests['sent']}, served {requests['served']}; "
        f"client saw: {outcomes or 'nothing'}",
        f"          availability {_fmt_fraction(available['fraction'])}: "
        f"{available['served']} served, {available['failed']} failed, "
        f"{available['unanswered']} unanswered at the end",
        _store_line(data["store"]),
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
