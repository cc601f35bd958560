"""Interface classes with planted bugs, named as ``tests.sim.planted_interfaces:Class``."""

from __future__ import annotations

from typing import Any

from simsi.core.interface import AlarmContext, InstanceContext, StableInterface

ALARM_NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


class SetOrderAlarms(StableInterface):
    """Sets one alarm per name by iterating a set of strings, so the order depends on hashing.

    The order of a set of strings changes with ``PYTHONHASHSEED``, and so do the
    order of the ``alarm_set`` events and the store latencies each alarm draws.
    The determinism check must catch this.
    """

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        rid = payload["rid"]
        for name in {f"r{rid}-{name}" for name in ALARM_NAMES}:
            await ctx.set_alarm(name, ctx.now() + 1.0)
        return "ok"

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        return None
