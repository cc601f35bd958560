"""The built-in network fault kinds: partitions, heals and message loss, duplication, reordering.

Each kind adds :class:`~simsi.sim.network.LinkRule` objects to the world's
network under a ``name`` (the kind's name unless the fault gives one). A rule
ends after ``duration_s`` true seconds, or at a ``heal`` fault naming it, or at
a ``heal`` without a name, which ends every rule.

Endpoints are ``"client"``, ``"store"``, host ids (every process of the host),
fleet hosts like ``"green:host-1"`` and single processes like ``"host-1#0"``.
The simulated hosts send no messages to each other, so cutting a host off from
its peers changes nothing beyond the client and store links.
"""

from __future__ import annotations

from simsi.sim.faults import (
    Fault,
    FaultKind,
    FaultTarget,
    Param,
    check_fleet_name,
    param_value,
    register,
)
from simsi.sim.network import LinkRule


def _name(fault: Fault) -> str:
    name = param_value(fault, "name")
    return str(name) if name is not None else fault.kind


def _host(fault: Fault) -> str:
    if fault.host is None:
        raise ValueError(f"fault {fault.kind!r} at {fault.at} s needs a host")
    return fault.host


def _seconds(range_ms: tuple[float, float]) -> tuple[float, float]:
    return (range_ms[0] / 1000.0, range_ms[1] / 1000.0)


def _apply_partition(world: FaultTarget, fault: Fault) -> None:
    name = _name(fault)
    groups = [frozenset(group) for group in param_value(fault, "groups")]
    rules = [
        LinkRule(f"partition:{name}", src=src, dst=dst, drop=1.0)
        for src in groups
        for dst in groups
        if src is not dst
    ]
    world.network.add_links(name, rules, param_value(fault, "duration_s"))


def _apply_one_way(world: FaultTarget, fault: Fault) -> None:
    name = _name(fault)
    rule = LinkRule(
        f"partition:{name}",
        src=frozenset(param_value(fault, "from")),
        dst=frozenset(param_value(fault, "to")),
        drop=1.0,
    )
    world.network.add_links(name, [rule], param_value(fault, "duration_s"))


def _apply_isolate(world: FaultTarget, fault: Fault) -> None:
    name = _name(fault)
    host = frozenset([_host(fault)])
    keep = frozenset() if param_value(fault, "store") == "unreachable" else frozenset(["store"])
    reason = f"partition:{name}"
    rules = [
        LinkRule(reason, src=host, except_dst=host | keep, drop=1.0),
        LinkRule(reason, dst=host, except_src=host | keep, drop=1.0),
    ]
    world.network.add_links(name, rules, param_value(fault, "duration_s"))


def _apply_heal(world: FaultTarget, fault: Fault) -> None:
    world.network.heal(param_value(fault, "name"))


def _filter(fault: Fault) -> frozenset[str] | None:
    endpoints = param_value(fault, "endpoints")
    return None if endpoints is None else frozenset(endpoints)


def _apply_loss(world: FaultTarget, fault: Fault) -> None:
    rule = LinkRule(
        f"loss:{_name(fault)}", either=_filter(fault), drop=param_value(fault, "probability")
    )
    world.network.add_links(_name(fault), [rule], param_value(fault, "duration_s"))


def _apply_duplication(world: FaultTarget, fault: Fault) -> None:
    rule = LinkRule(
        f"duplication:{_name(fault)}",
        either=_filter(fault),
        duplicate=param_value(fault, "probability"),
        delay_s=_seconds(param_value(fault, "delay_ms")),
    )
    world.network.add_links(_name(fault), [rule], param_value(fault, "duration_s"))


def _apply_reordering(world: FaultTarget, fault: Fault) -> None:
    rule = LinkRule(
        f"reordering:{_name(fault)}",
        either=_filter(fault),
        delay=param_value(fault, "probability"),
        delay_s=_seconds(param_value(fault, "delay_ms")),
    )
    world.network.add_links(_name(fault), [rule], param_value(fault, "duration_s"))


_NAME = Param(
    "name",
    None,
    value_type="string",
    example='name = "zone-a"',
    check=check_fleet_name,
)
_UNTIL_HEAL = Param(
    "duration_s",
    None,
    minimum=0,
    above=True,
    unit="seconds, or leave it out to last until a heal",
    example="duration_s = 20",
    draw=(1.0, 30.0),
)
_WINDOW = Param(
    "duration_s",
    minimum=0,
    above=True,
    unit="seconds",
    example="duration_s = 10",
    draw=(1.0, 30.0),
)
_ENDPOINTS = Param(
    "endpoints",
    None,
    value_type="endpoints",
    example='endpoints = ["host-1"]',
)


def _probability(example: str) -> Param:
    return Param(
        "probability",
        minimum=0,
        maximum=1,
        unit="probability per message",
        example=example,
        draw=(0.05, 0.5),
    )


register(
    FaultKind(
        name="partition",
        summary="drop every message between endpoints in different groups, both ways",
        targets_host=False,
        params=(
            Param(
                "groups",
                value_type="groups",
                example='groups = [["host-0"], ["host-1", "host-2", "client"]]',
            ),
            _UNTIL_HEAL,
            _NAME,
        ),
        apply=_apply_partition,
    )
)
register(
    FaultKind(
        name="partition_one_way",
        summary="drop every message from one set of endpoints to another; the other way works",
        targets_host=False,
        params=(
            Param("from", value_type="endpoints", example='from = ["client"]'),
            Param("to", value_type="endpoints", example='to = ["host-1"]'),
            _UNTIL_HEAL,
            _NAME,
        ),
        apply=_apply_one_way,
    )
)
register(
    FaultKind(
        name="isolate",
        summary="cut the host off from the client and its peers, and from the store if asked",
        targets_host=True,
        params=(
            _UNTIL_HEAL,
            Param(
                "store",
                "reachable",
                choices=("reachable", "unreachable"),
                example='store = "unreachable"',
            ),
            _NAME,
        ),
        apply=_apply_isolate,
        budget=True,
    )
)
register(
    FaultKind(
        name="heal",
        summary="end the network faults added under a name, or all of them",
        targets_host=False,
        params=(_NAME,),
        apply=_apply_heal,
    )
)
register(
    FaultKind(
        name="message_loss",
        summary="lose messages with a probability for a while",
        targets_host=False,
        params=(_probability("probability = 0.2"), _WINDOW, _ENDPOINTS, _NAME),
        apply=_apply_loss,
        budget=True,
    )
)
register(
    FaultKind(
        name="message_duplication",
        summary="deliver messages twice with a probability for a while",
        targets_host=False,
        params=(
            _probability("probability = 0.1"),
            _WINDOW,
            Param(
                "delay_ms",
                (0.0, 50.0),
                value_type="range",
                unit="milliseconds the copy arrives after the original",
                example="delay_ms = [0, 50]",
            ),
            _ENDPOINTS,
            _NAME,
        ),
        apply=_apply_duplication,
        budget=True,
    )
)
register(
    FaultKind(
        name="message_reordering",
        summary="delay messages with a probability so later ones overtake them",
        targets_host=False,
        params=(
            _probability("probability = 0.3"),
            _WINDOW,
            Param(
                "delay_ms",
                (10.0, 200.0),
                value_type="range",
                unit="milliseconds added to a delayed message",
                example="delay_ms = [10, 200]",
            ),
            _ENDPOINTS,
            _NAME,
        ),
        apply=_apply_reordering,
        budget=True,
    )
)
