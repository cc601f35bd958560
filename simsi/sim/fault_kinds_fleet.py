"""The built-in fleet and rollout fault kinds: blue/green fleets and config rollouts.

The hosts that start at true time 0 form the fleet named :data:`MAIN_FLEET`.
``fleet_start`` starts a second fleet: every host of a pattern again, as new
processes with their own names in the trace (``"green:host-1#0"``), sharing the
one alarm store. The client sends each request to a fleet chosen by the traffic
split (``traffic_split``), and ``fleet_stop`` drains a fleet.

``config_rollout`` changes the main fleet's configuration the way a
StatefulSet does when its template and replica count change together. Hosts
that the new pattern drops are stopped first, highest ordinal first. Hosts it
adds are started next. Then every remaining host is replaced one at a time,
and each new process gets the new :class:`~simsi.core.placement.Placement`.
The client switches to the new configuration at ``client_switch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement, expand_hosts
from simsi.sim.faults import (
    Fault,
    FaultKind,
    FaultTarget,
    Param,
    ReadContext,
    check_fleet_name,
    check_pattern,
    param_value,
    register,
)

MAIN_FLEET = "main"
"""The name of the fleet that starts at true time 0."""

CLIENT_SWITCH_CHOICES = ("start", "end", "never")
"""When the client adopts a rollout's configuration: as it starts, after the last host, or never."""


def _new_fleet_name(name: str) -> str | None:
    problem = check_fleet_name(name)
    if problem is None and name == MAIN_FLEET:
        return (
            f"{MAIN_FLEET!r} is the fleet that starts at time 0; name the new fleet, like 'green'"
        )
    return problem


def _rollout_effect(live: dict[str, int], params: Mapping[str, Any]) -> None:
    pattern = params.get("hosts")
    if pattern is None:
        return
    new_hosts = set(expand_hosts(pattern))
    for host in list(live):
        if host not in new_hosts:
            live[host] = 0
    for host in new_hosts:
        live[host] = 1


def _check_placement(params: Mapping[str, Any], context: ReadContext) -> str | None:
    hosts = params.get("hosts")
    shards = params.get("shards")
    try:
        Placement(hosts if hosts is not None else list(context.hosts), shards or context.shards)
    except ConfigError as exc:
        return f"{exc}; give a shard count at least the number of hosts"
    return None


def _check_rollout(params: Mapping[str, Any], context: ReadContext) -> str | None:
    if params.get("hosts") is None and params.get("shards") is None:
        return "it changes nothing; give a new hosts pattern, a new shard count or both"
    return _check_placement(params, context)


def _apply_fleet_start(world: FaultTarget, fault: Fault) -> None:
    world.fleet_start(
        param_value(fault, "fleet"), param_value(fault, "hosts"), param_value(fault, "shards")
    )


def _apply_fleet_stop(world: FaultTarget, fault: Fault) -> None:
    world.fleet_stop(param_value(fault, "fleet"), param_value(fault, "drain_s"))


def _apply_traffic_split(world: FaultTarget, fault: Fault) -> None:
    world.traffic_split(param_value(fault, "fleet"), param_value(fault, "weight"))


def _apply_config_rollout(world: FaultTarget, fault: Fault) -> None:
    world.config_rollout(
        param_value(fault, "hosts"),
        param_value(fault, "shards"),
        param_value(fault, "start_delay_s"),
        param_value(fault, "min_ready_s"),
        param_value(fault, "order"),
        param_value(fault, "client_switch"),
    )


_PATTERN = Param(
    "hosts",
    None,
    value_type="string",
    example='hosts = "host-{0..3}"',
    check=check_pattern,
)
_SHARDS = Param("shards", None, value_type="integer", minimum=1, example="shards = 128")

register(
    FaultKind(
        name="fleet_start",
        summary="start every host of a second fleet that shares the alarm store",
        targets_host=False,
        params=(
            Param("fleet", value_type="string", example='fleet = "green"', check=_new_fleet_name),
            _PATTERN,
            _SHARDS,
        ),
        apply=_apply_fleet_start,
        validate=_check_placement,
    )
)
register(
    FaultKind(
        name="fleet_stop",
        summary="stop every process of a fleet gracefully",
        targets_host=False,
        params=(
            Param("fleet", value_type="string", example='fleet = "main"', check=check_fleet_name),
            Param(
                "drain_s",
                None,
                minimum=0,
                unit="seconds each process may drain before it is killed",
                example="drain_s = 30",
            ),
        ),
        apply=_apply_fleet_stop,
    )
)
register(
    FaultKind(
        name="traffic_split",
        summary="send a fraction of the client's requests to a fleet, the rest to the others",
        targets_host=False,
        params=(
            Param("fleet", value_type="string", example='fleet = "green"', check=check_fleet_name),
            Param(
                "weight",
                minimum=0,
                maximum=1,
                unit="fraction of requests",
                example="weight = 0.5",
            ),
        ),
        apply=_apply_traffic_split,
    )
)
register(
    FaultKind(
        name="config_rollout",
        summary="restart the hosts one at a time with a new hosts pattern and/or shard count",
        targets_host=False,
        params=(
            _PATTERN,
            _SHARDS,
            Param("start_delay_s", 1.0, minimum=0, unit="seconds", example="start_delay_s = 2"),
            Param("min_ready_s", 5.0, minimum=0, unit="seconds", example="min_ready_s = 5"),
            Param(
                "order",
                "descending",
                choices=("descending", "ascending"),
                example='order = "descending"',
            ),
            Param(
                "client_switch",
                "end",
                choices=CLIENT_SWITCH_CHOICES,
                example='client_switch = "start"',
            ),
        ),
        apply=_apply_config_rollout,
        schedule_effect=_rollout_effect,
        validate=_check_rollout,
    )
)
