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
Parameters are declared with :class:`~simsi.sim.fault_params.Param`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from simsi.sim.clock import HostClock
from simsi.sim.fault_params import (
    FLEET_NAME,
    PARAM_TYPES,
    SPECIAL_ENDPOINTS,
    Param,
    ReadContext,
    check_fleet_name,
    check_pattern,
    endpoint_problem,
)
from simsi.sim.fields import REQUIRED, Table

if TYPE_CHECKING:
    from simsi.sim.network import Network

INCARNATION_CHOICES = ("all", "oldest", "newest")
"""Values of the ``incarnation`` parameter: the live incarnations a crash or stop hits."""


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


__all__ = [
    "FAULT_KINDS",
    "FLEET_NAME",
    "INCARNATION_CHOICES",
    "PARAM_TYPES",
    "SPECIAL_ENDPOINTS",
    "Fault",
    "FaultKind",
    "FaultTarget",
    "Param",
    "ReadContext",
    "ScheduleEffect",
    "Transition",
    "Validate",
    "apply_fault",
    "check_fleet_name",
    "check_pattern",
    "check_schedule",
    "endpoint_problem",
    "fault_params",
    "initial_live",
    "param_value",
    "read_fault",
    "register",
    "step_schedule",
]

# Registers the built-in kinds; at the end because those modules import this one.
from simsi.sim import (  # noqa: E402, F401
    fault_kinds,
    fault_kinds_fleet,
    fault_kinds_network,
    fault_kinds_reshard,
)
