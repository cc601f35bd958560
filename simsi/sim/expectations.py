"""Compare a run's checks with its scenario's ``[expect]`` table.

:func:`evaluate` returns one :class:`Verdict` per expectation the scenario
sets, in a fixed order: the invariants first (``single_instance``,
``routing``, ``alarm_delivery``), then exact counts, then bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simsi.sim.checkers import CheckResults
from simsi.sim.specs import Expectations


@dataclass(frozen=True)
class Verdict:
    """One expectation and whether the run met it."""

    name: str
    expected: Any
    actual: Any
    met: bool


def _verdict(holds: bool) -> str:
    return "holds" if holds else "violated"


def _at_most(actual: Any, limit: Any) -> bool:
    return actual is not None and actual <= limit


def _at_least(actual: Any, limit: Any) -> bool:
    return actual is not None and actual >= limit


def _equal(actual: Any, expected: Any) -> bool:
    return bool(actual == expected)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def evaluate(expect: Expectations, checks: CheckResults) -> list[Verdict]:
    """Return one :class:`Verdict` per expectation ``expect`` sets, in a fixed order.

    A bound on a value the run did not produce (a lag when no alarm fired, the
    availability when no request was sent) is not met.
    """
    alarms = checks.alarms
    routing = checks.routing
    rows: list[tuple[str, Any, Any, Callable[[Any, Any], bool]]] = [
        ("single_instance", expect.single_instance, _verdict(checks.single_instance.holds), _equal),
        ("routing", expect.routing, _verdict(routing.holds), _equal),
        ("alarm_delivery", expect.alarm_delivery, _verdict(alarms.holds), _equal),
        ("alarms_lost", expect.alarms_lost, len(alarms.lost), _equal),
        ("phantom_alarms", expect.phantom_alarms, alarms.phantoms, _equal),
        ("max_alarm_duplicates", expect.max_alarm_duplicates, alarms.duplicates, _at_most),
        ("min_alarm_duplicates", expect.min_alarm_duplicates, alarms.duplicates, _at_least),
        ("max_early_fires", expect.max_early_fires, alarms.early_fires, _at_most),
        ("min_early_fires", expect.min_early_fires, alarms.early_fires, _at_least),
        ("max_early_s", expect.max_early_s, _round(alarms.max_early_s), _at_most),
        ("max_alarm_lag_s", expect.max_alarm_lag_s, _round(alarms.max_lag_s), _at_most),
        ("min_requests_served", expect.min_requests_served, routing.served, _at_least),
        ("min_availability", expect.min_availability, _round(routing.availability), _at_least),
        ("max_availability", expect.max_availability, _round(routing.availability), _at_most),
        (
            "max_concurrent_store_reads",
            expect.max_concurrent_store_reads,
            checks.store.peak_concurrent_reads,
            _at_most,
        ),
    ]
    return [
        Verdict(name, expected, actual, meets(actual, expected))
        for name, expected, actual, meets in rows
        if expected is not None
    ]


def expectations_met(expect: Expectations, checks: CheckResults) -> bool:
    """Return whether ``checks`` meet every expectation of ``expect``."""
    return all(verdict.met for verdict in evaluate(expect, checks))
