"""Fault schedules as data: each fault is ``(at, kind, host, params)``.

A fault kind is a :class:`FaultKind` in :data:`FAULT_KINDS`. It declares its
parameters (type, default, bounds), whether it targets a host, and how it
changes the number of live incarnations of that host. That change is checked
before the run, so a restart of a host that is up is caught while loading. The
kind's apply function changes the world at the fault's true time. Adding a kind
means writing one apply function and calling :func:`register` with it. The
loader, the schedule check and the trace pick it up from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from simsi.sim.clock import HostClock
from simsi.sim.fields import REQUIRED, Table

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
        data.update(self.params)
        return data


class FaultTarget(Protocol):
    """The operations fault kinds apply to a world; :class:`simsi.sim.world.World` has them."""

    def crash_host(self, host_id: str, incarnation: str) -> None:
        """Kill the chosen live incarnations of ``host_id``."""

    def stop_host(self, host_id: str, incarnation: str) -> None:
        """Gracefully stop the chosen live incarnations of ``host_id``."""

    def start_host(self, host_id: str) -> None:
        """Start a new incarnation of ``host_id``."""

    def replace_host(self, host_id: str, start_delay_s: float) -> None:
        """Stop ``host_id`` gracefully and start its replacement once it stopped."""

    def rolling_update(self, start_delay_s: float, min_ready_s: float, order: str) -> None:
        """Replace every host one at a time, as a StatefulSet rolling update does."""

    def host_clock(self, host_id: str) -> HostClock:
        """Return the clock of ``host_id``'s machine."""

    def duplicate_host(self, host_id: str, offset_s: float, drift_ppm: float) -> None:
        """Start a second process claiming ``host_id`` while the first still runs."""

    def store_outage(self, duration_s: float) -> None:
        """Make the alarm store unavailable for ``duration_s`` true seconds."""

    def now(self) -> float:
        """Return the current true time."""


@dataclass(frozen=True)
class Param:
    """One parameter of a fault kind.

    Attributes:
        name: the key in the fault's table.
        default: the value when the key is missing; :data:`REQUIRED` if it must be given.
        choices: allowed strings; ``None`` makes the parameter a number.
        minimum: the smallest allowed number.
        above: whether ``minimum`` itself is excluded.
        unit: the unit named in errors.
        example: a correct line shown in errors.
    """

    name: str
    default: Any = REQUIRED
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    above: bool = False
    unit: str = ""
    example: str = ""

    def read(self, table: Table) -> Any:
        """Read and check this parameter from a fault's table."""
        if self.choices is not None:
            return table.string(self.name, self.default, choices=self.choices, example=self.example)
        return table.number(
            self.name,
            self.default,
            minimum=self.minimum,
            above=self.above,
            unit=self.unit,
            example=self.example,
        )


Transition = Callable[[int, Mapping[str, Any]], int]
"""Maps the live incarnations of the target host before a fault to those after it.

Raises ``ValueError`` with a message when the fault cannot apply in that state.
"""


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
    """

    name: str
    summary: str
    targets_host: bool
    params: tuple[Param, ...]
    apply: Callable[[FaultTarget, Fault], None]
    transition: Transition | None = None


FAULT_KINDS: dict[str, FaultKind] = {}
"""Every fault kind by name."""


def register(kind: FaultKind) -> FaultKind:
    """Add ``kind`` to :data:`FAULT_KINDS` and return it.

    Raises:
        ValueError: a kind with that name is already registered.
    """
    if kind.name in FAULT_KINDS:
        raise ValueError(f"fault kind {kind.name!r} is already registered")
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
    for param in FAULT_KINDS[fault.kind].params:
        if param.name == name:
            return fault.params.get(name, param.default)
    raise KeyError(f"fault kind {fault.kind!r} has no parameter {name!r}")


def fault_params(fault: Fault) -> dict[str, Any]:
    """Return every parameter of ``fault``, defaults filled in."""
    return {
        param.name: fault.params.get(param.name, param.default)
        for param in FAULT_KINDS[fault.kind].params
    }


# -- reading and checking ---------------------------------------------------------------------


def read_fault(table: Table, hosts: Sequence[str], end_s: float) -> Fault:
    """Read one ``[[faults]]`` table.

    Args:
        table: the fault's table.
        hosts: the cluster's host ids, which ``host`` must be one of.
        end_s: the end of the run (``duration_s + drain_s``), which ``at`` must not pass.

    Raises:
        ScenarioError: a key is missing, unknown or invalid.
    """
    at = table.number(
        "at",
        minimum=0,
        maximum=end_s,
        unit="seconds of true time from the start of the run",
        example="at = 10",
    )
    kinds = sorted(FAULT_KINDS)
    kind_name = table.string("kind", choices=kinds, example='kind = "crash"')
    kind = FAULT_KINDS[kind_name]
    host: str | None = None
    if kind.targets_host:
        host = table.string("host", choices=hosts, example=f'host = "{hosts[0]}"')
    elif table.has("host"):
        raise table.error("host", f"fault kind {kind_name!r} targets no host; remove the key")
    params = {param.name: param.read(table) for param in kind.params}
    known = ["at", "kind", *(["host"] if kind.targets_host else []), *params]
    table.finish(known)
    explicit = {name: value for name, value in params.items() if table.has(name)}
    return Fault(at, kind_name, host, explicit)


def check_schedule(faults: Sequence[Fault], hosts: Sequence[str]) -> list[tuple[int, str]]:
    """Check host states along the schedule; return ``(fault index, problem)`` pairs.

    Every host starts with one running incarnation. Faults are taken in order of
    ``at``, and in file order at equal times.
    """
    live = dict.fromkeys(hosts, 1)
    problems: list[tuple[int, str]] = []
    order = sorted(range(len(faults)), key=lambda index: (faults[index].at, index))
    for index in order:
        fault = faults[index]
        kind = FAULT_KINDS[fault.kind]
        if kind.transition is None or fault.host is None:
            continue
        params = {param.name: fault.params.get(param.name, param.default) for param in kind.params}
        try:
            live[fault.host] = kind.transition(live[fault.host], params)
        except ValueError as exc:
            problems.append((index, f"{fault.kind} of {fault.host!r} at {fault.at:g} s: {exc}"))
    return problems


# Registers the built-in kinds; at the end because that module imports this one.
from simsi.sim import fault_kinds  # noqa: E402, F401
