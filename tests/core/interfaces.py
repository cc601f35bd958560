"""Interface classes shared by the core tests; they mirror the Go library's test interface."""

from __future__ import annotations

from typing import Any, ClassVar

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.alarms import DoneReason
from simsi.core.interface import StableInterface
from simsi.core.manager import InterfaceManager
from simsi.core.observer import ManagerObserver
from simsi.core.placement import Placement
from simsi.stores import MemoryAlarmStore

HOSTS = "host-{0..1}"
SHARDS = 1024
GO_ID = "wrgh9uierhguhrhgierhughe"  # owned by host-0 in the Go library's tests


def ids_owned_by(host: str, count: int, hosts: str = HOSTS, shards: int = SHARDS) -> list[str]:
    placement = Placement(hosts, shards)
    found = []
    i = 0
    while len(found) < count:
        candidate = f"inst-{i}"
        if placement.owner(candidate) == host:
            found.append(candidate)
        i += 1
    return found


class Recorder(ManagerObserver):
    """Observer that keeps every event as a tuple, for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def activated(self, instance_id, internal_id, shard):
        self.events.append(("activated", instance_id))

    def deactivated(self, instance_id, internal_id, shard):
        self.events.append(("deactivated", instance_id))

    def alarm_fired(self, shard, alarm, lag):
        self.events.append(("fired", alarm.alarm_id, alarm.attempt + 1))

    def alarm_retry(self, shard, alarm, error, next_at):
        self.events.append(("retry", alarm.alarm_id, alarm.attempt))

    def alarm_done(self, shard, alarm, reason: DoneReason):
        self.events.append(("done", alarm.alarm_id, reason.value))

    def named(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]


class EchoInterface(StableInterface):
    """Requests: "err" raises, "internal" returns the internal id, anything else echoes."""

    log: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id)
        self.count = 0

    async def on_request(self, ctx, payload):
        self.count += 1
        if payload == "err":
            raise ValueError("test error")
        if payload == "internal":
            return ctx.internal_id
        if payload == "count":
            return self.count
        if isinstance(payload, dict) and "sleep" in payload:
            EchoInterface.log.append(("start", payload["tag"]))
            await ctx.sleep(payload["sleep"])
            EchoInterface.log.append(("end", payload["tag"]))
            return payload["tag"]
        return payload

    async def on_connect(self, ctx, connection):
        instruction = connection.meta.get("instruction")
        if instruction == "reject":
            connection.reject("test rejection")
        elif instruction == "accept":
            end = connection.accept()
            end.on_close(lambda code, reason: EchoInterface.log.append(("closed", reason)))
        elif instruction == "raise":
            raise RuntimeError("on_connect failed")

    async def on_message(self, ctx, connection, message):
        if message == "close":
            await connection.close(reason="instance closed it")
            return
        await connection.send(f"thanks for {message}")


class AlarmInterface(EchoInterface):
    """Alarms record their delivery; meta controls failures."""

    fired: ClassVar[list[tuple[str, str, int, Any]]] = []

    async def on_request(self, ctx, payload):
        if isinstance(payload, dict) and payload.get("op") == "set":
            await ctx.set_alarm(payload["id"], ctx.now() + payload["in"], payload.get("meta"))
            return "set"
        if isinstance(payload, dict) and payload.get("op") == "cancel":
            return await ctx.cancel_alarm(payload["id"])
        if payload == "list":
            return [(a.alarm_id, a.attempt) for a in await ctx.list_alarms()]
        return await super().on_request(ctx, payload)

    async def on_alarm(self, ctx, alarm_id, meta):
        AlarmInterface.fired.append((self.instance_id, alarm_id, ctx.attempt, meta))
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("fail_until", 0) > ctx.attempt:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        if meta.get("rearm"):
            await ctx.set_alarm(alarm_id, ctx.now() + meta["rearm"], {"rearmed": True})


def fast_alarms(**overrides: Any) -> AlarmOptions:
    options = {
        "backoff_base": 0.02,
        "backoff_cap": 0.1,
        "jitter": 0.0,
        "max_attempts": 4,
        "store_retry_delay": 0.01,
    }
    options.update(overrides)
    return AlarmOptions(**options)


def make_manager(rt, factory=EchoInterface, host="host-0", store=None, **kwargs):
    return InterfaceManager(host, HOSTS, SHARDS, factory, runtime=rt, store=store, **kwargs)


def memory_store() -> MemoryAlarmStore:
    return MemoryAlarmStore()
