"""Argument checks shared by every store, run against the memory and SQLite stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from simsi.core.alarms import Alarm, AlarmStore, DoneReason
from simsi.core.errors import AlarmError, LifecycleError
from simsi.stores import MemoryAlarmStore, SQLiteAlarmStore
from simsi.stores._common import MAX_ID_BYTES
from simsi.testing.conformance import make_alarm


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AlarmStore]:
    opened: AlarmStore = (
        MemoryAlarmStore() if request.param == "memory" else SQLiteAlarmStore(tmp_path / "a.db")
    )
    yield opened
    assert await opened.get_next_alarms(0, limit=10) == []
    await opened.close()


@pytest.mark.parametrize("limit", [0, -1, True, 100_001, 1.5])
async def test_invalid_limit(store: AlarmStore, limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.get_next_alarms(0, limit=limit)


@pytest.mark.parametrize("shard", [-1, "1", True, None, 2**63])
async def test_invalid_shard(store: AlarmStore, shard: Any) -> None:
    with pytest.raises(ValueError, match="shard"):
        await store.get_next_alarms(shard)
    with pytest.raises(ValueError, match="shard"):
        await store.set_alarm(shard, make_alarm("i", "a", 1))
    with pytest.raises(ValueError, match="shard"):
        await store.get_alarms(shard, "i")


@pytest.mark.parametrize(
    "after",
    [
        (1, "a"),
        ("1", "a", "b"),
        [1, "a", "b"],
        (1, "a\x00", "b"),
        (1, "a", "\ud800"),
        (True, "a", "b"),
    ],
)
async def test_invalid_after(store: AlarmStore, after: Any) -> None:
    with pytest.raises(ValueError, match="after"):
        await store.get_next_alarms(0, after=after)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("instance_id", "", "non-empty"),
        ("internal_id", "a\x00b", "NUL"),
        ("alarm_id", "\ud800", "surrogates"),
        ("alarm_id", "é" * (MAX_ID_BYTES // 2 + 1), "above the limit"),
        ("internal_id", 7, "non-empty string"),
        ("fires_at_us", -1, "fires_at_us"),
        ("fires_at_us", 2**63, "fires_at_us"),
        ("fires_at_us", 1.5, "fires_at_us"),
        ("fires_at_us", True, "fires_at_us"),
        ("attempt", -1, "attempt"),
        ("revision", 2**63, "revision"),
        ("revision", "1", "revision"),
    ],
)
async def test_invalid_alarm_fields(
    store: AlarmStore, field: str, value: Any, problem: str
) -> None:
    alarm = make_alarm("i", "a", 10).with_changes(**{field: value})
    with pytest.raises(AlarmError, match=problem):
        await store.set_alarm(0, alarm)


async def test_longest_ids_accepted(store: AlarmStore) -> None:
    longest = "x" * MAX_ID_BYTES
    alarm = Alarm(longest, longest, longest, 1)
    assert await store.set_alarm(0, alarm) is True
    assert await store.get_alarms(0, longest) == [alarm]
    assert await store.mark_alarm_done(0, longest, longest, DoneReason.SUCCEEDED) is True


async def test_not_an_alarm(store: AlarmStore) -> None:
    with pytest.raises(AlarmError, match=r"takes a simsi\.core\.alarms\.Alarm"):
        await store.set_alarm(0, {"alarm_id": "a"})  # type: ignore[arg-type]


async def test_invalid_if_revision(store: AlarmStore) -> None:
    with pytest.raises(AlarmError, match="if_revision"):
        await store.set_alarm(0, make_alarm("i", "a", 1), if_revision=2**63)
    with pytest.raises(AlarmError, match="if_revision"):
        await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED, if_revision=1.0)  # type: ignore[arg-type]


async def test_invalid_reason(store: AlarmStore) -> None:
    with pytest.raises(ValueError, match="DoneReason"):
        await store.mark_alarm_done(0, "i", "a", "succeeded")  # type: ignore[arg-type]


async def test_closed_store_raises_lifecycle_error(tmp_path: Path) -> None:
    for store in (MemoryAlarmStore(), SQLiteAlarmStore(tmp_path / "b.db")):
        await store.close()
        with pytest.raises(LifecycleError, match="closed"):
            await store.get_alarms(0, "i")
