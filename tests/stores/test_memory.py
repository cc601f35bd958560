"""MemoryAlarmStore against the conformance suites, and the bulk-write fallback."""

from __future__ import annotations

import pytest

from simsi.core.alarms import Alarm
from simsi.core.errors import InvalidAlarmMetaError
from simsi.stores import MemoryAlarmStore
from simsi.stores.bulk import BulkAlarmStore, set_alarms
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory, make_alarm
from tests.stores.bulk_conformance import BulkWriteConformance


class TestMemoryStore(AlarmStoreConformance, BulkWriteConformance):
    durable = False

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return MemoryAlarmStore


class SingleWriteStore:
    """A MemoryAlarmStore seen through the AlarmStore protocol only: no ``set_alarms``."""

    def __init__(self) -> None:
        self.inner = MemoryAlarmStore()
        self.set_calls = 0
        self.get_next_alarms = self.inner.get_next_alarms
        self.get_alarms = self.inner.get_alarms
        self.mark_alarm_done = self.inner.mark_alarm_done
        self.close = self.inner.close

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        self.set_calls += 1
        return await self.inner.set_alarm(shard, alarm, if_revision=if_revision)


async def test_bulk_helper_falls_back_to_set_alarm() -> None:
    store = SingleWriteStore()
    assert not isinstance(store, BulkAlarmStore)
    alarms = [make_alarm("i", f"a{n}", 10 - n) for n in range(5)]
    await set_alarms(store, 3, [*alarms, alarms[0].with_changes(meta="last")])
    assert store.set_calls == 6
    expected = sorted([alarms[0].with_changes(meta="last"), *alarms[1:]], key=lambda a: a.key)
    assert await store.get_next_alarms(3) == expected


async def test_bulk_fallback_validates_first() -> None:
    store = SingleWriteStore()
    with pytest.raises(InvalidAlarmMetaError):
        await set_alarms(store, 0, [make_alarm("i", "a", 1), make_alarm("i", "b", 2, meta={1j})])
    with pytest.raises(ValueError, match="shard"):
        await set_alarms(store, -2, [])
    assert store.set_calls == 0
