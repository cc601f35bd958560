"""Fault schedules as data: each fault is ``(at, kind, host, params)``.

A fault kind is a :class:`FaultKind` in :data:`FAULT_KINDS`: its parameters
(type, default, bounds), whether it targets a host, how it changes the number
of live incarnations of that host (checked before the run, so a restart of a
host that is up is caught while loading), and the function that applies it to
the world at its true time. Adding a kind means writing one apply function and
calling :func:`register` with it; the loader, the schedule check and the trace
pick it up from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from simsi.sim.clock import HostClock
from simsi.sim.fields import REQUIRED, Table

WHICH_CHOICES = ("all", "oldest", "newest")
"""Which live incarnations of a host a crash or stop hits."""


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
    """What fault kinds may do to a world; :class:`simsi.sim.world.World` implements it."""

    def crash_host(self, host_id: str, which: str) -> None:
        """Kill the chosen live incarnations of ``host_id``."""

    def stop_host(self, host_id: str, which: str) -> None:
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


# -- transitions -----------------------------------------------------------------------------


def _needs_up(verb: str) -> Transition:
    def transition(live: int, params: Mapping[str, Any]) -> int:
        if live == 0:
            raise ValueError(f"cannot {verb} it: no incarnation of it is running then")
        return 0 if params.get("which", "all") == "all" else live - 1

    return transition


def _restart(live: int, params: Mapping[str, Any]) -> int:
    if live:
        raise ValueError(
            f"cannot restart it: {live} incarnation(s) of it are still running; crash or stop "
            "it first, or use kind = 'duplicate_identity' to start a second process"
        )
    return 1


def _replace(live: int, params: Mapping[str, Any]) -> int:
    if live != 1:
        raise ValueError(
            f"cannot replace it: replace needs exactly 1 running incarnation, not {live}"
        )
    return 1


def _duplicate(live: int, params: Mapping[str, Any]) -> int:
    if live == 0:
        raise ValueError("cannot duplicate it: no incarnation of it is running then; use restart")
    return live + 1


# -- apply functions ------------------------------------------------------------------------


def _param(fault: Fault, name: str) -> Any:
    for param in FAULT_KINDS[fault.kind].params:
        if param.name == name:
            return fault.params.get(name, param.default)
    raise KeyError(f"fault kind {fault.kind!r} has no parameter {name!r}")


def _host(fault: Fault) -> str:
    if fault.host is None:
        raise ValueError(f"fault {fault.kind!r} at {fault.at} s needs a host")
    return fault.host


def _apply_crash(world: FaultTarget, fault: Fault) -> None:
    world.crash_host(_host(fault), _param(fault, "which"))


def _apply_stop(world: FaultTarget, fault: Fault) -> None:
    world.stop_host(_host(fault), _param(fault, "which"))


def _apply_restart(world: FaultTarget, fault: Fault) -> None:
    world.start_host(_host(fault))


def _apply_replace(world: FaultTarget, fault: Fault) -> None:
    world.replace_host(_host(fault), _param(fault, "start_delay_s"))


def _apply_rolling_update(world: FaultTarget, fault: Fault) -> None:
    world.rolling_update(
        _param(fault, "start_delay_s"), _param(fault, "min_ready_s"), _param(fault, "order")
    )


def _apply_clock_offset(world: FaultTarget, fault: Fault) -> None:
    world.host_clock(_host(fault)).set_offset(_param(fault, "offset_s"), at=world.now())


def _apply_clock_drift(world: FaultTarget, fault: Fault) -> None:
    world.host_clock(_host(fault)).set_drift_ppm(_param(fault, "drift_ppm"), at=world.now())


def _apply_clock_step(world: FaultTarget, fault: Fault) -> None:
    world.host_clock(_host(fault)).step(_param(fault, "step_s"), at=world.now())


def _apply_duplicate(world: FaultTarget, fault: Fault) -> None:
    world.duplicate_host(_host(fault), _param(fault, "offset_s"), _param(fault, "drift_ppm"))


def _apply_store_outage(world: FaultTarget, fault: Fault) -> None:
    world.store_outage(_param(fault, "duration_s"))


_WHICH = Param("which", "all", choices=WHICH_CHOICES, example='which = "oldest"')
_START_DELAY = Param("start_delay_s", 1.0, minimum=0, unit="seconds", example="start_delay_s = 2")

register(
    FaultKind(
        "crash",
        "kill the host's process: pending work is lost",
        True,
        (_WHICH,),
        _apply_crash,
        _needs_up("crash"),
    )
)
register(
    FaultKind(
        "stop",
        "stop the host gracefully: drain instances, then exit",
        True,
        (_WHICH,),
        _apply_stop,
        _needs_up("stop"),
    )
)
register(
    FaultKind(
        "restart", "start a new process for a host that is down", True, (), _apply_restart, _restart
    )
)
register(
    FaultKind(
        "replace",
        "stop the host gracefully, then start its replacement",
        True,
        (_START_DELAY,),
        _apply_replace,
        _replace,
    )
)
register(
    FaultKind(
        "rolling_update",
        "replace every host one at a time, waiting for each replacement to be ready",
        False,
        (
            _START_DELAY,
            Param("min_ready_s", 5.0, minimum=0, unit="seconds", example="min_ready_s = 5"),
            Param(
                "order",
                "descending",
                choices=("descending", "ascending"),
                example='order = "descending"',
            ),
        ),
        _apply_rolling_update,
    )
)
register(
    FaultKind(
        "clock_offset",
        "set the host clock's offset from true time",
        True,
        (Param("offset_s", unit="seconds", example="offset_s = 2.5"),),
        _apply_clock_offset,
    )
)
register(
    FaultKind(
        "clock_drift",
        "set the host clock's rate error",
        True,
        (
            Param(
                "drift_ppm",
                minimum=-1_000_000,
                above=True,
                unit="parts per million",
                example="drift_ppm = 200",
            ),
        ),
        _apply_clock_drift,
    )
)
register(
    FaultKind(
        "clock_step",
        "jump the host clock forward or back",
        True,
        (Param("step_s", unit="seconds", example="step_s = -3"),),
        _apply_clock_step,
    )
)
register(
    FaultKind(
        "duplicate_identity",
        "start a second process claiming the host's name while the first one runs",
        True,
        (
            Param("offset_s", 0.0, unit="seconds", example="offset_s = 0.5"),
            Param(
                "drift_ppm",
                0.0,
                minimum=-1_000_000,
                above=True,
                unit="parts per million",
                example="drift_ppm = 0",
            ),
        ),
        _apply_duplicate,
        _duplicate,
    )
)
register(
    FaultKind(
        "store_outage",
        "make the alarm store unavailable for a while",
        False,
        (Param("duration_s", minimum=0, above=True, unit="seconds", example="duration_s = 5"),),
        _apply_store_outage,
    )
)


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
