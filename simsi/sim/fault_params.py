"""Fault parameters: their declaration, reading and checking, and network endpoint names.

A :class:`Param` declares one parameter of a fault kind: its value type,
default, bounds and the range a random budget draws from. :meth:`Param.read`
reads it from a ``[[faults]]`` table, checked against a :class:`ReadContext`.
Everything here is importable from :mod:`simsi.sim.faults` as well.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simsi.core.errors import ConfigError
from simsi.core.placement import expand_hosts
from simsi.sim.fields import REQUIRED, Table

SPECIAL_ENDPOINTS = ("client", "store")
"""Network endpoints that are not hosts: the workload's client and the alarm store."""

FLEET_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""Valid fleet names; fleet-qualified host keys look like ``green:host-1``."""

_ENDPOINT = re.compile(r"(?:(?P<fleet>[A-Za-z0-9_-]+):)?(?P<host>[A-Za-z0-9._-]+)(?:#\d+)?")


@dataclass(frozen=True)
class ReadContext:
    """The facts that fault parameters are checked against while a scenario loads.

    Attributes:
        hosts: the cluster's host ids, which ``host`` must be one of.
        known_hosts: every host id the scenario names (its cluster and the patterns
            of its rollouts and fleets), which endpoints may name.
        end_s: the end of the run, which ``at`` must not pass.
        shards: the cluster's shard count.
    """

    hosts: tuple[str, ...]
    known_hosts: frozenset[str]
    end_s: float
    shards: int = 1


PARAM_TYPES = ("number", "integer", "choice", "string", "endpoints", "groups", "range")
"""Value types of fault parameters."""


@dataclass(frozen=True)
class Param:
    """One parameter of a fault kind.

    Attributes:
        name: the key in the fault's table.
        default: the value when the key is missing; :data:`REQUIRED` if it must be given,
            ``None`` if the parameter is optional and has no value then.
        choices: allowed strings; giving them makes the parameter a ``"choice"``.
        minimum: the smallest allowed number.
        maximum: the largest allowed number.
        above: whether ``minimum`` itself is excluded.
        unit: the unit named in errors.
        example: a correct line shown in errors.
        value_type: one of :data:`PARAM_TYPES`; ``"number"`` unless ``choices`` are given.
        draw: the range a :class:`~simsi.sim.budget.FaultBudget` draws numbers from
            when the budget sets none; ``None`` for parameters a budget cannot draw.
        check: extra check of a ``"string"`` value; returns a problem or ``None``.
    """

    name: str
    default: Any = REQUIRED
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    unit: str = ""
    example: str = ""
    value_type: str = ""
    draw: tuple[float, float] | None = None
    check: Callable[[str], str | None] | None = None

    @property
    def type(self) -> str:
        """The value type, one of :data:`PARAM_TYPES`."""
        if self.value_type:
            return self.value_type
        return "choice" if self.choices is not None else "number"

    @property
    def drawable(self) -> bool:
        """Whether a random budget can draw a value: a choice or a number with a draw range."""
        return self.type == "choice" or (self.type in ("number", "integer") and bool(self.draw))

    def read(self, table: Table, context: ReadContext) -> Any:
        """Read and check this parameter from a fault's table."""
        kind = self.type
        if self.default is None and not table.has(self.name):
            table.raw(self.name, None)
            return None
        if kind == "choice":
            return table.string(self.name, self.default, choices=self.choices, example=self.example)
        if kind == "integer":
            value = table.integer(
                self.name,
                self.default,
                minimum=None if self.minimum is None else int(self.minimum),
                example=self.example,
            )
            return value
        if kind == "string":
            text = table.string(self.name, self.default, example=self.example)
            problem = self.check(text) if self.check is not None else None
            if problem is not None:
                raise table.error(self.name, f"invalid value {text!r}: {problem}")
            return text
        if kind == "endpoints":
            names = table.strings(self.name, self.default, min_items=1, example=self.example)
            _check_endpoints(table, self.name, names, context)
            return names
        if kind == "groups":
            return _read_groups(table, self, context)
        if kind == "range":
            return table.number_range(
                self.name,
                self.default,
                minimum=self.minimum or 0.0,
                unit=self.unit,
                example=self.example,
            )
        return table.number(
            self.name,
            self.default,
            minimum=self.minimum,
            maximum=self.maximum,
            above=self.above,
            unit=self.unit,
            example=self.example,
        )


def _check_endpoints(table: Table, name: str, names: Sequence[str], context: ReadContext) -> None:
    for endpoint in names:
        problem = endpoint_problem(endpoint, context.known_hosts)
        if problem is not None:
            raise table.error(name, f"invalid endpoint {endpoint!r}: {problem}")


def endpoint_problem(endpoint: str, known_hosts: frozenset[str]) -> str | None:
    """Return why ``endpoint`` is not a valid network endpoint name, or ``None`` if it is.

    Valid names are ``"client"``, ``"store"``, a host id (``"host-1"``, every
    process of that host in every fleet), a fleet's host (``"green:host-1"``) and
    one process (``"host-1#0"``, ``"green:host-1#0"``).
    """
    if endpoint in SPECIAL_ENDPOINTS:
        return None
    match = _ENDPOINT.fullmatch(endpoint)
    hosts = ", ".join(sorted(known_hosts))
    if match is None:
        return (
            "expected 'client', 'store', a host id like 'host-1', a fleet's host like "
            "'green:host-1' or a process like 'host-1#0'"
        )
    if match["host"] not in known_hosts:
        return f"no host {match['host']!r} in this scenario; hosts are {hosts}"
    return None


def _read_groups(table: Table, param: Param, context: ReadContext) -> tuple[tuple[str, ...], ...]:
    value = table.raw(param.name, param.default, example=param.example)
    fix = f"; write e.g. {param.example}" if param.example else ""
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise table.error(
            param.name, f"invalid value {value!r}: expected at least 2 lists of endpoints{fix}"
        )
    groups = []
    seen: set[str] = set()
    for group in value:
        names = table.check_strings(param.name, group, min_items=1, example=param.example)
        _check_endpoints(table, param.name, names, context)
        repeated = seen.intersection(names)
        if repeated:
            raise table.error(
                param.name,
                f"endpoint {sorted(repeated)[0]!r} is in two groups; put it in one group only",
            )
        seen.update(names)
        groups.append(names)
    return tuple(groups)


def check_pattern(pattern: str) -> str | None:
    """Return why ``pattern`` is not a valid host pattern, or ``None`` if it is."""
    try:
        expand_hosts(pattern)
    except ConfigError as exc:
        return str(exc)
    return None


def check_fleet_name(name: str) -> str | None:
    """Return why ``name`` is not a valid fleet name, or ``None`` if it is."""
    if FLEET_NAME.fullmatch(name) is None:
        return "expected letters, digits, '_' and '-' only, like 'green'"
    return None
