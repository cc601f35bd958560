"""Interface classes that simulator tests name as ``tests.sim.sample_interfaces:Class``."""

from __future__ import annotations

from typing import Any

from simsi.core.interface import AlarmContext, InstanceContext, StableInterface


class FlakyAlarms(StableInterface):
    """Sets the alarms each request lists; every alarm's first delivery attempt fails."""

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        for alarm in payload["alarms"]:
            await ctx.set_alarm(alarm["id"], ctx.now() + alarm["delay_s"])
        return "ok"

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        if ctx.attempt == 1:
            raise RuntimeError(f"first attempt of alarm {alarm_id} fails on purpose")
