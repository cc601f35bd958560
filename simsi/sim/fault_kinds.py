"""The built-in fault kinds for processes, clocks and the alarm store.

Each kind is a :class:`~simsi.sim.faults.FaultKind` registered on import. Its
transition function checks the schedule before the run (for example, a restart
needs the host to be down) and its apply function changes the world when the
fault's true time comes. A new kind follows the same pattern. Network kinds are
in :mod:`simsi.sim.fault_kinds_network`, fleet and rollout kinds in
:mod:`simsi.sim.fault_kinds_fleet`.
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
        after = 0 if params.get("incarnation", "all") == "all" else live - 1
        # A restart scheduled by the fault itself brings one process back.
        return after + (1 if params.get("restart_after_s") is not None else 0)

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


def _crash_after_handled(live: int, params: Mapping[str, Any]) -> int:
    if live == 0:
        raise ValueError("cannot crash it after an alarm: no incarnation of it is running then")
    # Whether the crash happens depends on an alarm finishing within the window.
    return live


# -- apply functions ------------------------------------------------------------------------


def _host(fault: Fault) -> str:
    if fault.host is None:
        raise ValueError(f"fault {fault.kind!r} at {fault.at} s needs a host")
    return fault.host


def _apply_crash(world: FaultTarget, fault: Fault) -> None:
    world.crash_host(
        _host(fault), param_value(fault, "incarnation"), param_value(fault, "restart_after_s")
    )


def _apply_stop(world: FaultTarget, fault: Fault) -> None:
    world.stop_host(
        _host(fault),
        param_value(fault, "incarnation"),
        param_value(fault, "drain_s"),
        param_value(fault, "restart_after_s"),
    )


def _apply_restart(world: FaultTarget, fault: Fault) -> None:
    world.start_host(_host(fault), param_value(fault, "offset_s"), param_value(fault, "drift_ppm"))


def _apply_replace(world: FaultTarget, fault: Fault) -> None:
    world.replace_host(
        _host(fault),
        param_value(fault, "start_delay_s"),
        param_value(fault, "drain_s"),
        param_value(fault, "start_after"),
    )


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


def _apply_store_latency(world: FaultTarget, fault: Fault) -> None:
    world.store_latency(
        param_value(fault, "duration_s"),
        param_value(fault, "factor"),
        param_value(fault, "latency_ms"),
    )


def _apply_crash_after_handled(world: FaultTarget, fault: Fault) -> None:
    world.crash_after_alarm_handled(
        _host(fault), param_value(fault, "window_s"), param_value(fault, "restart_after_s")
    )


# -- parameters ------------------------------------------------------------------------------

_INCARNATION = Param(
    "incarnation", "all", choices=INCARNATION_CHOICES, example='incarnation = "oldest"'
)
_START_DELAY = Param("start_delay_s", 1.0, minimum=0, unit="seconds", example="start_delay_s = 2")
_RESTART_AFTER = Param(
    "restart_after_s",
    None,
    minimum=0,
    unit="seconds after the fault, or leave it out to keep the host down",
    example="restart_after_s = 5",
    draw=(1.0, 10.0),
)
_DRAIN = Param(
    "drain_s",
    None,
    minimum=0,
    unit="seconds the process may drain before it is killed (terminationGracePeriodSeconds)",
    example="drain_s = 30",
)
_DURATION = Param(
    "duration_s",
    minimum=0,
    above=True,
    unit="seconds",
    example="duration_s = 5",
    draw=(1.0, 30.0),
)


def _drift_param(default: Any, example: str, draw: tuple[float, float] | None = None) -> Param:
    return Param(
        "drift_ppm",
        default,
        minimum=-1_000_000,
        above=True,
        unit="parts per million",
        example=example,
        draw=draw,
    )


register(
    FaultKind(
        name="crash",
        summary="kill the host's process: pending work is lost",
        targets_host=True,
        params=(_INCARNATION, _RESTART_AFTER),
        apply=_apply_crash,
        transition=_needs_up("crash"),
        budget=True,
    )
)
register(
    FaultKind(
        name="stop",
        summary="stop the host gracefully: stop taking requests, drain instances, then exit",
        targets_host=True,
        params=(_INCARNATION, _DRAIN, _RESTART_AFTER),
        apply=_apply_stop,
        transition=_needs_up("stop"),
        budget=True,
    )
)
register(
    FaultKind(
        name="restart",
        summary="start a new process for a host that is down",
        targets_host=True,
        params=(
            Param(
                "offset_s",
                None,
                unit="seconds; the new process runs on a machine with this clock offset",
                example="offset_s = 5",
            ),
            _drift_param(None, "drift_ppm = 100"),
        ),
        apply=_apply_restart,
        transition=_restart,
    )
)
register(
    FaultKind(
        name="replace",
        summary="stop the host gracefully and start its replacement",
        targets_host=True,
        params=(
            _START_DELAY,
            _DRAIN,
            Param(
                "start_after",
                "exit",
                choices=("exit", "stop"),
                example='start_after = "stop"',
            ),
        ),
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
        params=(Param("offset_s", unit="seconds", example="offset_s = 2.5", draw=(-5.0, 5.0)),),
        apply=_apply_clock_offset,
        budget=True,
    )
)
register(
    FaultKind(
        name="clock_drift",
        summary="set the host clock's rate error",
        targets_host=True,
        params=(_drift_param(REQUIRED, "drift_ppm = 200", draw=(-500.0, 500.0)),),
        apply=_apply_clock_drift,
        budget=True,
    )
)
register(
    FaultKind(
        name="clock_step",
        summary="jump the host clock forward or back",
        targets_host=True,
        params=(Param("step_s", unit="seconds", example="step_s = -3", draw=(-10.0, 10.0)),),
        apply=_apply_clock_step,
        budget=True,
    )
)
register(
    FaultKind(
        name="duplicate_identity",
        summary="start a second process claiming the host's name while the first one runs",
        targets_host=True,
        params=(
            Param("offset_s", 0.0, unit="seconds", example="offset_s = 0.5", draw=(-1.0, 1.0)),
            _drift_param(0.0, "drift_ppm = 0"),
        ),
        apply=_apply_duplicate,
        transition=_duplicate,
        budget=True,
    )
)
register(
    FaultKind(
        name="store_outage",
        summary="make the alarm store unavailable for a while",
        targets_host=False,
        params=(_DURATION,),
        apply=_apply_store_outage,
        budget=True,
    )
)
register(
    FaultKind(
        name="store_latency",
        summary="multiply or replace the alarm store's latency for a while",
        targets_host=False,
        params=(
            _DURATION,
            Param(
                "factor",
                1.0,
                minimum=0,
                unit="times the configured latency",
                example="factor = 20",
                draw=(2.0, 50.0),
            ),
            Param(
                "latency_ms",
                None,
                value_type="range",
                unit="milliseconds, replacing the configured latency before the factor",
                example="latency_ms = [200, 500]",
            ),
        ),
        apply=_apply_store_latency,
        budget=True,
    )
)
register(
    FaultKind(
        name="crash_after_alarm_handled",
        summary="crash the host right after an alarm handler succeeded, before the store is told",
        targets_host=True,
        params=(
            Param(
                "window_s",
                60.0,
                minimum=0,
                above=True,
                unit="seconds after the fault during which the next handled alarm triggers it",
                example="window_s = 30",
                draw=(5.0, 30.0),
            ),
            _RESTART_AFTER,
        ),
        apply=_apply_crash_after_handled,
        transition=_crash_after_handled,
        budget=True,
    )
)
