"""Bounded alarm loading on restart, against a real SQLite store with up to 1,000,000 alarms.

One host (``"host-0"``) owns all 64 shards. The tests run on ``AsyncioRuntime``:
the SQLite store awaits futures of its worker thread through asyncio, which
``SimRuntime`` rejects, so alarms meant to fire are stored with past times and
fire at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.alarms import Alarm, AlarmKey, DoneReason
from simsi.core.interface import AlarmContext, StableInterface
from simsi.core.manager import InterfaceManager
from simsi.core.observer import ManagerObserver
from simsi.core.placement import internal_id, shard_of_internal_id
from simsi.host.runtime import AsyncioRuntime
from simsi.stores import SQLiteAlarmStore
from simsi.stores.bulk import set_alarms

SHARDS = 64
PAGE_SIZE = 500
LOAD_CONCURRENCY = 4
INSERT_CHUNK = 50_000

#: Seconds a restart may take to fire its due alarms: about 10 for 48,000 alarms
#: on an idle 2-core machine, with room for a busy one.
FIRE_TIMEOUT = 240.0

#: 2096-10-02 in microseconds: far enough ahead that these alarms never fire in a test.
FUTURE_US = 4_000_000_000_000_000


class CountingStore:
    """Passes every call to a store, counting page reads and how many run at once."""

    def __init__(self, inner: SQLiteAlarmStore) -> None:
        self.inner = inner
        self.pages: Counter[int] = Counter()
        self.alarms_read = 0
        self.reading = 0
        self.peak_reading = 0
        self.get_alarms = inner.get_alarms
        self.set_alarm = inner.set_alarm
        self.close = inner.close

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        self.reading += 1
        self.peak_reading = max(self.peak_reading, self.reading)
        try:
            page = await self.inner.get_next_alarms(shard, after=after, limit=limit)
        finally:
            self.reading -= 1
        self.pages[shard] += 1
        self.alarms_read += len(page)
        return page

    async def mark_alarm_done(
        self, shard: int, internal: str, alarm_id: str, reason: DoneReason, **kw: Any
    ) -> bool:
        return await self.inner.mark_alarm_done(shard, internal, alarm_id, reason, **kw)


class ReadinessProbe(ManagerObserver):
    """Records what the store had served, and what had fired, when the host became ready."""

    def __init__(self, store: CountingStore) -> None:
        self.store = store
        self.pages_at_ready: Counter[int] | None = None
        self.alarms_read_at_ready = 0
        self.held_at_ready = 0
        self.fired_at_ready = 0
        self.done = 0

    def ready(self, host_id: str, alarms_loaded: int) -> None:
        self.pages_at_ready = Counter(self.store.pages)
        self.alarms_read_at_ready = self.store.alarms_read
        self.held_at_ready = alarms_loaded
        self.fired_at_ready = len(FiringInterface.fired)

    def alarm_done(self, shard: int, alarm: Alarm, reason: DoneReason) -> None:
        self.done += 1


class FiringInterface(StableInterface):
    """Counts each delivery by ``(instance_id, alarm_id)``."""

    fired: ClassVar[Counter[tuple[str, str]]] = Counter()

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        FiringInterface.fired[(ctx.instance_id, alarm_id)] += 1


def instances_by_shard(count: int) -> dict[int, list[tuple[str, str]]]:
    """Return ``count`` instances as ``(instance_id, internal_id)``, grouped by shard."""
    grouped: dict[int, list[tuple[str, str]]] = {}
    for n in range(count):
        instance = f"inst-{n}"
        internal = internal_id(instance)
        grouped.setdefault(shard_of_internal_id(internal, SHARDS), []).append((instance, internal))
    return grouped


async def fill_store(
    store: SQLiteAlarmStore, instances: int, per_instance: int, due_per_shard: int, now_us: int
) -> int:
    """Bulk-insert ``instances * per_instance`` alarms; return how many are due.

    In each shard the first ``due_per_shard`` alarms in key order are due in the
    past, one microsecond apart, and the rest are due in 2096.
    """
    due = 0
    for shard, members in instances_by_shard(instances).items():
        alarms = []
        for rank in range(per_instance):
            for instance, internal in members:
                position = len(alarms)
                if position < due_per_shard:
                    fires_at_us = now_us - 60_000_000 + position
                else:
                    fires_at_us = FUTURE_US + position
                alarms.append(Alarm(instance, internal, f"a{rank}", fires_at_us, None, 0, 1))
        due += min(due_per_shard, len(alarms))
        for start in range(0, len(alarms), INSERT_CHUNK):
            await set_alarms(store, shard, alarms[start : start + INSERT_CHUNK])
    return due


async def restart_host(
    path: Path, expected_fires: int, timeout: float
) -> tuple[InterfaceManager, CountingStore, ReadinessProbe]:
    """Start a host on the store at ``path``, wait for ready and for the due alarms to fire."""
    FiringInterface.fired = Counter()
    store = CountingStore(SQLiteAlarmStore(path, synchronous="NORMAL"))
    probe = ReadinessProbe(store)
    options = AlarmOptions(page_size=PAGE_SIZE, load_concurrency=LOAD_CONCURRENCY)
    manager = InterfaceManager(
        "host-0",
        "host-0",
        SHARDS,
        FiringInterface,
        runtime=AsyncioRuntime(seed=7),
        store=store,  # type: ignore[arg-type]
        alarm_options=options,
        observer=probe,
    )
    started = time.monotonic()
    await manager.start()
    await asyncio.wait_for(manager.wait_ready(), timeout)
    deadline = started + timeout
    while probe.done < expected_fires and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await manager.close()
    await store.close()
    return manager, store, probe


async def test_million_alarms_load_in_bounded_window(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    writer = SQLiteAlarmStore(path, synchronous="NORMAL")
    now_us = int(time.time() * 1_000_000)
    # 10,000 instances with 100 alarms each: about 15,600 alarms per shard. The
    # first 750 of each shard are due, so every shard fires its first page and
    # needs a second one while the 2096 alarms stay in the store.
    due = await fill_store(writer, 10_000, 100, 750, now_us)
    await writer.close()
    assert due == SHARDS * 750

    manager, store, probe = await restart_host(path, due, timeout=FIRE_TIMEOUT)
    engine = manager.alarms
    assert engine is not None

    assert engine.peak_held <= engine.window_limit
    assert engine.window_limit == 2 * PAGE_SIZE * SHARDS + AlarmOptions().max_concurrent
    assert engine.peak_loading <= LOAD_CONCURRENCY
    assert engine.peak_loading == LOAD_CONCURRENCY
    assert store.peak_reading <= LOAD_CONCURRENCY

    # Ready once every shard has its first page, long before the million alarms are
    # read: refills wait until every first page is in.
    assert probe.pages_at_ready is not None
    assert probe.pages_at_ready == Counter(dict.fromkeys(range(SHARDS), 1))
    assert probe.held_at_ready <= engine.window_limit
    assert probe.alarms_read_at_ready == SHARDS * PAGE_SIZE

    fired = sum(FiringInterface.fired.values())
    assert fired == due, f"{fired} deliveries of {due} due alarms ({probe.done} done)"
    assert set(FiringInterface.fired.values()) == {1}
    assert store.alarms_read < 200_000

    # Restarting again with nothing due: ready after exactly one page per shard.
    manager, store, probe = await restart_host(path, 0, timeout=FIRE_TIMEOUT)
    engine = manager.alarms
    assert engine is not None
    assert probe.pages_at_ready == Counter(dict.fromkeys(range(SHARDS), 1))
    assert probe.held_at_ready == SHARDS * PAGE_SIZE
    assert probe.alarms_read_at_ready == SHARDS * PAGE_SIZE
    assert engine.peak_held == SHARDS * PAGE_SIZE
    assert engine.peak_loading == LOAD_CONCURRENCY
    assert store.peak_reading <= LOAD_CONCURRENCY
    assert FiringInterface.fired == Counter()


async def test_all_due_alarms_fire_once(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    writer = SQLiteAlarmStore(path, synchronous="NORMAL")
    due = await fill_store(writer, 2_000, 10, 10**9, int(time.time() * 1_000_000))
    await writer.close()
    assert due == 20_000

    manager, store, probe = await restart_host(path, due, timeout=FIRE_TIMEOUT)
    engine = manager.alarms
    assert engine is not None

    assert len(FiringInterface.fired) == 20_000
    assert set(FiringInterface.fired.values()) == {1}
    assert probe.done == 20_000
    assert engine.peak_held <= engine.window_limit
    assert engine.peak_loading <= LOAD_CONCURRENCY
    assert store.peak_reading <= LOAD_CONCURRENCY
    assert probe.pages_at_ready is not None
    assert set(probe.pages_at_ready) == set(range(SHARDS))

    reopened = SQLiteAlarmStore(path)
    try:
        for shard in range(SHARDS):
            assert await reopened.get_next_alarms(shard) == []
    finally:
        await reopened.close()
