"""Tests of ``set_alarms`` that every :class:`~simsi.stores.bulk.BulkAlarmStore` must pass.

Subclass :class:`BulkWriteConformance` next to a store's conformance class, with the
same ``store_factory`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from simsi.core.alarms import MAX_META_BYTES, AlarmStore, DoneReason
from simsi.core.errors import AlarmError, InvalidAlarmMetaError, LifecycleError
from simsi.stores.bulk import BulkAlarmStore, set_alarms
from simsi.testing.conformance import StoreFactory, make_alarm, open_store, read_shard


@pytest.mark.asyncio
class BulkWriteConformance:
    """``set_alarms`` behaves like one ``set_alarm`` per alarm, in list order."""

    @pytest_asyncio.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[AlarmStore]:
        store = await open_store(store_factory)
        try:
            yield store
        finally:
            await store.close()

    async def test_is_bulk_store(self, store: AlarmStore) -> None:
        assert isinstance(store, BulkAlarmStore)

    async def test_writes_every_alarm(self, store: AlarmStore) -> None:
        alarms = [
            make_alarm(f"i{n % 7}", f"a{n}", 1000 - n, meta={"n": n}, attempt=n % 3, revision=-n)
            for n in range(50)
        ]
        await set_alarms(store, 4, alarms)
        assert await read_shard(store, 4, limit=7) == sorted(alarms, key=lambda a: a.key)
        assert await store.get_alarms(4, "i3") == sorted(
            (a for a in alarms if a.internal_id == "i3"), key=lambda a: a.key
        )
        assert await store.get_next_alarms(3) == []

    async def test_empty_list_writes_nothing(self, store: AlarmStore) -> None:
        await set_alarms(store, 0, [])
        assert await store.get_next_alarms(0) == []

    async def test_replaces_stored_alarm(self, store: AlarmStore) -> None:
        await store.set_alarm(1, make_alarm("i", "a", 500, meta="old", revision=1))
        moved = make_alarm("i", "a", 100, meta="new", revision=2)
        await set_alarms(store, 1, [moved, make_alarm("j", "b", 300)])
        assert await store.get_next_alarms(1) == [moved, make_alarm("j", "b", 300)]
        done = await store.mark_alarm_done(1, "i", "a", DoneReason.CANCELLED, if_revision=2)
        assert done is True

    async def test_later_duplicate_wins(self, store: AlarmStore) -> None:
        first = make_alarm("i", "a", 10, meta=1, revision=1)
        second = make_alarm("i", "a", 20, meta=2, revision=2)
        await set_alarms(store, 0, [first, make_alarm("k", "z", 15), second])
        assert await store.get_next_alarms(0) == [make_alarm("k", "z", 15), second]

    async def test_small_batch_into_large_shard(self, store: AlarmStore) -> None:
        stored = [make_alarm("i", f"a{n:03}", n * 10) for n in range(100)]
        await set_alarms(store, 2, stored)
        changed = [stored[5].with_changes(fires_at_us=5_000), make_alarm("j", "x", 15)]
        await set_alarms(store, 2, changed)
        expected = sorted([*stored[:5], *stored[6:], *changed], key=lambda a: a.key)
        assert await read_shard(store, 2, limit=30) == expected

    async def test_many_alarms_in_blocks(self, store: AlarmStore) -> None:
        alarms = [make_alarm(f"inst{n % 97}", f"a{n}", (n * 7919) % 10_007) for n in range(2_500)]
        await set_alarms(store, 9, alarms)
        assert await read_shard(store, 9, limit=1000) == sorted(alarms, key=lambda a: a.key)

    async def test_large_meta_batches(self, store: AlarmStore) -> None:
        meta = "x" * (MAX_META_BYTES - 2)
        alarms = [make_alarm("i", f"big{n:02}", n, meta=meta) for n in range(40)]
        await set_alarms(store, 0, alarms)
        stored = await read_shard(store, 0, limit=16)
        assert [a.alarm_id for a in stored] == [a.alarm_id for a in alarms]
        assert all(a.meta == meta for a in stored)

    async def test_invalid_id_writes_nothing(self, store: AlarmStore) -> None:
        alarms = [make_alarm("i", "ok", 1), make_alarm("i", "", 2)]
        with pytest.raises(AlarmError, match="alarm_id"):
            await set_alarms(store, 0, alarms)
        assert await store.get_next_alarms(0) == []

    async def test_invalid_meta_writes_nothing(self, store: AlarmStore) -> None:
        alarms = [make_alarm("i", "ok", 1), make_alarm("i", "bad", 2, meta={1j})]
        with pytest.raises(InvalidAlarmMetaError):
            await set_alarms(store, 0, alarms)
        assert await store.get_next_alarms(0) == []

    async def test_invalid_shard_rejected(self, store: AlarmStore) -> None:
        with pytest.raises(ValueError, match="shard"):
            await set_alarms(store, -1, [make_alarm("i", "a", 1)])
        with pytest.raises(ValueError, match="shard"):
            await set_alarms(store, -1, [])

    async def test_closed_store_rejected(self, store_factory: StoreFactory) -> None:
        store = await open_store(store_factory)
        await store.close()
        with pytest.raises(LifecycleError):
            await set_alarms(store, 0, [make_alarm("i", "a", 1)])
