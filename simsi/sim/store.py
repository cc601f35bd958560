"""The simulated durable alarm store, shared by every host incarnation.

:class:`SimAlarmStore` keeps its alarms in a
:class:`~simsi.stores.memory.MemoryAlarmStore`, which outlives every host
incarnation, so alarms survive crashes as in a real database. Hosts never call
it directly: each incarnation gets a :class:`StoreHandle` bound to its
:class:`~simsi.sim.runtime.SimRuntime`. A call through a handle takes a latency
drawn from the store's seeded random source (true time, independent of the
host's clock) and fails with :class:`~simsi.core.errors.StoreUnavailableError`
while an outage is in force at the moment the call reaches the store.

A dead incarnation never changes the store: every write checks that the calling
runtime is alive before it is sent and again when it is applied, and a rejected
write is recorded in the trace as ``effect_rejected``.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from random import Random
from typing import Any

import simpy

from simsi.core.alarms import Alarm, AlarmKey, DoneReason
from simsi.core.errors import DeadIncarnationError, StoreUnavailableError
from simsi.sim.runtime import SimRuntime, wait_event
from simsi.sim.trace import Trace
from simsi.stores.memory import MemoryAlarmStore


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (a MemoryAlarmStore call) and return its result.

    Raises:
        RuntimeError: the coroutine suspended.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("run_now() got a coroutine that suspends")


class SimAlarmStore:
    """The durable store behind every :class:`StoreHandle`.

    Args:
        env: the SimPy environment (true time).
        trace: receives ``store_outage`` and ``effect_rejected`` events.
        rng: the store's random source, used for latencies.
        latency_ms: each call's latency in milliseconds, uniform in ``[min, max]``.
    """

    def __init__(
        self,
        env: simpy.Environment,
        trace: Trace,
        rng: Random,
        latency_ms: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self._env = env
        self._trace = trace
        self._rng = rng
        self._latency = (latency_ms[0] / 1000.0, latency_ms[1] / 1000.0)
        self._data = MemoryAlarmStore()
        self._outage_until = -math.inf
        self.calls = 0
        self.writes = 0
        self.failures = 0

    @property
    def data(self) -> MemoryAlarmStore:
        """The stored alarms; read them with :func:`run_now` outside simulated coroutines."""
        return self._data

    def handle(self, runtime: SimRuntime, label: str) -> StoreHandle:
        """Return the store as seen by the incarnation running on ``runtime``."""
        return StoreHandle(self, runtime, label)

    def outage(self, duration_s: float) -> None:
        """Fail every call reaching the store in the next ``duration_s`` true seconds."""
        until = self._env.now + duration_s
        self._outage_until = max(self._outage_until, until)
        self._trace.record("store_outage", until_us=round(self._outage_until * 1_000_000))

    @property
    def unavailable(self) -> bool:
        """Whether an outage is in force now."""
        return self._env.now < self._outage_until

    def all_alarms(self, shards: int) -> list[tuple[int, Alarm]]:
        """Return ``(shard, alarm)`` for every stored alarm of shards ``0 .. shards-1``."""
        found: list[tuple[int, Alarm]] = []
        for shard in range(shards):
            after: AlarmKey | None = None
            while True:
                page = run_now(self._data.get_next_alarms(shard, after=after, limit=1000))
                found.extend((shard, alarm) for alarm in page)
                if len(page) < 1000:
                    break
                after = page[-1].key
        return found

    async def _travel(self, operation: str) -> None:
        """Wait one call's latency, then raise if the store is in an outage."""
        self.calls += 1
        low, high = self._latency
        delay = self._rng.uniform(low, high) if high > 0 else 0.0
        if delay > 0:
            await wait_event(self._env.timeout(delay))
        if self.unavailable:
            self.failures += 1
            raise StoreUnavailableError(
                f"simulated store outage: {operation} failed; it ends at true time "
                f"{self._outage_until:.3f} s"
            )


class StoreHandle:
    """One incarnation's connection to the :class:`SimAlarmStore`; an AlarmStore.

    Args:
        store: the shared store.
        runtime: the calling incarnation's runtime; its writes are rejected once it is killed.
        label: the incarnation's name in the trace, like ``"host-1#0"``.
    """

    def __init__(self, store: SimAlarmStore, runtime: SimRuntime, label: str) -> None:
        self._store = store
        self._runtime = runtime
        self._label = label

    def _check_alive(self, effect: str) -> None:
        try:
            self._runtime.check_alive(effect)
        except DeadIncarnationError:
            self._store._trace.record("effect_rejected", inc=self._label, effect=effect)
            raise

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``."""
        await self._store._travel("get_next_alarms")
        return await self._store.data.get_next_alarms(shard, after=after, limit=limit)

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        await self._store._travel("get_alarms")
        return await self._store.data.get_alarms(shard, internal_id)

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        Raises:
            DeadIncarnationError: the calling incarnation was killed.
            StoreUnavailableError: an outage is in force.
        """
        effect = f"store write set_alarm({alarm.instance_id!r}, {alarm.alarm_id!r})"
        self._check_alive(effect)
        await self._store._travel("set_alarm")
        self._check_alive(effect)
        self._store.writes += 1
        return await self._store.data.set_alarm(shard, alarm, if_revision=if_revision)

    async def mark_alarm_done(
        self,
        shard: int,
        internal_id: str,
        alarm_id: str,
        reason: DoneReason,
        *,
        if_revision: int | None = None,
    ) -> bool:
        """Remove an alarm; return whether one was removed.

        Raises:
            DeadIncarnationError: the calling incarnation was killed.
            StoreUnavailableError: an outage is in force.
        """
        effect = f"store write mark_alarm_done({internal_id[:8]}..., {alarm_id!r})"
        self._check_alive(effect)
        await self._store._travel("mark_alarm_done")
        self._check_alive(effect)
        self._store.writes += 1
        return await self._store.data.mark_alarm_done(
            shard, internal_id, alarm_id, reason, if_revision=if_revision
        )

    async def close(self) -> None:
        """Close this handle; the shared store stays open for other incarnations."""
