"""The shared conformance suite for :class:`~simsi.core.alarms.AlarmStore` implementations.

Every store that ships with simsi passes this suite, and so should yours. Subclass
:class:`AlarmStoreConformance` in a test module, name the subclass ``Test...`` so
pytest collects it, and define a ``store_factory`` fixture::

    import pytest
    from simsi.stores import SQLiteAlarmStore
    from simsi.testing.conformance import AlarmStoreConformance

    class TestMyStore(AlarmStoreConformance):
        durable = True

        @pytest.fixture
        def store_factory(self, tmp_path):
            return lambda: SQLiteAlarmStore(tmp_path / "alarms.db")

The factory is called with no arguments and returns a store, or an awaitable of a
store. Every call within one test must open the same backing data: the first call
returns an empty store, and a later call after ``close()`` is a reopen. Clean the
backing data up in the fixture's teardown. Set ``durable = True`` when a reopened
store reads what an earlier store wrote, which enables the durability test.

The suite needs ``pytest`` and ``pytest-asyncio`` (the ``test`` extra of simsi);
its tests carry the ``asyncio`` mark, so they run in pytest-asyncio's strict mode too.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from simsi.core.alarms import (
    MAX_META_BYTES,
    Alarm,
    AlarmStore,
    DoneReason,
    encode_meta,
)
from simsi.core.errors import InvalidAlarmMetaError, SimsiError

StoreFactory = Callable[[], AlarmStore | Awaitable[AlarmStore]]

#: Meta values that every store must return unchanged.
META_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**53 - 1,
    -(2**53 - 1),
    0.5,
    -1.25e-7,
    1e300,
    "",
    "plain",
    'unicode: é ü ß 東京 😀 \u0000 "quoted" \\ \n\t',
    [],
    {},
    [1, "two", 3.0, None, True, [4, [5]], {"six": 6}],
    {"nested": {"deeper": {"list": [1, {"x": None}]}}, "flag": False, "ключ": "значение"},
]

#: Ids whose code point order differs from case-insensitive or locale order.
TRICKY_IDS = ["A", "B", "a", "a-b", "ab", "b", "é", "東", "😀"]


def make_alarm(
    internal_id: str,
    alarm_id: str,
    fires_at_us: int,
    *,
    meta: Any = None,
    attempt: int = 0,
    revision: int = 0,
) -> Alarm:
    """Return an alarm whose instance id is derived from ``internal_id``."""
    return Alarm(
        instance_id=f"instance-{internal_id}",
        internal_id=internal_id,
        alarm_id=alarm_id,
        fires_at_us=fires_at_us,
        meta=meta,
        attempt=attempt,
        revision=revision,
    )


async def open_store(factory: StoreFactory) -> AlarmStore:
    """Call ``factory`` and await its result if it is awaitable."""
    result = factory()
    if inspect.isawaitable(result):
        return await result
    return result


async def read_shard(store: AlarmStore, shard: int, limit: int = 1000) -> list[Alarm]:
    """Return every alarm of ``shard`` by walking pages of ``limit`` alarms."""
    alarms: list[Alarm] = []
    after = None
    while True:
        page = await store.get_next_alarms(shard, after=after, limit=limit)
        alarms.extend(page)
        if len(page) < limit:
            return alarms
        after = page[-1].key


@pytest.mark.asyncio
class AlarmStoreConformance:
    """Tests every AlarmStore must pass; subclass it and define ``store_factory``."""

    #: Whether a store opened again by the factory reads what an earlier one wrote.
    durable: ClassVar[bool] = False

    @pytest_asyncio.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[AlarmStore]:
        """Open a fresh empty store and close it after the test."""
        store = await open_store(store_factory)
        try:
            yield store
        finally:
            await store.close()

    # Ordering and paging

    async def test_empty_shard(self, store: AlarmStore) -> None:
        assert await store.get_next_alarms(0) == []
        assert await store.get_next_alarms(0, after=(0, "a", "a"), limit=1) == []
        assert await store.get_alarms(0, "nobody") == []

    async def test_set_then_read_back(self, store: AlarmStore) -> None:
        alarm = make_alarm(
            "inst", "wake", 1_700_000_000_123_457, meta={"n": 1}, attempt=2, revision=7
        )
        assert await store.set_alarm(3, alarm) is True
        assert await store.get_next_alarms(3) == [alarm]
        assert await store.get_alarms(3, "inst") == [alarm]

    async def test_order_with_ties(self, store: AlarmStore) -> None:
        alarms = [
            make_alarm(internal, f"{name}{fires_at_us}", fires_at_us)
            for fires_at_us in (20, 10, 30)
            for internal in ("b", "a", "c")
            for name in ("y", "x")
        ]
        random.Random(1).shuffle(alarms)
        for alarm in alarms:
            assert await store.set_alarm(1, alarm)
        expected = sorted(alarms, key=lambda a: a.key)
        assert await store.get_next_alarms(1, limit=100) == expected
        assert len(expected) == 18
        assert [a.key for a in expected[:3]] == [
            (10, "a", "x10"),
            (10, "a", "y10"),
            (10, "b", "x10"),
        ]

    async def test_order_is_code_point_order(self, store: AlarmStore) -> None:
        shuffled = TRICKY_IDS[::-1]
        for internal in shuffled:
            await store.set_alarm(2, make_alarm(internal, "same", 5))
        for alarm_id in shuffled:
            await store.set_alarm(3, make_alarm("owner", alarm_id, 5))
        by_instance = await store.get_next_alarms(2, limit=100)
        assert [a.internal_id for a in by_instance] == sorted(TRICKY_IDS)
        by_alarm = await store.get_next_alarms(3, limit=100)
        assert [a.alarm_id for a in by_alarm] == sorted(TRICKY_IDS)
        assert [a.alarm_id for a in await store.get_alarms(3, "owner")] == sorted(TRICKY_IDS)

    async def test_after_is_exclusive(self, store: AlarmStore) -> None:
        alarms = [make_alarm("i", f"a{n:02}", 100 + n // 3) for n in range(12)]
        for alarm in alarms:
            await store.set_alarm(0, alarm)
        for index, alarm in enumerate(alarms):
            page = await store.get_next_alarms(0, after=alarm.key, limit=100)
            assert page == alarms[index + 1 :]

    async def test_after_key_not_stored(self, store: AlarmStore) -> None:
        low, high = make_alarm("i", "low", 10), make_alarm("i", "high", 20)
        await store.set_alarm(0, low)
        await store.set_alarm(0, high)
        assert await store.get_next_alarms(0, after=(15, "zzz", "zzz")) == [high]
        assert await store.get_next_alarms(0, after=(10, "i", "low0")) == [high]
        assert await store.get_next_alarms(0, after=(10, "i", "lo")) == [low, high]
        assert await store.get_next_alarms(0, after=(20, "i", "high")) == []
        assert await store.get_next_alarms(0, after=(0, "", "")) == [low, high]

    async def test_limit_one_walks_shard(self, store: AlarmStore) -> None:
        alarms = [make_alarm(f"i{n % 4}", f"a{n}", 1000 + n % 5) for n in range(25)]
        for alarm in alarms:
            await store.set_alarm(4, alarm)
        expected = sorted(alarms, key=lambda a: a.key)
        assert await read_shard(store, 4, limit=1) == expected
        assert await read_shard(store, 4, limit=7) == expected
        assert len(await store.get_next_alarms(4, limit=10)) == 10

    # Replace and done

    async def test_replace_moves_position(self, store: AlarmStore) -> None:
        first, second = make_alarm("i", "first", 10), make_alarm("j", "second", 20)
        await store.set_alarm(0, first)
        await store.set_alarm(0, second)
        moved = make_alarm("i", "first", 30, meta=["new"], attempt=3, revision=9)
        assert await store.set_alarm(0, moved) is True
        assert await store.get_next_alarms(0) == [second, moved]
        assert await store.get_alarms(0, "i") == [moved]
        assert await store.get_next_alarms(0, after=second.key) == [moved]

    async def test_replace_earlier_and_instance_id(self, store: AlarmStore) -> None:
        await store.set_alarm(0, make_alarm("i", "a", 50))
        await store.set_alarm(0, make_alarm("k", "b", 40))
        earlier = Alarm("renamed", "i", "a", 5, meta={"v": 2}, revision=1)
        await store.set_alarm(0, earlier)
        page = await store.get_next_alarms(0)
        assert [a.key for a in page] == [(5, "i", "a"), (40, "k", "b")]
        assert page[0].instance_id == "renamed"

    async def test_alarm_ids_scoped_to_instance(self, store: AlarmStore) -> None:
        one, two = make_alarm("one", "tick", 10), make_alarm("two", "tick", 10)
        await store.set_alarm(0, one)
        await store.set_alarm(0, two)
        assert await store.get_next_alarms(0) == [one, two]
        assert await store.mark_alarm_done(0, "one", "tick", DoneReason.SUCCEEDED) is True
        assert await store.get_next_alarms(0) == [two]

    async def test_mark_done_removes_once(self, store: AlarmStore) -> None:
        alarm = make_alarm("i", "a", 10)
        await store.set_alarm(0, alarm)
        assert await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED) is True
        assert await store.get_next_alarms(0) == []
        assert await store.get_alarms(0, "i") == []
        assert await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED) is False

    async def test_mark_done_unknown_ids(self, store: AlarmStore) -> None:
        assert await store.mark_alarm_done(0, "nobody", "a", DoneReason.CANCELLED) is False
        await store.set_alarm(0, make_alarm("i", "a", 10))
        assert await store.mark_alarm_done(0, "i", "b", DoneReason.CANCELLED) is False
        assert await store.mark_alarm_done(0, "j", "a", DoneReason.CANCELLED) is False
        assert await store.mark_alarm_done(1, "i", "a", DoneReason.CANCELLED) is False
        assert len(await store.get_next_alarms(0)) == 1

    @pytest.mark.parametrize("reason", list(DoneReason))
    async def test_mark_done_every_reason(self, store: AlarmStore, reason: DoneReason) -> None:
        await store.set_alarm(0, make_alarm("i", "a", 10))
        assert await store.mark_alarm_done(0, "i", "a", reason) is True
        assert await store.get_next_alarms(0) == []

    # Conditional writes

    async def test_set_if_revision_matches(self, store: AlarmStore) -> None:
        await store.set_alarm(0, make_alarm("i", "a", 10, revision=1))
        retry = make_alarm("i", "a", 20, attempt=1, revision=2)
        assert await store.set_alarm(0, retry, if_revision=1) is True
        assert await store.get_next_alarms(0) == [retry]

    async def test_set_if_revision_stale(self, store: AlarmStore) -> None:
        current = make_alarm("i", "a", 10, revision=5)
        await store.set_alarm(0, current)
        stale = make_alarm("i", "a", 99, attempt=1, revision=6)
        assert await store.set_alarm(0, stale, if_revision=4) is False
        assert await store.get_next_alarms(0) == [current]

    async def test_set_if_revision_missing(self, store: AlarmStore) -> None:
        alarm = make_alarm("i", "a", 10, revision=1)
        assert await store.set_alarm(0, alarm, if_revision=0) is False
        assert await store.set_alarm(0, alarm, if_revision=1) is False
        assert await store.get_next_alarms(0) == []

    async def test_mark_done_if_revision(self, store: AlarmStore) -> None:
        alarm = make_alarm("i", "a", 10, revision=3)
        await store.set_alarm(0, alarm)
        assert (
            await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED, if_revision=2) is False
        )
        assert await store.get_next_alarms(0) == [alarm]
        assert await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED, if_revision=3) is True
        assert await store.get_next_alarms(0) == []
        assert (
            await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED, if_revision=3) is False
        )

    async def test_revision_extremes(self, store: AlarmStore) -> None:
        for n, revision in enumerate([0, -1, 2**62, 2**63 - 1, -(2**63)]):
            alarm = make_alarm("i", f"a{n}", 10, revision=revision)
            assert await store.set_alarm(0, alarm) is True
            assert (await store.get_alarms(0, "i"))[-1] == alarm
            changed = alarm.with_changes(attempt=1)
            assert await store.set_alarm(0, changed, if_revision=revision) is True
            assert (await store.get_alarms(0, "i"))[-1] == changed

    # Values

    @pytest.mark.parametrize("meta", META_VALUES, ids=lambda v: type(v).__name__)
    async def test_meta_round_trip(self, store: AlarmStore, meta: Any) -> None:
        alarm = make_alarm("i", "a", 10, meta=meta)
        await store.set_alarm(0, alarm)
        (stored,) = await store.get_next_alarms(0)
        assert stored.meta == meta
        assert type(stored.meta) is type(meta)
        assert encode_meta(stored.meta) == encode_meta(meta)

    async def test_meta_is_copied(self, store: AlarmStore) -> None:
        meta = {"items": [1, 2]}
        await store.set_alarm(0, make_alarm("i", "a", 10, meta=meta))
        meta["items"].append(3)
        (stored,) = await store.get_next_alarms(0)
        assert stored.meta == {"items": [1, 2]}
        stored.meta["items"].append(4)
        (again,) = await store.get_alarms(0, "i")
        assert again.meta == {"items": [1, 2]}

    async def test_oversized_meta_rejected(self, store: AlarmStore) -> None:
        too_big = "x" * MAX_META_BYTES
        with pytest.raises(InvalidAlarmMetaError):
            encode_meta(too_big)
        with pytest.raises(InvalidAlarmMetaError):
            await store.set_alarm(0, make_alarm("i", "big", 10, meta=too_big))
        assert await store.get_next_alarms(0) == []

    async def test_meta_at_limit_accepted(self, store: AlarmStore) -> None:
        largest = "y" * (MAX_META_BYTES - 2)
        assert len(encode_meta(largest).encode()) == MAX_META_BYTES
        await store.set_alarm(0, make_alarm("i", "big", 10, meta=largest))
        (stored,) = await store.get_next_alarms(0)
        assert stored.meta == largest

    @pytest.mark.parametrize("meta", [object(), {1, 2}, float("nan"), {"x": b"bytes"}])
    async def test_invalid_meta_rejected(self, store: AlarmStore, meta: Any) -> None:
        await store.set_alarm(0, make_alarm("i", "keep", 10, meta="kept"))
        with pytest.raises(InvalidAlarmMetaError):
            await store.set_alarm(0, make_alarm("i", "keep", 20, meta=meta))
        (stored,) = await store.get_next_alarms(0)
        assert stored.meta == "kept"
        assert stored.fires_at_us == 10

    async def test_time_extremes(self, store: AlarmStore) -> None:
        early, late = make_alarm("i", "early", 0), make_alarm("i", "late", 2**53 - 1)
        await store.set_alarm(0, late)
        await store.set_alarm(0, early)
        assert await store.get_next_alarms(0) == [early, late]
        assert await store.get_next_alarms(0, after=early.key) == [late]

    # Isolation, concurrency, lifecycle

    async def test_shards_are_isolated(self, store: AlarmStore) -> None:
        in_one, in_two = make_alarm("i", "a", 10, meta=1), make_alarm("i", "a", 10, meta=2)
        await store.set_alarm(1, in_one)
        await store.set_alarm(2, in_two)
        assert await store.get_next_alarms(1) == [in_one]
        assert await store.get_alarms(2, "i") == [in_two]
        assert await store.mark_alarm_done(1, "i", "a", DoneReason.SUCCEEDED) is True
        assert await store.get_next_alarms(1) == []
        assert await store.get_next_alarms(2) == [in_two]
        assert await store.get_next_alarms(0) == []

    async def test_get_alarms_of_one_instance(self, store: AlarmStore) -> None:
        mine = [make_alarm("me", f"a{n}", 100 - n * 10) for n in range(5)]
        others = [make_alarm(f"other{n}", f"a{n}", 50) for n in range(3)]
        for alarm in [*others, *mine]:
            await store.set_alarm(0, alarm)
        await store.set_alarm(1, make_alarm("me", "elsewhere", 1))
        assert await store.get_alarms(0, "me") == sorted(mine, key=lambda a: a.key)
        assert await store.get_alarms(0, "m") == []
        assert await store.get_alarms(0, "mee") == []

    async def test_concurrent_writers(self, store: AlarmStore) -> None:
        alarms = [make_alarm(f"i{n % 10}", f"a{n}", 1000 + n % 7, meta=n) for n in range(200)]
        results = await asyncio.gather(*(store.set_alarm(n % 3, a) for n, a in enumerate(alarms)))
        assert results == [True] * len(alarms)
        for shard in range(3):
            expected = sorted(alarms[shard::3], key=lambda a: a.key)
            assert await read_shard(store, shard, limit=50) == expected

    async def test_concurrent_replace_one_alarm(self, store: AlarmStore) -> None:
        versions = [make_alarm("i", "same", 100 + n, meta=n, revision=n) for n in range(50)]
        await asyncio.gather(*(store.set_alarm(0, alarm) for alarm in versions))
        page = await store.get_next_alarms(0, limit=100)
        assert len(page) == 1
        assert page[0] in versions

    async def test_concurrent_done_and_set(self, store: AlarmStore) -> None:
        doomed = [make_alarm("i", f"old{n}", 10 + n) for n in range(30)]
        for alarm in doomed:
            await store.set_alarm(0, alarm)
        fresh = [make_alarm("j", f"new{n}", 5 + n) for n in range(30)]
        removals = [store.mark_alarm_done(0, "i", a.alarm_id, DoneReason.SUCCEEDED) for a in doomed]
        writes = [store.set_alarm(0, a) for a in fresh]
        results = await asyncio.gather(*removals, *writes)
        assert results == [True] * 60
        assert await read_shard(store, 0) == sorted(fresh, key=lambda a: a.key)

    async def test_durable_across_reopen(self, store_factory: StoreFactory) -> None:
        if not self.durable:
            pytest.skip("store is not durable (set durable = True to run this test)")
        first = await open_store(store_factory)
        kept = [
            make_alarm("i", f"a{n}", 100 + n, meta={"n": n}, attempt=n, revision=n)
            for n in range(5)
        ]
        try:
            for alarm in kept:
                await first.set_alarm(7, alarm)
            await first.set_alarm(7, make_alarm("i", "gone", 1))
            await first.mark_alarm_done(7, "i", "gone", DoneReason.CANCELLED)
            kept[0] = kept[0].with_changes(fires_at_us=500, revision=42)
            await first.set_alarm(7, kept[0])
        finally:
            await first.close()
        second = await open_store(store_factory)
        try:
            assert await second.get_next_alarms(7) == sorted(kept, key=lambda a: a.key)
            assert await second.get_alarms(7, "i") == sorted(kept, key=lambda a: a.key)
        finally:
            await second.close()

    async def test_close_is_final(self, store_factory: StoreFactory) -> None:
        store = await open_store(store_factory)
        await store.set_alarm(0, make_alarm("i", "a", 10))
        await store.close()
        await store.close()
        with pytest.raises(SimsiError):
            await store.get_next_alarms(0)
        with pytest.raises(SimsiError):
            await store.set_alarm(0, make_alarm("i", "b", 10))
