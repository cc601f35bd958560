"""evaluate(): one verdict per [expect] key, in a fixed order, with the actual value."""

from __future__ import annotations

import dataclasses

from simsi.sim.alarm_check import AlarmResult, LostAlarm
from simsi.sim.checkers import (
    CheckResults,
    RoutingResult,
    SingleInstanceResult,
    StoreResult,
)
from simsi.sim.expectations import Verdict, evaluate, expectations_met
from simsi.sim.scenario import Expectations

ALARMS = AlarmResult(
    set=10,
    fired=12,
    done=9,
    cancelled=0,
    exhausted=0,
    replaced=0,
    lost=(LostAlarm("inst-1", "a", "host-0#0", 0, 1, 0),),
    pending=0,
    duplicates=2,
    early_fires=3,
    max_early_s=1.5,
    lags_s=(0.0, 0.25, 4.0),
    phantoms=1,
)
CHECKS = CheckResults(
    single_instance=SingleInstanceResult(True, 5, 0),
    alarms=ALARMS,
    routing=RoutingResult(True, 0, None, 0, 8, 10, {"ok": 8, "timeout": 2}),
    store=StoreResult(peak_concurrent_reads=24, calls=100, failures=0),
)


def test_no_expectations_no_verdicts() -> None:
    assert evaluate(Expectations(), CHECKS) == []
    assert expectations_met(Expectations(), CHECKS)


def test_every_key_gets_its_actual_value() -> None:
    expect = Expectations(
        single_instance="holds",
        routing="holds",
        alarm_delivery="violated",
        alarms_lost=1,
        phantom_alarms=1,
        max_alarm_duplicates=2,
        min_alarm_duplicates=2,
        max_early_fires=3,
        min_early_fires=3,
        max_early_s=1.5,
        max_alarm_lag_s=4.0,
        min_requests_served=8,
        min_availability=0.8,
        max_availability=0.8,
        max_concurrent_store_reads=24,
    )

    verdicts = evaluate(expect, CHECKS)

    assert [(v.name, v.actual) for v in verdicts] == [
        ("single_instance", "holds"),
        ("routing", "holds"),
        ("alarm_delivery", "violated"),
        ("alarms_lost", 1),
        ("phantom_alarms", 1),
        ("max_alarm_duplicates", 2),
        ("min_alarm_duplicates", 2),
        ("max_early_fires", 3),
        ("min_early_fires", 3),
        ("max_early_s", 1.5),
        ("max_alarm_lag_s", 4.0),
        ("min_requests_served", 8),
        ("min_availability", 0.8),
        ("max_availability", 0.8),
        ("max_concurrent_store_reads", 24),
    ]
    assert all(v.met for v in verdicts)


def test_bounds_fail_one_past_the_limit() -> None:
    expect = Expectations(
        max_alarm_duplicates=1,
        min_early_fires=4,
        max_concurrent_store_reads=23,
        min_availability=0.81,
        phantom_alarms=0,
    )

    verdicts = evaluate(expect, CHECKS)

    assert [(v.name, v.met) for v in verdicts] == [
        ("phantom_alarms", False),
        ("max_alarm_duplicates", False),
        ("min_early_fires", False),
        ("min_availability", False),
        ("max_concurrent_store_reads", False),
    ]
    assert not expectations_met(expect, CHECKS)


def test_bound_without_value_is_not_met() -> None:
    checks = dataclasses.replace(
        CHECKS,
        alarms=dataclasses.replace(ALARMS, lags_s=()),
        routing=RoutingResult(True, 0, None, 0, 0, 0, {}),
    )

    verdicts = evaluate(Expectations(max_alarm_lag_s=1.0, min_availability=0.0), checks)

    assert verdicts == [
        Verdict("max_alarm_lag_s", 1.0, None, False),
        Verdict("min_availability", 0.0, None, False),
    ]
