"""The simulated durable alarm store, shared by every host incarnation.

:class:`SimAlarmStore` keeps its alarms in a backend that outlives every host
incarnation, so alarms survive crashes as in a real database. The backend is a
:class:`~simsi.stores.memory.MemoryAlarmStore` (``[store] kind = "sim"``) or the
real :class:`~simsi.stores.foundationdb.FoundationDBAlarmStore` running on a
:class:`~simsi.sim.kv.SimKV` (``kind = "foundationdb"``), whose clock is true
time and whose injected conflicts and ``commit_unknown_result`` errors come
from the world seed.

Hosts never call the backend directly: each incarnation gets a
:class:`StoreHandle` bound to its :class:`~simsi.sim.runtime.SimRuntime`. A call
through a handle takes a latency drawn from the store's seeded random source
(true time, independent of the host's clock), which a ``store_latency`` fault
can multiply or replace for a while. A call fails with
:class:`~simsi.core.errors.StoreUnavailableError` while an outage is in force
when it reaches the store (for FoundationDB, ``SimKV.set_available(False)``
makes its transactions fail), or when a network partition cuts the host off
from the store in either direction. Such a call changes nothing: the simulator
does not model a write that is applied while its reply is lost (the
FoundationDB store's ``commit_unknown_result`` is that case).

A dead incarnation never changes the store: every write checks that the calling
runtime is alive before it is sent and again when it is applied, and a rejected
write is recorded in the trace as ``effect_rejected``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from random import Random
from typing import Any, TypeVar

import simpy

from simsi.core.alarms import Alarm, AlarmKey, DoneReason
from simsi.core.errors import DeadIncarnationError, StoreError, StoreUnavailableError
from simsi.sim.kv import SimKV
from simsi.sim.runtime import SimRuntime, wait_event
from simsi.sim.trace import MICROS, Trace
from simsi.stores.foundationdb import FoundationDBAlarmStore
from simsi.stores.memory import MemoryAlarmStore

T = TypeVar("T")

Backend = MemoryAlarmStore | FoundationDBAlarmStore

LinkCheck = Callable[[str, str], str | None]
"""Returns the reason a partition drops traffic from the first endpoint to the second, or None."""


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (a backend call) and return its result.

    Raises:
        RuntimeError: the coroutine suspended.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("run_now() got a coroutine that suspends")


@dataclass(frozen=True)
class LatencyWindow:
    """A ``store_latency`` fault: until ``until`` true seconds, latency is changed.

    Attributes:
        until: true time at which the window ends.
        factor: multiplies the latency.
        latency_s: replaces the configured ``(min, max)`` latency before the factor, or ``None``.
    """

    until: float
    factor: float
    latency_s: tuple[float, float] | None


class SimAlarmStore:
    """The durable store behind every :class:`StoreHandle`.

    Args:
        env: the SimPy environment (true time).
        trace: receives ``store_outage``, ``store_latency`` and ``effect_rejected`` events.
        rng: the store's random source, used for latencies.
        latency_ms: each call's latency in milliseconds, uniform in ``[min, max]``.
        kv: a SimKV to run the FoundationDB alarm store on, or ``None`` for the
            in-memory backend.

    Attributes:
        calls: calls that reached the store.
        writes: writes applied.
        failures: calls failed by an outage, a partition or the backend.
        reads_in_flight: reads (``get_next_alarms``, ``get_alarms``) started and not finished.
        peak_reads_in_flight: the maximum number of reads in flight at once so far.
    """

    def __init__(
        self,
        env: simpy.Environment,
        trace: Trace,
        rng: Random,
        latency_ms: tuple[float, float] = (0.0, 0.0),
        kv: SimKV | None = None,
    ) -> None:
        self._env = env
        self._trace = trace
        self._rng = rng
        self._latency = (latency_ms[0] / 1000.0, latency_ms[1] / 1000.0)
        self._kv = kv
        self._data: Backend = (
            MemoryAlarmStore() if kv is None else FoundationDBAlarmStore(kv, close_database=False)
        )
        self._outage_until = -math.inf
        self._windows: list[LatencyWindow] = []
        self.link: LinkCheck | None = None
        self.calls = 0
        self.writes = 0
        self.failures = 0
        self.reads_in_flight = 0
        self.peak_reads_in_flight = 0

    @property
    def data(self) -> Backend:
        """The backend; read it with :func:`run_now` outside simulated coroutines."""
        return self._data

    @property
    def kv(self) -> SimKV | None:
        """The SimKV under the FoundationDB backend, or ``None`` for the in-memory one."""
        return self._kv

    def handle(self, runtime: SimRuntime, label: str) -> StoreHandle:
        """Return the store as seen by the incarnation running on ``runtime``."""
        return StoreHandle(self, runtime, label)

    # -- faults ------------------------------------------------------------------------------

    def outage(self, duration_s: float) -> None:
        """Fail every call reaching the store in the next ``duration_s`` true seconds."""
        until = self._env.now + duration_s
        self._outage_until = max(self._outage_until, until)
        self._trace.record("store_outage", until_us=round(self._outage_until * MICROS))
        if self._kv is not None:
            self._kv.set_available(False)
            timer = self._env.timeout(duration_s)
            timer.callbacks.append(lambda _event: self._end_kv_outage())

    def _end_kv_outage(self) -> None:
        if self._kv is not None and not self.unavailable:
            self._kv.set_available(True)

    @property
    def unavailable(self) -> bool:
        """Whether an outage is in force now."""
        return self._env.now < self._outage_until

    def slow_down(
        self, duration_s: float, factor: float, latency_ms: tuple[float, float] | None
    ) -> None:
        """Multiply (and first replace, if ``latency_ms`` is given) the latency for ``duration_s``."""
        latency_s = None if latency_ms is None else (latency_ms[0] / 1000.0, latency_ms[1] / 1000.0)
        window = LatencyWindow(self._env.now + duration_s, factor, latency_s)
        self._windows.append(window)
        self._trace.record("store_latency", until_us=round(window.until * MICROS), factor=factor)

    def latency_range(self) -> tuple[float, float]:
        """Return the latency range in seconds in force now; the newest latency window wins."""
        now = self._env.now
        self._windows = [window for window in self._windows if now < window.until]
        if not self._windows:
            return self._latency
        window = self._windows[-1]
        low, high = window.latency_s if window.latency_s is not None else self._latency
        return (low * window.factor, high * window.factor)

    # -- inspection and setup ----------------------------------------------------------------

    def all_alarms(self, shards: int) -> list[tuple[int, Alarm]]:
        """Return ``(shard, alarm)`` for every stored alarm of shards ``0 .. shards-1``."""
        kv = self._kv
        available = kv.available if kv is not None else True
        if kv is not None:
            kv.set_available(True)
        try:
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
        finally:
            if kv is not None:
                kv.set_available(available)

    def preload(self, shard: int, alarms: list[Alarm]) -> None:
        """Write ``alarms`` of ``shard`` before the run, outside any incarnation."""
        run_now(self._data.set_alarms(shard, alarms))

    # -- calls -------------------------------------------------------------------------------

    async def _travel(self, operation: str, label: str) -> None:
        """Wait one call's latency, then raise if an outage or a partition stops the call."""
        self.calls += 1
        low, high = self.latency_range()
        delay = self._rng.uniform(low, high) if high > 0 else 0.0
        if delay > 0:
            await wait_event(self._env.timeout(delay))
        if self._kv is None and self.unavailable:
            self.failures += 1
            raise StoreUnavailableError(
                f"simulated store outage: {operation} failed; it ends at true time "
                f"{self._outage_until:.3f} s"
            )
        reason = self._partitioned(label)
        if reason is not None:
            self.failures += 1
            raise StoreUnavailableError(
                f"{operation} from {label} did not reach the store: the network drops it ({reason})"
            )

    def _partitioned(self, label: str) -> str | None:
        if self.link is None:
            return None
        return self.link(label, "store") or self.link("store", label)

    async def _call(self, apply: Callable[[], Awaitable[T]]) -> T:
        """Run a backend call and count its failure."""
        try:
            return await apply()
        except StoreError:
            self.failures += 1
            raise


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

    async def _read(self, operation: str, apply: Callable[[], Awaitable[T]]) -> T:
        store = self._store
        store.reads_in_flight += 1
        store.peak_reads_in_flight = max(store.peak_reads_in_flight, store.reads_in_flight)
        try:
            await store._travel(operation, self._label)
            return await store._call(apply)
        finally:
            store.reads_in_flight -= 1

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``."""
        data = self._store.data
        return await self._read(
            "get_next_alarms", lambda: data.get_next_alarms(shard, after=after, limit=limit)
        )

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        data = self._store.data
        return await self._read("get_alarms", lambda: data.get_alarms(shard, internal_id))

    async def _write(self, operation: str, effect: str, apply: Callable[[], Awaitable[T]]) -> T:
        store = self._store
        self._check_alive(effect)
        await store._travel(operation, self._label)
        self._check_alive(effect)
        store.writes += 1
        return await store._call(apply)

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        Raises:
            DeadIncarnationError: the calling incarnation was killed.
            StoreUnavailableError: an outage or a partition is in force.
        """
        effect = f"store write set_alarm({alarm.instance_id!r}, {alarm.alarm_id!r})"
        data = self._store.data
        return await self._write(
            "set_alarm", effect, lambda: data.set_alarm(shard, alarm, if_revision=if_revision)
        )

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
            StoreUnavailableError: an outage or a partition is in force.
        """
        effect = f"store write mark_alarm_done({internal_id[:8]}..., {alarm_id!r})"
        data = self._store.data
        return await self._write(
            "mark_alarm_done",
            effect,
            lambda: data.mark_alarm_done(
                shard, internal_id, alarm_id, reason, if_revision=if_revision
            ),
        )

    async def close(self) -> None:
        """Close this handle; the shared store stays open for other incarnations."""
