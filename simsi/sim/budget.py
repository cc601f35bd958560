"""Random fault mixes: a :class:`FaultBudget` draws a fault schedule from the run's seed.

A scenario may give a ``[faults_random]`` table next to its fixed ``[[faults]]``::

    [faults_random]
    kinds = ["crash", "clock_step", "store_outage"]
    count = 3                 # exactly 3 faults; or max = 3 for 0 to 3
    window_s = [10, 40]       # every drawn fault falls in this window of true time
    hosts = "all"             # or a list of host ids that host faults may target
    min_gap_s = 2             # at least this long between two drawn faults
    [faults_random.crash]     # optional: ranges for one kind's parameters
    restart_after_s = [2, 8]  # a number range, a list of choices or one fixed value

Every budget constraint is a plain attribute, so a tool that generates
schedules itself (with Hypothesis, say) can read them: :attr:`FaultBudget.kinds`,
:meth:`FaultBudget.count_range`, :attr:`FaultBudget.window_s`,
:attr:`FaultBudget.hosts`, :attr:`FaultBudget.min_gap_s` and
:meth:`FaultBudget.spaces` (the value space of each drawable parameter), and
check a schedule with :meth:`FaultBudget.problems`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simsi.sim.faults import (
    FAULT_KINDS,
    Fault,
    FaultKind,
    Param,
    initial_live,
    step_schedule,
)
from simsi.sim.fields import Table

TIME_DECIMALS = 3
"""Drawn times and numbers are rounded to this many decimals, so schedules read well as TOML."""

_GAP_TOLERANCE = 1e-6


@dataclass(frozen=True)
class NumberSpace:
    """Numbers a budget draws uniformly from ``[low, high]``, rounded to 3 decimals."""

    low: float
    high: float
    integer: bool = False

    def draw(self, rng: random.Random) -> float | int:
        """Return one value."""
        if self.integer:
            return rng.randint(int(self.low), int(self.high))
        return round(rng.uniform(self.low, self.high), TIME_DECIMALS)

    def contains(self, value: Any) -> bool:
        """Return whether ``value`` lies in the space."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and self.low - _GAP_TOLERANCE <= value <= self.high + _GAP_TOLERANCE


@dataclass(frozen=True)
class ChoiceSpace:
    """Strings a budget picks from with equal probability."""

    values: tuple[str, ...]

    def draw(self, rng: random.Random) -> str:
        """Return one value."""
        return rng.choice(self.values)

    def contains(self, value: Any) -> bool:
        """Return whether ``value`` is one of the choices."""
        return value in self.values


ParamSpace = NumberSpace | ChoiceSpace


def default_space(param: Param) -> ParamSpace | None:
    """Return the space a budget draws ``param`` from when it sets none, or ``None``."""
    if param.type == "choice" and param.choices is not None:
        return ChoiceSpace(param.choices)
    if param.draw is not None and param.type in ("number", "integer"):
        return NumberSpace(*param.draw, integer=param.type == "integer")
    return None


@dataclass(frozen=True)
class FaultBudget:
    """A random fault mix: which kinds, how many, when, on which hosts, with which values.

    Attributes:
        kinds: the fault kinds to draw from; each has ``budget=True`` in
            :data:`~simsi.sim.faults.FAULT_KINDS`.
        count: draw exactly this many faults, or ``None`` to use ``max_count``.
        max_count: draw between 0 and this many faults, when ``count`` is ``None``.
        window_s: ``(start, end)`` true seconds that every drawn fault falls in.
        hosts: host ids that host faults may target, or ``None`` for every cluster host.
        min_gap_s: the smallest distance in true seconds between two drawn faults.
        params: per kind, the spaces that replace the parameters' default spaces.
    """

    kinds: tuple[str, ...]
    window_s: tuple[float, float]
    count: int | None = None
    max_count: int | None = None
    hosts: tuple[str, ...] | None = None
    min_gap_s: float = 0.0
    params: Mapping[str, Mapping[str, ParamSpace]] = field(default_factory=dict)

    def count_range(self) -> tuple[int, int]:
        """Return the smallest and largest number of faults the budget draws."""
        if self.count is not None:
            return (self.count, self.count)
        return (0, self.max_count or 0)

    def target_hosts(self, cluster_hosts: Sequence[str]) -> tuple[str, ...]:
        """Return the hosts that host faults may target in a cluster of ``cluster_hosts``."""
        return tuple(cluster_hosts) if self.hosts is None else self.hosts

    def spaces(self, kind: str) -> dict[str, ParamSpace]:
        """Return the space of every parameter of ``kind`` that the budget draws."""
        overrides = self.params.get(kind, {})
        result: dict[str, ParamSpace] = {}
        for param in FAULT_KINDS[kind].params:
            space = overrides.get(param.name) or default_space(param)
            if space is not None:
                result[param.name] = space
        return result

    # -- drawing -----------------------------------------------------------------------------

    def draw(
        self, rng: random.Random, fixed: Sequence[Fault] = (), *, hosts: Sequence[str] = ()
    ) -> list[Fault]:
        """Draw a fault schedule from ``rng``; the same state of ``rng`` gives the same schedule.

        Args:
            rng: the random source, usually ``component_random(seed, "faults")``.
            fixed: the scenario's fixed faults; drawn host faults only target hosts
                on which they can apply alongside these.
            hosts: the cluster's host ids; needed when :attr:`hosts` is ``None``.

        A slot whose drawn kind fits no host tries the other kinds in turn and
        stays empty if none fits, so a budget may yield fewer faults than its count.
        """
        low, high = self.count_range()
        count = rng.randint(low, high)
        if count == 0:
            return []
        start, end = self.window_s
        slack = max(0.0, (end - start) - (count - 1) * self.min_gap_s)
        offsets = sorted(round(rng.uniform(0.0, slack), TIME_DECIMALS) for _ in range(count))
        times = [
            round(start + offset + index * self.min_gap_s, TIME_DECIMALS)
            for index, offset in enumerate(offsets)
        ]
        targets = self.target_hosts(hosts)
        cluster = tuple(hosts) or targets
        drawn: list[Fault] = []
        for at in times:
            first = rng.randrange(len(self.kinds))
            for step in range(len(self.kinds)):
                kind = FAULT_KINDS[self.kinds[(first + step) % len(self.kinds)]]
                fault = self._draw_one(rng, kind, at, targets, cluster, [*fixed, *drawn])
                if fault is not None:
                    drawn.append(fault)
                    break
        return drawn

    def _draw_one(
        self,
        rng: random.Random,
        kind: FaultKind,
        at: float,
        targets: Sequence[str],
        cluster: Sequence[str],
        earlier: Sequence[Fault],
    ) -> Fault | None:
        params = {name: space.draw(rng) for name, space in self.spaces(kind.name).items()}
        host: str | None = None
        if kind.targets_host:
            eligible = [h for h in targets if _fits(kind, h, at, params, cluster, earlier)]
            if not eligible:
                return None
            host = rng.choice(eligible)
        return Fault(at, kind.name, host, params)

    # -- checking ----------------------------------------------------------------------------

    def problems(self, faults: Sequence[Fault], hosts: Sequence[str] = ()) -> list[str]:
        """Return every way ``faults`` break this budget; an empty list means they fit.

        Checks the count, kinds, window, gaps, target hosts and parameter spaces.
        It does not check host states; :func:`~simsi.sim.faults.check_schedule` does.
        """
        found: list[str] = []
        low, high = self.count_range()
        if not low <= len(faults) <= high:
            found.append(f"{len(faults)} faults, expected {low} to {high}")
        targets = set(self.target_hosts(hosts))
        start, end = self.window_s
        times = sorted(fault.at for fault in faults)
        for earlier, later in itertools.pairwise(times):
            if later - earlier < self.min_gap_s - _GAP_TOLERANCE:
                found.append(
                    f"faults at {earlier:g} s and {later:g} s are closer than {self.min_gap_s:g} s"
                )
        for fault in faults:
            where = f"{fault.kind} at {fault.at:g} s"
            if fault.kind not in self.kinds:
                found.append(f"{where}: kind not in {list(self.kinds)}")
                continue
            if not start - _GAP_TOLERANCE <= fault.at <= end + _GAP_TOLERANCE:
                found.append(f"{where}: outside the window [{start:g}, {end:g}] s")
            if fault.host is not None and targets and fault.host not in targets:
                found.append(f"{where}: host {fault.host!r} not in {sorted(targets)}")
            for name, space in self.spaces(fault.kind).items():
                if name in fault.params and not space.contains(fault.params[name]):
                    found.append(f"{where}: {name} = {fault.params[name]!r} outside {space}")
        return found

    def to_dict(self) -> dict[str, Any]:
        """Return the budget as the ``[faults_random]`` table of a scenario file."""
        data: dict[str, Any] = {"kinds": list(self.kinds)}
        if self.count is not None:
            data["count"] = self.count
        if self.max_count is not None:
            data["max"] = self.max_count
        data["window_s"] = list(self.window_s)
        data["hosts"] = "all" if self.hosts is None else list(self.hosts)
        data["min_gap_s"] = self.min_gap_s
        for kind, spaces in self.params.items():
            data[kind] = {
                name: [space.low, space.high]
                if isinstance(space, NumberSpace)
                else list(space.values)
                for name, space in spaces.items()
            }
        return data


def _fits(
    kind: FaultKind,
    host: str,
    at: float,
    params: Mapping[str, Any],
    cluster: Sequence[str],
    earlier: Sequence[Fault],
) -> bool:
    """Return whether a fault of ``kind`` on ``host`` at ``at`` applies after ``earlier``."""
    live = initial_live(cluster)
    for fault in sorted(earlier, key=lambda f: f.at):
        if fault.at > at:
            break
        if fault.host == host and _busy(fault, at):
            return False
        try:
            step_schedule(live, fault)
        except ValueError:
            continue
    try:
        step_schedule(live, Fault(at, kind.name, host, params))
    except ValueError:
        return False
    return True


def _busy(fault: Fault, at: float) -> bool:
    """Return whether the host of ``fault`` is still coming back from it at ``at``."""
    restart = fault.params.get("restart_after_s")
    return restart is not None and at <= fault.at + float(restart) + 1.0


def read_budget(table: Table, hosts: Sequence[str], end_s: float) -> FaultBudget:
    """Read a ``[faults_random]`` table.

    Raises:
        ScenarioError: a key is missing, unknown or invalid.
    """
    budget_kinds = sorted(name for name, kind in FAULT_KINDS.items() if kind.budget)
    kinds = table.strings("kinds", choices=budget_kinds, min_items=1, example='kinds = ["crash"]')
    count: int | None = None
    max_count: int | None = None
    if table.has("count") and table.has("max"):
        raise table.error("max", "give either count (exactly N faults) or max (0 to N), not both")
    if table.has("max"):
        max_count = table.integer("max", minimum=0, example="max = 3")
    else:
        count = table.integer("count", minimum=0, example="count = 3")
    window = table.number_range(
        "window_s", unit="seconds of true time", example="window_s = [10, 40]"
    )
    if window[1] > end_s:
        raise table.error(
            "window_s", f"invalid value {list(window)!r}: the run ends at {end_s:g} s"
        )
    target = table.raw("hosts", "all")
    targets: tuple[str, ...] | None = None
    if target != "all":
        targets = table.strings(
            "hosts", choices=list(hosts), min_items=1, example='hosts = ["host-0"]'
        )
    gap = table.number("min_gap_s", 0.0, minimum=0, unit="seconds", example="min_gap_s = 2")
    largest = count if count is not None else max_count or 0
    if largest > 1 and (largest - 1) * gap > window[1] - window[0]:
        raise table.error(
            "min_gap_s",
            f"{largest} faults {gap:g} s apart do not fit in window_s {list(window)!r}; "
            "widen the window, lower the gap or draw fewer faults",
        )
    params = {
        kind: _read_spaces(table.table(kind), FAULT_KINDS[kind])
        for kind in kinds
        if table.has(kind)
    }
    table.finish(["kinds", "count", "max", "window_s", "hosts", "min_gap_s", *kinds])
    return FaultBudget(kinds, window, count, max_count, targets, gap, params)


def _read_spaces(table: Table, kind: FaultKind) -> dict[str, ParamSpace]:
    spaces: dict[str, ParamSpace] = {}
    for param in kind.params:
        if table.has(param.name):
            spaces[param.name] = _read_space(table, kind, param)
    table.finish([param.name for param in kind.params])
    return spaces


def _read_space(table: Table, kind: FaultKind, param: Param) -> ParamSpace:
    """Read one parameter's space: ``[min, max]``, a list of choices, or one fixed value."""
    value = table.raw(param.name)
    if param.type == "choice" and param.choices is not None:
        items = [value] if isinstance(value, str) else value
        return ChoiceSpace(
            table.check_strings(param.name, items, choices=param.choices, min_items=1)
        )
    if param.type not in ("number", "integer"):
        raise table.error(
            param.name,
            f"parameter {param.name!r} of {kind.name!r} cannot be drawn at random; "
            "set it in a fixed [[faults]] entry instead",
        )
    example = f"{param.name} = [1, 5]"
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2:
        raise table.error(param.name, f"invalid value {value!r}: expected [min, max] or one number")
    low, high = (
        table.check_number(
            param.name,
            item,
            param.minimum,
            param.maximum,
            above=param.above,
            unit=param.unit,
            example=example,
        )
        for item in pair
    )
    if high < low:
        raise table.error(
            param.name, f"invalid value {value!r}: expected [min, max] with min <= max"
        )
    return NumberSpace(low, high, integer=param.type == "integer")
