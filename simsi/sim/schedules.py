"""Hypothesis strategies of fault schedules within a :class:`~simsi.sim.budget.FaultBudget`.

A scenario's ``[faults_random]`` budget bounds the faults a run draws from its
seed: kinds, count, time window, target hosts, the gap between faults and the
value space of each parameter. :func:`schedules` draws from the same bounds
with Hypothesis instead of the seed, so a failing schedule can be shrunk::

    budget = FaultBudget(kinds=("crash", "clock_step"), window_s=(5.0, 60.0), max_count=4)
    strategy = schedules(budget, cluster_hosts=["host-0", "host-1", "host-2"])

Every drawn schedule passes the scenario loader's schedule check together with
the fixed faults it is drawn alongside. A drawn fault that cannot apply where
it falls (a crash of a host that is down) is dropped, and so is one that comes
closer than ``min_gap_s`` to the previous one. Times are drawn in whole
milliseconds and shrink toward the start of the window. Numbers shrink toward
the low end of their space (toward zero when it contains zero), choices toward
the parameter's default, and whole faults can be deleted. So Hypothesis
shrinks a failing schedule to a short, early, plain one.

A scenario without a budget gets one from its fixed faults with
:func:`budget_from_faults`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement, expand_hosts
from simsi.sim.budget import ChoiceSpace, FaultBudget, NumberSpace, ParamSpace
from simsi.sim.faults import FAULT_KINDS, Fault, Param, check_schedule
from simsi.sim.fields import REQUIRED
from simsi.sim.scenario import Scenario

RESOLUTION = 1000
"""Times and non-integer parameters are drawn in steps of ``1 / RESOLUTION``."""

_GAP_TOLERANCE = 1e-9


def check_budget(budget: FaultBudget, cluster_hosts: Sequence[str]) -> None:
    """Check that ``budget`` can draw schedules in a cluster of ``cluster_hosts``.

    Raises:
        ConfigError: a kind is unknown, a host-targeting kind has no host to target,
            the window is reversed, or a parameter without a default has no space.
    """
    unknown = [kind for kind in budget.kinds if kind not in FAULT_KINDS]
    if not budget.kinds or unknown:
        raise ConfigError(
            f"invalid budget kinds {list(budget.kinds)!r}: expected one or more of "
            f"{', '.join(sorted(FAULT_KINDS))}"
        )
    targets = budget.target_hosts(cluster_hosts)
    if not targets and any(FAULT_KINDS[kind].targets_host for kind in budget.kinds):
        raise ConfigError("invalid budget: no hosts to target; name the hosts faults may target")
    low, high = budget.count_range()
    if not 0 <= low <= high:
        raise ConfigError(
            f"invalid budget count range {low} to {high}: expected 0 <= min <= max faults"
        )
    start, end = budget.window_s
    if not 0 <= start <= end:
        raise ConfigError(
            f"invalid budget window {budget.window_s!r}: expected (start, end) true seconds "
            "with 0 <= start <= end"
        )
    for kind in budget.kinds:
        spaces = budget.spaces(kind)
        for param in FAULT_KINDS[kind].params:
            if param.default is REQUIRED and param.name not in spaces:
                raise ConfigError(
                    f"invalid budget: parameter {param.name!r} of fault kind {kind!r} has no "
                    "default and no space to draw from; give it one, like "
                    f"[faults_random.{kind}] {param.name} = [1, 5]"
                )


def describe_budget(budget: FaultBudget) -> str:
    """Return ``budget`` as one line for reports, like ``crash, stop on all hosts; 0 to 4 ...``."""
    low, high = budget.count_range()
    hosts = "all hosts" if budget.hosts is None else ", ".join(budget.hosts)
    start, end = budget.window_s
    gap = f", at least {budget.min_gap_s:g} s apart" if budget.min_gap_s else ""
    count = f"{low} faults" if low == high else f"{low} to {high} faults"
    return f"kinds {', '.join(budget.kinds)} on {hosts}; {count} in [{start:g}, {end:g}] s{gap}"


def known_hosts(scenario: Scenario) -> list[str]:
    """Return the cluster's hosts and every host of a pattern a fixed fault names, in order."""
    known = dict.fromkeys(Placement(scenario.cluster.hosts, scenario.cluster.shards).hosts)
    for fault in scenario.faults:
        pattern = fault.params.get("hosts")
        if isinstance(pattern, str):
            known.update(dict.fromkeys(expand_hosts(pattern)))
    return list(known)


def budget_from_faults(scenario: Scenario) -> FaultBudget:
    """Derive a budget from a scenario's fixed faults, for a scenario without ``[faults_random]``.

    The budget draws the same kinds and targets the same hosts, or every host of
    the cluster when no fault targets one. It draws up to twice as many faults
    (at least 2), anywhere in the run but its last millisecond. Numeric
    parameters the faults set range between those values and the parameter's
    default (or zero). Other parameters use the spaces the kinds define.

    Raises:
        ConfigError: the scenario has no faults to derive a budget from.
    """
    if not scenario.faults:
        raise ConfigError(
            f"scenario {scenario.name!r} has no [[faults]] and no [faults_random] to derive a "
            "fault budget from; add either, or name the kinds (simsi explore --kinds)"
        )
    kinds = tuple(dict.fromkeys(fault.kind for fault in scenario.faults))
    targeted = tuple(dict.fromkeys(f.host for f in scenario.faults if f.host is not None))
    seen: dict[str, dict[str, list[float]]] = {}
    for fault in scenario.faults:
        for name, value in fault.params.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                seen.setdefault(fault.kind, {}).setdefault(name, []).append(float(value))
    params: dict[str, dict[str, ParamSpace]] = {}
    for kind, names in seen.items():
        for name, values in names.items():
            param = _param(kind, name)
            if param.type in ("number", "integer"):
                params.setdefault(kind, {})[name] = _span(param, values)
    # NOTE: the window stops 1 ms before the end of the run because World.run raises
    # ValueError when an event falls exactly on the end time.
    return FaultBudget(
        kinds=kinds,
        window_s=(0.0, scenario.run.end_s - 1 / RESOLUTION),
        max_count=max(2, 2 * len(scenario.faults)),
        hosts=targeted or None,
        params=params,
    )


def budget_for(
    scenario: Scenario, kinds: Sequence[str] | None = None, max_faults: int | None = None
) -> FaultBudget:
    """Return the budget to explore ``scenario`` with, ``kinds`` and ``max_faults`` replaced.

    The budget is the scenario's ``[faults_random]``, or else one derived with
    :func:`budget_from_faults`. With ``kinds`` and neither of those, faults
    target every host, at most 4 of them (or ``max_faults``) anywhere in the run.

    Raises:
        ConfigError: no budget can be derived, or the result cannot draw schedules.
    """
    if scenario.faults_random is not None:
        budget = scenario.faults_random
    elif scenario.faults or not kinds:
        budget = budget_from_faults(scenario)
    else:
        window = (0.0, scenario.run.end_s - 1 / RESOLUTION)
        budget = FaultBudget(kinds=tuple(kinds), window_s=window, max_count=4)
    if kinds:
        budget = dataclasses.replace(budget, kinds=tuple(kinds))
    if max_faults is not None:
        budget = dataclasses.replace(budget, count=None, max_count=max_faults)
    check_budget(budget, Placement(scenario.cluster.hosts, scenario.cluster.shards).hosts)
    return budget


def _param(kind: str, name: str) -> Param:
    for param in FAULT_KINDS[kind].params:
        if param.name == name:
            return param
    raise KeyError(f"fault kind {kind!r} has no parameter {name!r}")


def _span(param: Param, values: list[float]) -> NumberSpace:
    anchor = param.default if isinstance(param.default, int | float) else 0.0
    too_low = param.minimum is not None and (
        anchor < param.minimum or (param.above and anchor <= param.minimum)
    )
    if too_low:
        anchor = min(values)
    return NumberSpace(
        min([*values, anchor]), max([*values, anchor]), integer=param.type == "integer"
    )


def _value(param: Param, space: ParamSpace) -> st.SearchStrategy[Any]:
    if isinstance(space, ChoiceSpace):
        ordered = sorted(space.values, key=lambda choice: choice != param.default)
        return st.sampled_from(ordered)
    if space.integer:
        return st.integers(int(space.low), int(space.high))
    low, high = round(space.low * RESOLUTION), round(space.high * RESOLUTION)
    if param.minimum is not None and param.above and low <= param.minimum * RESOLUTION:
        low = min(high, low + 1)
    return st.integers(low, high).map(lambda value: value / RESOLUTION)


@st.composite
def _fault(draw: st.DrawFn, budget: FaultBudget, targets: tuple[str, ...]) -> Fault:
    start, end = (round(bound * RESOLUTION) for bound in budget.window_s)
    at = draw(st.integers(start, end)) / RESOLUTION
    kind_name = draw(st.sampled_from(budget.kinds))
    kind = FAULT_KINDS[kind_name]
    host = draw(st.sampled_from(targets)) if kind.targets_host else None
    params: dict[str, Any] = {}
    spaces = budget.spaces(kind_name)
    for param in kind.params:
        space = spaces.get(param.name)
        if space is None:
            continue
        value = draw(_value(param, space))
        if value != param.default:
            params[param.name] = value
    return Fault(at, kind_name, host, params)


def valid_schedule(
    faults: Sequence[Fault],
    hosts: Sequence[str],
    *,
    fixed: Sequence[Fault] = (),
    min_gap_s: float = 0.0,
    known: Sequence[str] = (),
) -> tuple[Fault, ...]:
    """Return ``faults`` sorted by time, without those that cannot apply where they fall.

    Faults are taken in order of ``at`` (draw order at equal times). Each is kept
    only if it is at least ``min_gap_s`` after the last fault kept before it, and
    if the schedule check accepts it after the ``fixed`` faults and those kept.

    Args:
        faults: the drawn faults.
        hosts: the cluster's hosts, each running one incarnation at true time 0.
        fixed: faults that stay in the schedule whatever is drawn.
        min_gap_s: the smallest distance between two kept faults.
        known: hosts outside the cluster that faults may start (fleets).
    """
    ordered = sorted(enumerate(faults), key=lambda item: (item[1].at, item[0]))
    kept: list[Fault] = []
    for _index, fault in ordered:
        if kept and fault.at - kept[-1].at < min_gap_s - _GAP_TOLERANCE:
            continue
        candidate = [*fixed, *kept, fault]
        if not check_schedule(candidate, hosts, known):
            kept.append(fault)
    return tuple(kept)


def schedules(
    budget: FaultBudget,
    cluster_hosts: Sequence[str],
    *,
    fixed: Sequence[Fault] = (),
    known: Sequence[str] = (),
) -> st.SearchStrategy[tuple[Fault, ...]]:
    """Return a strategy of fault schedules within ``budget``, sorted by time.

    The schedules hold the drawn faults only, which apply together with ``fixed``.
    Hypothesis draws at least the budget's minimum count of faults, but faults
    that cannot apply are dropped, so a schedule may have fewer, as with
    :meth:`FaultBudget.draw <simsi.sim.budget.FaultBudget.draw>`.

    Args:
        budget: the bounds of the schedules.
        cluster_hosts: every host of the cluster.
        fixed: faults every run has; drawn faults must apply alongside them.
        known: hosts outside the cluster that faults may start (fleets).

    Raises:
        ConfigError: the budget cannot draw schedules (see :func:`check_budget`).
    """
    check_budget(budget, cluster_hosts)
    low, high = budget.count_range()
    targets = budget.target_hosts(cluster_hosts)
    drafts = st.lists(_fault(budget, targets), min_size=low, max_size=high)
    return drafts.map(
        lambda faults: valid_schedule(
            faults, cluster_hosts, fixed=fixed, min_gap_s=budget.min_gap_s, known=known
        )
    )
