"""Fault budgets and the Hypothesis strategy that draws fault schedules within one.

A :class:`ScheduleBudget` bounds the fault schedules a search may try: the
fault kinds, the hosts they target, how many faults, the window of true time
they fall in, and the range of each numeric parameter. :func:`schedules` turns
a budget into a Hypothesis strategy of valid schedules::

    budget = ScheduleBudget(kinds=("crash", "restart"), hosts=("host-1",), max_faults=4,
                            window=(0.0, 60.0))
    schedule = schedules(budget).example()      # a tuple of Fault, sorted by time

Every drawn schedule passes the scenario loader's schedule check, because a
fault that cannot apply where it falls (a restart of a host that is up) is
dropped. Times are drawn in whole milliseconds and shrink toward the start of
the window. Numbers shrink toward zero, choices toward the kind's default, and
whole faults can be deleted. So Hypothesis shrinks a failing schedule to a short one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement
from simsi.sim.faults import FAULT_KINDS, Fault, Param, check_schedule
from simsi.sim.fields import REQUIRED
from simsi.sim.scenario import Scenario

ParamRange = tuple[float, float]

DEFAULT_PARAM_RANGES: dict[str, dict[str, ParamRange]] = {
    "clock_offset": {"offset_s": (-2.0, 2.0)},
    "clock_drift": {"drift_ppm": (-500.0, 500.0)},
    "clock_step": {"step_s": (-2.0, 2.0)},
    "duplicate_identity": {"offset_s": (-0.5, 0.5)},
    "store_outage": {"duration_s": (0.1, 10.0)},
    "replace": {"start_delay_s": (0.0, 5.0)},
    "rolling_update": {"start_delay_s": (0.0, 5.0), "min_ready_s": (0.0, 10.0)},
}
"""Ranges drawn for numeric parameters a budget gives no range for, by kind and parameter.

A numeric parameter with neither a range here nor in the budget keeps its default.
"""

RESOLUTION = 1000
"""Times and numeric parameters are drawn in steps of ``1 / RESOLUTION``."""


@dataclass(frozen=True)
class ScheduleBudget:
    """Bounds on the fault schedules a search draws.

    Attributes:
        kinds: fault kinds to draw, keys of :data:`~simsi.sim.faults.FAULT_KINDS`.
        hosts: hosts that faults of host-targeting kinds pick from.
        max_faults: the largest number of faults drawn.
        window: ``(start, end)`` true seconds in which faults fall.
        params: per kind, the ``(low, high)`` range of numeric parameters; they
            override :data:`DEFAULT_PARAM_RANGES`.
        min_faults: the smallest number of faults in a schedule, after faults that
            cannot apply were dropped.
    """

    kinds: tuple[str, ...]
    hosts: tuple[str, ...]
    max_faults: int
    window: tuple[float, float]
    params: Mapping[str, Mapping[str, ParamRange]] = field(default_factory=dict)
    min_faults: int = 0

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if not self.kinds or unknown:
            raise ConfigError(
                f"invalid budget kinds {list(self.kinds)!r}: expected one or more of "
                f"{', '.join(sorted(FAULT_KINDS))}"
            )
        if not self.hosts and any(FAULT_KINDS[kind].targets_host for kind in self.kinds):
            raise ConfigError("invalid budget: hosts is empty; name the hosts faults may target")
        if not 0 <= self.min_faults <= self.max_faults:
            raise ConfigError(
                f"invalid budget counts min_faults={self.min_faults}, "
                f"max_faults={self.max_faults}: expected 0 <= min_faults <= max_faults"
            )
        start, end = self.window
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
            raise ConfigError(
                f"invalid budget window {self.window!r}: expected (start, end) true seconds "
                "with 0 <= start <= end"
            )
        for kind in self.kinds:
            for param in FAULT_KINDS[kind].params:
                needs_range = param.choices is None and param.default is REQUIRED
                if needs_range and self.param_range(kind, param.name) is None:
                    raise ConfigError(
                        f"invalid budget: parameter {param.name!r} of fault kind {kind!r} "
                        "has no default and no range; give it one in params, like "
                        f"params={{{kind!r}: {{{param.name!r}: (0.0, 1.0)}}}}"
                    )

    def param_range(self, kind: str, name: str) -> ParamRange | None:
        """Return the range drawn for numeric parameter ``name`` of ``kind``, or ``None``."""
        given = self.params.get(kind, {}).get(name)
        if given is not None:
            return given
        return DEFAULT_PARAM_RANGES.get(kind, {}).get(name)

    def describe(self) -> str:
        """Return the budget as one line for reports."""
        hosts = ", ".join(self.hosts) or "no hosts"
        return (
            f"kinds {', '.join(self.kinds)} on {hosts}; {self.min_faults} to {self.max_faults} "
            f"faults in [{self.window[0]:g}, {self.window[1]:g}] s"
        )


def budget_from_faults(scenario: Scenario) -> ScheduleBudget:
    """Derive a budget from a scenario's fixed faults.

    The budget allows the same kinds and hosts, or every host of the cluster when
    no fault targets one. It allows up to twice as many faults (at least 2),
    anywhere in the run. Numeric parameters range between the values the faults
    use and the parameter's default (or zero).

    Raises:
        ConfigError: the scenario has no faults to derive a budget from.
    """
    if not scenario.faults:
        raise ConfigError(
            f"scenario {scenario.name!r} has no [[faults]] to derive a fault budget from; "
            "add the faults the search may use, or name the kinds (simsi explore --kinds)"
        )
    kinds = tuple(dict.fromkeys(fault.kind for fault in scenario.faults))
    targeted = [fault.host for fault in scenario.faults if fault.host is not None]
    hosts = tuple(dict.fromkeys(targeted)) or tuple(
        Placement(scenario.cluster.hosts, scenario.cluster.shards).hosts
    )
    seen: dict[str, dict[str, list[float]]] = {}
    for fault in scenario.faults:
        for name, value in fault.params.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                seen.setdefault(fault.kind, {}).setdefault(name, []).append(float(value))
    params = {
        kind: {name: _span(_param(kind, name), values) for name, values in names.items()}
        for kind, names in seen.items()
    }
    return ScheduleBudget(
        kinds=kinds,
        hosts=hosts,
        max_faults=max(2, 2 * len(scenario.faults)),
        window=(0.0, scenario.run.end_s),
        params=params,
    )


def budget_for(
    scenario: Scenario, kinds: Sequence[str] | None = None, max_faults: int | None = None
) -> ScheduleBudget:
    """Return the budget to explore ``scenario`` with, with ``kinds`` and ``max_faults`` replaced.

    Without ``kinds`` the budget comes from :func:`budget_from_faults`. With
    ``kinds`` and no faults in the scenario, faults target every host of the
    cluster, at most 4 of them (or ``max_faults``) anywhere in the run.

    Raises:
        ConfigError: no budget can be derived, or a kind or count is invalid.
    """
    if scenario.faults:
        budget = budget_from_faults(scenario)
    elif kinds:
        budget = ScheduleBudget(
            kinds=tuple(kinds),
            hosts=tuple(Placement(scenario.cluster.hosts, scenario.cluster.shards).hosts),
            max_faults=4,
            window=(0.0, scenario.run.end_s),
        )
    else:
        budget = budget_from_faults(scenario)
    if kinds:
        budget = dataclasses.replace(budget, kinds=tuple(kinds))
    if max_faults is not None:
        budget = dataclasses.replace(budget, max_faults=max_faults)
    return budget


def _param(kind: str, name: str) -> Param:
    for param in FAULT_KINDS[kind].params:
        if param.name == name:
            return param
    raise KeyError(f"fault kind {kind!r} has no parameter {name!r}")


def _span(param: Param, values: list[float]) -> ParamRange:
    anchor = param.default if isinstance(param.default, int | float) else 0.0
    if param.minimum is not None and (
        anchor < param.minimum or (param.above and anchor <= param.minimum)
    ):
        anchor = min(values)
    return (min([*values, anchor]), max([*values, anchor]))


def _number(param: Param, bounds: ParamRange) -> st.SearchStrategy[float]:
    low, high = (round(bound * RESOLUTION) for bound in bounds)
    if param.minimum is not None:
        smallest = math.ceil(param.minimum * RESOLUTION) + (1 if param.above else 0)
        low = max(low, smallest)
        high = max(high, low)
    return st.integers(low, high).map(lambda value: value / RESOLUTION)


def _choice(param: Param) -> st.SearchStrategy[str]:
    assert param.choices is not None
    ordered = sorted(param.choices, key=lambda choice: choice != param.default)
    return st.sampled_from(ordered)


@st.composite
def _fault(draw: st.DrawFn, budget: ScheduleBudget) -> Fault:
    start, end = (round(bound * RESOLUTION) for bound in budget.window)
    at = draw(st.integers(start, end)) / RESOLUTION
    kind_name = draw(st.sampled_from(budget.kinds))
    kind = FAULT_KINDS[kind_name]
    host = draw(st.sampled_from(budget.hosts)) if kind.targets_host else None
    params: dict[str, Any] = {}
    for param in kind.params:
        if param.choices is not None:
            value: Any = draw(_choice(param))
        else:
            bounds = budget.param_range(kind_name, param.name)
            if bounds is None:
                continue
            value = draw(_number(param, bounds))
        if value != param.default:
            params[param.name] = value
    return Fault(at, kind_name, host, params)


def valid_schedule(faults: Sequence[Fault], hosts: Sequence[str]) -> tuple[Fault, ...]:
    """Return ``faults`` sorted by time, without those that cannot apply where they fall.

    Faults are taken in order of ``at`` (draw order at equal times), as the
    world applies them, and each is kept only if the schedule check accepts it
    after the faults kept before it.
    """
    ordered = sorted(enumerate(faults), key=lambda item: (item[1].at, item[0]))
    kept: list[Fault] = []
    for _index, fault in ordered:
        candidate = [*kept, fault]
        if not check_schedule(candidate, hosts):
            kept = candidate
    return tuple(kept)


def schedules(
    budget: ScheduleBudget, cluster_hosts: Sequence[str] | None = None
) -> st.SearchStrategy[tuple[Fault, ...]]:
    """Return a strategy of valid fault schedules within ``budget``, sorted by time.

    Args:
        budget: the bounds of the schedules.
        cluster_hosts: every host of the cluster, for the schedule check; defaults
            to ``budget.hosts``.
    """
    hosts = tuple(cluster_hosts) if cluster_hosts is not None else budget.hosts
    drafts = st.lists(_fault(budget), max_size=budget.max_faults)
    checked = drafts.map(lambda faults: valid_schedule(faults, hosts))
    if budget.min_faults:
        return checked.filter(lambda schedule: len(schedule) >= budget.min_faults)
    return checked
