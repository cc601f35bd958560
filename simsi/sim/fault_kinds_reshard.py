"""The ``reshard`` fault kind: move the stored alarms to a new shard count.

It runs :func:`simsi.stores.reshard.reshard`, the code behind ``simsi reshard``,
on the simulated store's backend at the fault's true time, and records a
``reshard`` trace event with its counts. The move takes no simulated time, so it
models an operator who stops every host, reshards, then starts the hosts with
the new shard count (``stop`` faults, ``reshard``, then ``config_rollout`` with
``shards``). Running it while hosts serve the store is allowed, and the checkers
then show what an online reshard costs: a host that already loaded an alarm
fires the old copy, and the new shard's owner fires the moved one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from simsi.sim.faults import (
    Fault,
    FaultKind,
    FaultTarget,
    Param,
    ReadContext,
    param_value,
    register,
)
from simsi.sim.fields import REQUIRED
from simsi.sim.store import SimAlarmStore, run_now
from simsi.sim.trace import Trace
from simsi.stores.reshard import reshard


class _StoreWorld(Protocol):
    store: SimAlarmStore
    trace: Trace


def _apply_reshard(world: FaultTarget, fault: Fault) -> None:
    target = cast(_StoreWorld, world)
    from_shards = param_value(fault, "from_shards")
    to_shards = param_value(fault, "to_shards")
    # With concurrency 1 the coroutine awaits only backend calls, which never
    # suspend, so it completes inside this SimPy step.
    result = run_now(reshard(target.store.data, from_shards, to_shards, batch=1000, concurrency=1))
    target.trace.record(
        "reshard",
        from_shards=from_shards,
        to_shards=to_shards,
        scanned=result.scanned,
        moved=result.moved,
        conflicts=result.conflicts,
    )


def _check_counts(params: Mapping[str, Any], context: ReadContext) -> str | None:
    if params.get("from_shards") == params.get("to_shards"):
        return "from_shards equals to_shards, so nothing would move; give the new shard count"
    return None


register(
    FaultKind(
        name="reshard",
        summary="move every stored alarm to its shard under a new shard count",
        targets_host=False,
        params=(
            Param(
                "from_shards",
                REQUIRED,
                value_type="integer",
                minimum=1,
                example="from_shards = 64",
            ),
            Param(
                "to_shards", REQUIRED, value_type="integer", minimum=1, example="to_shards = 128"
            ),
        ),
        apply=_apply_reshard,
        validate=_check_counts,
    )
)
