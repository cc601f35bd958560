"""The built-in fault kinds: process lifecycle, clocks, duplicate identity and store outages.

Each kind is a :class:`~simsi.sim.faults.FaultKind` registered on import. Its
transition function checks the schedule before the run (for example, a restart
needs the host to be down) and its apply function changes the world when the
fault's true time comes. A new kind follows the same pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simsi.sim.faults import (
    INCARNATION_CHOICES,
    Fault,
    FaultKind,
    FaultTarget,
    Param,
    Transition,
    param_value,
    register,
)
from simsi.sim.fields import REQUIRED

# -- transitions -----------------------------------------------------------------------------


def _needs_up(verb: str) -> Transition:
    def transition(live: int, params: Mapping[str, Any]) -> int:
        if live == 0:
            raise ValueError(f"cannot {verb} it: no incarnation of it is running then")
        return 0 if params.get("incarnation", "all") == "all" else live - 1

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


def _host(fault: Fault) -> str:
    if fault.host is None:
        raise ValueError(f"fault {fault.kind!r} at {fault.at} s needs a host")
    return fault.host


def _apply_crash(world: FaultTarget, fault: Fault) -> None:
    world.crash_host(_host(fault), param_value(fault, "incarnation"))


def _apply_stop(world: FaultTarget, fault: Fault) -> None:
    world.stop_host(_host(fault), param_value(fault, "incarnation"))


def _apply_restart(world: FaultTarget, fault: Fault) -> None:
    world.start_host(_host(fault))


def _apply_replace(world: FaultTarget, fault: Fault) -> None:
    world.replace_host(_host(fault), param_value(fault, "start_delay_s"))


def _apply_rolling_update(world: FaultTarget, fault: Fault) -> None:
    world.rolling_update(
        param_value(fault, "start_delay_s"),
        param_value(fault, "min_ready_s"),
        param_value(fault, "order"),
    )


def _apply_clock_offset(world: FaultTarget, fault: Fault) -> None:
    world.host_clock(_host(fault)).set_offset(param_value(fault, "offset_s"), at=world.now())


def _apply_clock_drift(world: FaultTarget, fault: Fault) -> None:
    world.host_clock(_host(fault)).set_drift_ppm(param_value(fault, "drift_ppm"), at=world.now())


def _apply_clock_step(world: FaultTarget, fault: Fault) -> None:
    world.host_clock(_host(fault)).step(param_value(fault, "step_s"), at=world.now())


def _apply_duplicate(world: FaultTarget, fault: Fault) -> None:
    world.duplicate_host(
        _host(fault), param_value(fault, "offset_s"), param_value(fault, "drift_ppm")
    )


def _apply_store_outage(world: FaultTarget, fault: Fault) -> None:
    world.store_outage(param_value(fault, "duration_s"))


_INCARNATION = Param(
    "incarnation", "all", choices=INCARNATION_CHOICES, example='incarnation = "oldest"'
)
_START_DELAY = Param("start_delay_s", 1.0, minimum=0, unit="seconds", example="start_delay_s = 2")


def _drift_param(default: Any, example: str) -> Param:
    return Param(
        "drift_ppm",
        default,
        minimum=-1_000_000,
        above=True,
        unit="parts per million",
        example=example,
    )


register(
    FaultKind(
        name="crash",
        summary="kill the host's process: pending work is lost",
        targets_host=True,
        params=(_INCARNATION,),
        apply=_apply_crash,
        transition=_needs_up("crash"),
    )
)
register(
    FaultKind(
        name="stop",
        summary="stop the host gracefully: drain instances, then exit",
        targets_host=True,
        params=(_INCARNATION,),
        apply=_apply_stop,
        transition=_needs_up("stop"),
    )
)
register(
    FaultKind(
        name="restart",
        summary="start a new process for a host that is down",
        targets_host=True,
        params=(),
        apply=_apply_restart,
        transition=_restart,
    )
)
register(
    FaultKind(
        name="replace",
        summary="stop the host gracefully, then start its replacement",
        targets_host=True,
        params=(_START_DELAY,),
        apply=_apply_replace,
        transition=_replace,
    )
)
register(
    FaultKind(
        name="rolling_update",
        summary="replace every host one at a time, waiting for each replacement to be ready",
        targets_host=False,
        params=(
            _START_DELAY,
            Param("min_ready_s", 5.0, minimum=0, unit="seconds", example="min_ready_s = 5"),
            Param(
                "order",
                "descending",
                choices=("descending", "ascending"),
                example='order = "descending"',
            ),
        ),
        apply=_apply_rolling_update,
    )
)
register(
    FaultKind(
        name="clock_offset",
        summary="set the host clock's offset from true time",
        targets_host=True,
        params=(Param("offset_s", unit="seconds", example="offset_s = 2.5"),),
        apply=_apply_clock_offset,
    )
)
register(
    FaultKind(
        name="clock_drift",
        summary="set the host clock's rate error",
        targets_host=True,
        params=(_drift_param(REQUIRED, "drift_ppm = 200"),),
        apply=_apply_clock_drift,
    )
)
register(
    FaultKind(
        name="clock_step",
        summary="jump the host clock forward or back",
        targets_host=True,
        params=(Param("step_s", unit="seconds", example="step_s = -3"),),
        apply=_apply_clock_step,
    )
)
register(
    FaultKind(
        name="duplicate_identity",
        summary="start a second process claiming the host's name while the first one runs",
        targets_host=True,
        params=(
            Param("offset_s", 0.0, unit="seconds", example="offset_s = 0.5"),
            _drift_param(0.0, "drift_ppm = 0"),
        ),
        apply=_apply_duplicate,
        transition=_duplicate,
    )
)
register(
    FaultKind(
        name="store_outage",
        summary="make the alarm store unavailable for a while",
        targets_host=False,
        params=(
            Param("duration_s", minimum=0, above=True, unit="seconds", example="duration_s = 5"),
        ),
        apply=_apply_store_outage,
    )
)
