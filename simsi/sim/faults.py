"""Fault schedules as data: each fault is ``(at, kind, host, params)``.

A fault kind is a :class:`FaultKind` in :data:`FAULT_KINDS`. It declares its
parameters (type, default, bounds, and the range a random budget draws from),
whether it targets a host, and how it changes the number of live incarnations
of that host. That change is checked before the run, so a restart of a host
that is up is caught while loading. The kind's apply function changes the world
at the fault's true time. Adding a kind means writing one apply function and
calling :func:`register` with it. The loader, the schedule check, random
budgets and the trace pick it up from there.

The built-in kinds live in :mod:`simsi.sim.fault_kinds` (processes, clocks and
the store), :mod:`simsi.sim.fault_kinds_network` (partitions and message
faults) and :mod:`simsi.sim.fault_kinds_fleet` (fleets and config rollouts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from simsi.core.errors import ConfigError
from simsi.core.placement import expand_hosts
from simsi.sim.clock import HostClock
from simsi.sim.fields import REQUIRED, Table

if TYPE_CHECKING:
    from simsi.sim.network import Network

INCARNATION_CHOICES = ("all", "oldest", "newest")
"""Values of the ``incarnation`` parameter: the live incarnations a crash or stop hits."""

SPECIAL_ENDPOINTS = ("client", "store")
"""Network endpoints that are not hosts: the workload's client and the alarm store."""

FLEET_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""Valid fleet names; fleet-qualified host keys look like ``green:host-1``."""

_ENDPOINT = re.compile(r"(?:(?P<fleet>[A-Za-z0-9_-]+):)?(?P<host>[A-Za-z0-9._-]+)(?:#\d+)?")


@dataclass(frozen=True)
class Fault:
    """One scheduled fault.

    Attributes:
        at: true time of the fault in seconds since the start of the simulation.
        kind: a key of :data:`FAULT_KINDS`, like ``"crash"``.
        host: the target host id, or ``None`` for kinds that target no host.
        params: the kind's parameters; missing ones take the kind's defaults.
    """

    at: float
    kind: str
    host: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the fault as a flat table, as written in a scenario file."""
        data: dict[str, Any] = {"at": self.at, "kind": self.kind}
        if self.host is not None:
            data["host"] = self.host
        for name, value in self.params.items():
            data[name] = _plain(value)
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


class FaultTarget(Protocol):
    """The operations fault kinds apply to a world; :class:`simsi.sim.world.World` has them."""

    network: Network

    def crash_host(
        self, host_id: str, incarnation: str, restart_after_s: float | None = None
    ) -> None:
        """Kill the chosen live incarnations of ``host_id``, and restart it later if asked."""

    def stop_host(
        self,
        host_id: str,
        incarnation: str,
        drain_s: float | None = None,
        restart_after_s: float | None = None,
    ) -> None:
        """Gracefully stop the chosen live incarnations of ``host_id``."""

    def start_host(
        self, host_id: str, offset_s: float | None = None, drift_ppm: float | None = None
    ) -> None:
        """Start a new incarnation of ``host_id``, on a machine with another clock if given."""

    def replace_host(
        self,
        host_id: str,
        start_delay_s: float,
        drain_s: float | None = None,
        start_after: str = "exit",
    ) -> None:
        """Stop ``host_id`` gracefully and start its replacement."""

    def rolling_update(self, start_delay_s: float, min_ready_s: float, order: str) -> None:
        """Replace every host one at a time, as a StatefulSet rolling update does."""

    def host_clock(self, host_id: str) -> HostClock:
        """Return the clock of ``host_id``'s machine."""

    def duplicate_host(self, host_id: str, offset_s: float, drift_ppm: float) -> None:
        """Start a second process claiming ``host_id`` while the first still runs."""

    def store_outage(self, duration_s: float) -> None:
        """Make the alarm store unavailable for ``duration_s`` true seconds."""

    def store_latency(
        self, duration_s: float, factor: float, latency_ms: tuple[float, float] | None
    ) -> None:
        """Multiply or replace the store's latency for ``duration_s`` true seconds."""

    def crash_after_alarm_handled(
        self, host_id: str, window_s: float, restart_after_s: float | None
    ) -> None:
        """Crash ``host_id`` at its next alarm handler success within ``window_s``."""

    def fleet_start(self, fleet: str, hosts: str | None, shards: int | None) -> None:
        """Start every host of a second fleet that shares the alarm store."""

    def fleet_stop(self, fleet: str, drain_s: float | None) -> None:
        """Gracefully stop every live incarnation of ``fleet``."""

    def traffic_split(self, fleet: str, weight: float) -> None:
        """Send the fraction ``weight`` of the client's requests to ``fleet``."""

    def config_rollout(
        self,
        hosts: str | None,
        shards: int | None,
        start_delay_s: float,
        min_ready_s: float,
        order: str,
        client_switch: str,
    ) -> None:
        """Restart the hosts one at a time with a new hosts pattern and/or shard count."""

    def now(self) -> float:
        """Return the current true time."""


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


Transition = Callable[[int, Mapping[str, Any]], int]
"""Maps the live incarnations of the target host before a fault to those after it.

Raises ``ValueError`` with a message when the fault cannot apply in that state.
"""

ScheduleEffect = Callable[[dict[str, int], Mapping[str, Any]], None]
"""Changes the live incarnation counts of all hosts for a kind that targets no host."""

Validate = Callable[[Mapping[str, Any], ReadContext], str | None]
"""Checks a fault's parameters together; returns a problem or ``None``."""


@dataclass(frozen=True)
class FaultKind:
    """A kind of fault: its parameters, precondition and effect.

    Attributes:
        name: the ``kind`` value in scenario files.
        summary: one line for help text and reports.
        targets_host: whether a fault of this kind needs ``host``.
        params: the parameters besides ``at``, ``kind`` and ``host``.
        apply: applies a fault to the world at its true time.
        transition: the static check and effect on the host's live incarnations,
            or ``None`` when the kind does not start or stop processes.
        schedule_effect: for kinds that target no host, the effect on every host's
            live incarnation count (a rollout adds and removes hosts), or ``None``.
        budget: whether a ``[faults_random]`` budget may draw this kind; every
            required parameter must then be drawable.
        validate: checks the parameters together once each one is valid, or ``None``.
    """

    name: str
    summary: str
    targets_host: bool
    params: tuple[Param, ...]
    apply: Callable[[FaultTarget, Fault], None]
    transition: Transition | None = None
    schedule_effect: ScheduleEffect | None = None
    budget: bool = False
    validate: Validate | None = None

    def param(self, name: str) -> Param:
        """Return the parameter called ``name``.

        Raises:
            KeyError: the kind has no such parameter.
        """
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(f"fault kind {self.name!r} has no parameter {name!r}")


FAULT_KINDS: dict[str, FaultKind] = {}
"""Every fault kind by name."""


def register(kind: FaultKind) -> FaultKind:
    """Add ``kind`` to :data:`FAULT_KINDS` and return it.

    Raises:
        ValueError: a kind with that name is already registered, or a budget kind
            has a required parameter that a budget cannot draw.
    """
    if kind.name in FAULT_KINDS:
        raise ValueError(f"fault kind {kind.name!r} is already registered")
    if kind.budget:
        for param in kind.params:
            if param.default is REQUIRED and not param.drawable:
                raise ValueError(
                    f"fault kind {kind.name!r} is marked for budgets but its required "
                    f"parameter {param.name!r} has no draw range"
                )
    FAULT_KINDS[kind.name] = kind
    return kind


def apply_fault(world: FaultTarget, fault: Fault) -> None:
    """Apply ``fault`` to ``world`` now, with defaults filled in for missing parameters."""
    FAULT_KINDS[fault.kind].apply(world, fault)


def param_value(fault: Fault, name: str) -> Any:
    """Return parameter ``name`` of ``fault``, or its kind's default when the fault omits it.

    Raises:
        KeyError: the fault's kind has no such parameter.
    """
    param = FAULT_KINDS[fault.kind].param(name)
    return fault.params.get(name, param.default)


def fault_params(fault: Fault) -> dict[str, Any]:
    """Return every parameter of ``fault``, defaults filled in."""
    return {
        param.name: fault.params.get(param.name, param.default)
        for param in FAULT_KINDS[fault.kind].params
    }


# -- reading and checking ---------------------------------------------------------------------


def read_fault(table: Table, context: ReadContext) -> Fault:
    """Read one ``[[faults]]`` table.

    Raises:
        ScenarioError: a key is missing, unknown or invalid.
    """
    hosts = context.hosts
    at = table.number(
        "at",
        minimum=0,
        maximum=context.end_s,
        unit="seconds of true time from the start of the run",
        example="at = 10",
    )
    kinds = sorted(FAULT_KINDS)
    kind_name = table.string("kind", choices=kinds, example='kind = "crash"')
    kind = FAULT_KINDS[kind_name]
    host: str | None = None
    if kind.targets_host:
        choices = sorted(context.known_hosts)
        host = table.string("host", choices=choices, example=f'host = "{hosts[0]}"')
    elif table.has("host"):
        raise table.error("host", f"fault kind {kind_name!r} targets no host; remove the key")
    params = {param.name: param.read(table, context) for param in kind.params}
    known = ["at", "kind", *(["host"] if kind.targets_host else []), *params]
    table.finish(known)
    problem = kind.validate(params, context) if kind.validate is not None else None
    if problem is not None:
        raise table.error(None, f"invalid {kind_name!r} fault: {problem}")
    explicit = {name: value for name, value in params.items() if table.has(name)}
    return Fault(at, kind_name, host, explicit)


def initial_live(hosts: Sequence[str], known_hosts: Sequence[str] = ()) -> dict[str, int]:
    """Return the live incarnation counts at true time 0: one per cluster host, 0 for others."""
    live = dict.fromkeys(known_hosts, 0)
    live.update(dict.fromkeys(hosts, 1))
    return live


def step_schedule(live: dict[str, int], fault: Fault) -> None:
    """Apply the static effect of ``fault`` to the live counts ``live``.

    Raises:
        ValueError: the fault cannot apply in that state; the message gives the reason.
    """
    kind = FAULT_KINDS[fault.kind]
    params = fault_params(fault)
    if kind.schedule_effect is not None:
        kind.schedule_effect(live, params)
    if kind.transition is None or fault.host is None:
        return
    live[fault.host] = kind.transition(live.get(fault.host, 0), params)


def check_schedule(
    faults: Sequence[Fault], hosts: Sequence[str], known_hosts: Sequence[str] = ()
) -> list[tuple[int, str]]:
    """Check host states along the schedule; return ``(fault index, problem)`` pairs.

    Every host of ``hosts`` starts with one running incarnation and every other
    host of ``known_hosts`` with none. Faults are taken in order of ``at``, and in
    file order at equal times.
    """
    live = initial_live(hosts, known_hosts)
    problems: list[tuple[int, str]] = []
    order = sorted(range(len(faults)), key=lambda index: (faults[index].at, index))
    for index in order:
        fault = faults[index]
        try:
            step_schedule(live, fault)
        except ValueError as exc:
            where = f" of {fault.host!r}" if fault.host is not None else ""
            problems.append((index, f"{fault.kind}{where} at {fault.at:g} s: {exc}"))
    return problems


# Registers the built-in kinds; at the end because those modules import this one.
from simsi.sim import fault_kinds, fault_kinds_fleet, fault_kinds_network  # noqa: E402, F401
