"""SQLiteAlarmStore: conformance, durability across SIGKILL, corrupt rows, options and group commit."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from simsi.core.alarms import Alarm, DoneReason
from simsi.core.errors import (
    ConfigError,
    CorruptStoreDataError,
    LifecycleError,
    StoreError,
    StoreUnavailableError,
)
from simsi.stores import SQLiteAlarmStore
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory, make_alarm, read_shard
from tests.stores.bulk_conformance import BulkWriteConformance


class TestSQLiteStore(AlarmStoreConformance, BulkWriteConformance):
    durable = True

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda: SQLiteAlarmStore(tmp_path / "alarms.db")


class TestSQLiteInMemory(AlarmStoreConformance, BulkWriteConformance):
    durable = False

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return lambda: SQLiteAlarmStore(":memory:")


WRITER = """
import asyncio, sys
from simsi.core.alarms import Alarm, DoneReason
from simsi.stores import SQLiteAlarmStore

async def main():
    store = SQLiteAlarmStore(sys.argv[1])
    for n in range(int(sys.argv[2])):
        alarm = Alarm(f"inst{n}", f"i{n}", "a", 1000 + n, meta={"n": n}, attempt=n, revision=n)
        await store.set_alarm(n % 4, alarm)
        print(n, flush=True)
    await store.mark_alarm_done(0, "i0", "a", DoneReason.SUCCEEDED)
    print("done", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def run_writer_and_kill(
    path: Path,
    count: int,
    kill_after: str | None = None,
    *,
    script: str = WRITER,
    kill_after_lines: int | None = None,
) -> list[str]:
    """Run ``script`` in a subprocess and SIGKILL it.

    The kill comes once the script prints the line ``kill_after``, or once it
    printed ``kill_after_lines`` lines.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if lines[-1] == kill_after or len(lines) == kill_after_lines:
                break
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    return lines


async def test_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    lines = run_writer_and_kill(path, 40, kill_after="done")
    assert lines[-1] == "done"
    store = SQLiteAlarmStore(path)
    for shard in range(4):
        alarms = await read_shard(store, shard, limit=7)
        expected = [n for n in range(40) if n % 4 == shard and n != 0]
        assert [a.internal_id for a in alarms] == [f"i{n}" for n in expected]
        assert [a.meta for a in alarms] == [{"n": n} for n in expected]
        assert [(a.attempt, a.revision) for a in alarms] == [(n, n) for n in expected]
    await store.close()


async def test_sigkill_mid_write_keeps_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    lines = run_writer_and_kill(path, 5000, kill_after="25")
    acknowledged = {int(line) for line in lines}
    store = SQLiteAlarmStore(path)
    stored = set()
    for shard in range(4):
        stored |= {int(a.internal_id[1:]) for a in await read_shard(store, shard)}
    await store.close()
    assert acknowledged <= stored
    assert stored == set(range(len(stored)))


async def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    store = SQLiteAlarmStore(path)
    await store.set_alarm(0, make_alarm("i", "a", 1))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    conn.close()
    await store.close()


async def test_calls_run_on_worker_thread(tmp_path: Path) -> None:
    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    name = await store._run(lambda conn: threading.current_thread().name)
    assert name.startswith("simsi-sqlite")
    assert name != threading.current_thread().name
    await store.close()


async def test_newer_schema_rejected(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    store = SQLiteAlarmStore(path)
    with pytest.raises(StoreError, match="schema version 7"):
        await store.get_next_alarms(0)
    await store.close()


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("meta", "{not json", "meta is not valid JSON"),
        ("fires_at_us", "soon", "fires_at_us is 'soon'"),
        ("revision", 1.5, "revision is 1.5"),
        ("instance_id", b"\xff\xfe", "instance_id is b'\\xff"),
        ("instance_id", "", "instance_id is empty"),
        ("attempt", -3, "attempt is -3"),
    ],
)
async def test_corrupt_row_changes_nothing(
    tmp_path: Path, column: str, value: object, problem: str
) -> None:
    path = tmp_path / "alarms.db"
    store = SQLiteAlarmStore(path)
    await store.set_alarm(3, make_alarm("i", "bad", 10))
    await store.set_alarm(3, make_alarm("i", "good", 20))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"UPDATE simsi_alarms SET {column} = ? WHERE alarm_id = 'bad'", (value,))
    before = conn.execute("SELECT * FROM simsi_alarms ORDER BY alarm_id").fetchall()
    with pytest.raises(CorruptStoreDataError) as info:
        await store.get_next_alarms(3)
    assert "shard 3" in str(info.value)
    assert "alarm_id='bad'" in str(info.value)
    assert problem in str(info.value)
    with pytest.raises(CorruptStoreDataError):
        await store.get_alarms(3, "i")
    assert conn.execute("SELECT * FROM simsi_alarms ORDER BY alarm_id").fetchall() == before
    conn.close()
    await store.close()


async def test_file_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    path.write_bytes(b"this is not a SQLite file" * 100)
    store = SQLiteAlarmStore(path)
    with pytest.raises(CorruptStoreDataError, match="not a database"):
        await store.get_next_alarms(0)
    await store.close()


async def test_missing_directory(tmp_path: Path) -> None:
    store = SQLiteAlarmStore(tmp_path / "missing" / "alarms.db")
    with pytest.raises(StoreUnavailableError, match="missing"):
        await store.set_alarm(0, make_alarm("i", "a", 1))
    await store.close()


async def test_two_stores_share_file(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    first, second = SQLiteAlarmStore(path), SQLiteAlarmStore(path)
    await first.set_alarm(0, make_alarm("i", "a", 1))
    assert [a.alarm_id for a in await second.get_next_alarms(0)] == ["a"]
    assert await second.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED) is True
    assert await first.get_next_alarms(0) == []
    await first.close()
    await second.close()


def test_invalid_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SQLiteAlarmStore(tmp_path / "a.db", synchronous="OFF")
    with pytest.raises(ConfigError, match="busy_timeout"):
        SQLiteAlarmStore(tmp_path / "a.db", busy_timeout=-1)


# -- group commit ---------------------------------------------------------------------------


class WorkerHold:
    """Keep the store's worker thread busy, so the calls made meanwhile queue up.

    Leaving the ``async with`` block frees the worker, which then runs the queued
    writes as group commits.
    """

    def __init__(self, store: SQLiteAlarmStore) -> None:
        self._store = store
        self._entered = threading.Event()
        self._release = threading.Event()
        self._task: asyncio.Task[None] | None = None

    def _block(self, conn: sqlite3.Connection) -> None:
        self._entered.set()
        self._release.wait(30)

    async def __aenter__(self) -> WorkerHold:
        self._task = asyncio.create_task(self._store._run(self._block))
        for _ in range(3000):
            if self._entered.is_set():
                return self
            await asyncio.sleep(0.01)
        raise AssertionError("the worker thread did not start the blocking job within 30 s")

    async def wait_queued(self, count: int) -> None:
        """Wait until ``count`` jobs are queued behind the blocking one."""
        for _ in range(3000):
            if self._store._worker._queue.qsize() >= count:
                return
            await asyncio.sleep(0.01)
        queued = self._store._worker._queue.qsize()
        raise AssertionError(f"{queued} jobs queued after 30 s, expected {count}")

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._task is not None
        await self._task


async def open_file_store(path: Path, **options: Any) -> SQLiteAlarmStore:
    """Return a store on ``path`` whose file is open, so the next calls only queue."""
    store = SQLiteAlarmStore(path, **options)
    await store.get_next_alarms(0)
    return store


def add_poison_triggers(path: Path, action: str) -> None:
    """Make writes of alarm ids starting ``poison-set`` or deletes of ``poison-del`` fail.

    ``action`` is the trigger's ``RAISE`` kind: ``ABORT`` and ``FAIL`` fail the
    statement, ``ROLLBACK`` rolls back the whole transaction.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        f"""
        CREATE TRIGGER reject_set BEFORE INSERT ON simsi_alarms
        WHEN NEW.alarm_id LIKE 'poison-set%'
        BEGIN SELECT RAISE({action}, 'poisoned alarm rejected'); END;
        CREATE TRIGGER reject_delete BEFORE DELETE ON simsi_alarms
        WHEN OLD.alarm_id LIKE 'poison-del%'
        BEGIN SELECT RAISE({action}, 'poisoned alarm rejected'); END;
        """
    )
    conn.close()


def by_key(alarms: list[Alarm]) -> list[Alarm]:
    return sorted(alarms, key=lambda alarm: alarm.key)


async def test_concurrent_writes_return_own_results(tmp_path: Path) -> None:
    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    alarms = [
        make_alarm(f"i{n % 50}", f"a{n}", 1000 + n, meta={"n": n}, revision=n) for n in range(900)
    ]
    written = await asyncio.gather(*(store.set_alarm(n % 8, a) for n, a in enumerate(alarms)))
    assert written == [True] * 900

    calls: list[Awaitable[bool]] = []
    expected: list[bool] = []
    expected_by_shard: list[list[Alarm]] = [[] for _ in range(8)]
    for n, alarm in enumerate(alarms):
        shard, ids = n % 8, (alarm.internal_id, alarm.alarm_id)
        if n % 3 == 0:
            calls.append(store.mark_alarm_done(shard, *ids, DoneReason.SUCCEEDED, if_revision=n))
            expected.append(True)
        elif n % 3 == 1:
            stale = n + 1
            calls.append(
                store.mark_alarm_done(shard, *ids, DoneReason.SUCCEEDED, if_revision=stale)
            )
            expected.append(False)
            expected_by_shard[shard].append(alarm)
        else:
            moved = alarm.with_changes(fires_at_us=5, revision=n + 1)
            calls.append(store.set_alarm(shard, moved, if_revision=n))
            expected.append(True)
            expected_by_shard[shard].append(moved)
    calls.append(store.mark_alarm_done(0, "unknown", "a", DoneReason.CANCELLED))
    expected.append(False)
    assert await asyncio.gather(*calls) == expected

    stats = store._worker.stats
    assert stats.committed_writes == 1801
    assert stats.largest_batch > 1
    for shard in range(8):
        assert await read_shard(store, shard, limit=40) == by_key(expected_by_shard[shard])
    await store.close()


async def test_queued_writes_share_one_commit(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db")
    await store.set_alarm(0, make_alarm("i", "old", 1, revision=1))
    commits = store._worker.stats.commits
    bulk = [make_alarm("j", f"b{n}", n) for n in range(10)]
    async with WorkerHold(store) as hold:
        tasks = [
            asyncio.create_task(store.set_alarm(0, make_alarm("i", f"a{n}", n))) for n in range(100)
        ]
        tasks.append(
            asyncio.create_task(
                store.mark_alarm_done(0, "i", "old", DoneReason.SUCCEEDED, if_revision=1)
            )
        )
        bulk_task = asyncio.create_task(store.set_alarms(1, bulk))
        await hold.wait_queued(len(tasks) + 1)
    assert await asyncio.gather(*tasks) == [True] * 101
    await bulk_task
    assert store._worker.stats.commits == commits + 1
    assert store._worker.stats.largest_batch == 102
    assert [a.alarm_id for a in await read_shard(store, 0)] == [f"a{n}" for n in range(100)]
    assert await store.get_next_alarms(1) == bulk
    await store.close()


async def test_stale_revision_spares_batch(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db")
    await store.set_alarm(0, make_alarm("i", "x", 10, revision=5))
    first, last = make_alarm("i", "first", 1), make_alarm("i", "last", 99)
    moved = make_alarm("i", "x", 50, meta="moved", revision=6)
    commits = store._worker.stats.commits
    async with WorkerHold(store) as hold:
        calls = [
            store.set_alarm(0, first),
            store.set_alarm(0, make_alarm("i", "x", 20, revision=9), if_revision=4),
            store.mark_alarm_done(0, "i", "x", DoneReason.SUCCEEDED, if_revision=4),
            store.set_alarm(0, moved, if_revision=5),
            store.mark_alarm_done(0, "i", "missing", DoneReason.SUCCEEDED),
            store.set_alarm(0, make_alarm("i", "never", 5), if_revision=0),
            store.set_alarm(0, last),
        ]
        tasks = [asyncio.create_task(call) for call in calls]
        await hold.wait_queued(len(tasks))
    assert await asyncio.gather(*tasks) == [True, False, False, True, False, False, True]
    assert store._worker.stats.commits == commits + 1
    assert await store.get_next_alarms(0) == [first, moved, last]
    await store.close()


@pytest.mark.parametrize("action", ["ABORT", "FAIL", "ROLLBACK"])
async def test_failing_write_spares_batch(tmp_path: Path, action: str) -> None:
    path = tmp_path / "alarms.db"
    store = await open_file_store(path)
    poisoned_delete = make_alarm("i", "poison-del", 1)
    await store.set_alarm(0, poisoned_delete)
    await store.set_alarm(0, make_alarm("i", "keep", 2))
    add_poison_triggers(path, action)
    before, after = make_alarm("i", "before", 3), make_alarm("i", "after", 4)
    bulk = [make_alarm("j", "b0", 1), make_alarm("j", "b1", 2), make_alarm("j", "poison-set-b", 3)]
    bulk.append(make_alarm("j", "b3", 4))
    commits = store._worker.stats.commits
    async with WorkerHold(store) as hold:
        calls = [
            store.set_alarm(0, before),
            store.set_alarm(0, make_alarm("i", "poison-set", 5)),
            store.set_alarms(1, bulk),
            store.mark_alarm_done(0, "i", "poison-del", DoneReason.SUCCEEDED),
            store.mark_alarm_done(0, "i", "keep", DoneReason.SUCCEEDED),
            store.set_alarm(0, after),
        ]
        tasks = [asyncio.create_task(call) for call in calls]
        await hold.wait_queued(len(tasks))
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert results[0] is True
    for failed in results[1:4]:
        assert isinstance(failed, StoreError)
        assert "poisoned alarm rejected" in str(failed)
        assert isinstance(failed.__cause__, sqlite3.DatabaseError)
    assert results[4] is True
    assert results[5] is True
    assert await store.get_next_alarms(0) == [poisoned_delete, before, after]
    assert await store.get_next_alarms(1) == []
    stats = store._worker.stats
    assert stats.commits == commits + 1
    # RAISE(ROLLBACK) ends the transaction, so the writes before each failure run again.
    assert stats.retried_batches == (3 if action == "ROLLBACK" else 0)
    await store.close()


async def test_locked_file_fails_whole_batch(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    store = await open_file_store(path, busy_timeout=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        calls = [store.set_alarm(0, make_alarm("i", f"a{n}", n)) for n in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    for result in results:
        assert isinstance(result, StoreUnavailableError)
        assert "busy_timeout=0.1" in str(result)
    assert await store.get_next_alarms(0) == []
    assert await store.set_alarm(0, make_alarm("i", "later", 1)) is True
    await store.close()


async def test_read_sees_writes_queued_before(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db")
    async with WorkerHold(store) as hold:
        early = [
            asyncio.create_task(store.set_alarm(0, make_alarm("i", f"a{n}", n))) for n in range(5)
        ]
        read = asyncio.create_task(store.get_next_alarms(0))
        late = [
            asyncio.create_task(store.set_alarm(0, make_alarm("i", f"b{n}", n))) for n in range(5)
        ]
        await hold.wait_queued(11)
    assert await asyncio.gather(*early, *late) == [True] * 10
    assert [a.alarm_id for a in await read] == [f"a{n}" for n in range(5)]
    assert store._worker.stats.commits == 2
    await store.close()


async def test_batch_op_limit(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db", max_batch_ops=10)
    async with WorkerHold(store) as hold:
        tasks = [
            asyncio.create_task(store.set_alarm(0, make_alarm("i", f"a{n}", n))) for n in range(25)
        ]
        big = [make_alarm("j", f"b{n}", n) for n in range(15)]
        bulk_task = asyncio.create_task(store.set_alarms(1, big))
        await hold.wait_queued(26)
    assert await asyncio.gather(*tasks) == [True] * 25
    await bulk_task
    stats = store._worker.stats
    assert stats.commits == 4
    assert stats.largest_batch == 10
    assert len(await read_shard(store, 0)) == 25
    assert await store.get_next_alarms(1) == big
    await store.close()


async def test_batch_byte_budget(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db", max_batch_bytes=1000)
    meta = "x" * 400
    async with WorkerHold(store) as hold:
        calls = [store.set_alarm(0, make_alarm("i", f"a{n}", n, meta=meta)) for n in range(6)]
        tasks = [asyncio.create_task(call) for call in calls]
        await hold.wait_queued(6)
    assert await asyncio.gather(*tasks) == [True] * 6
    assert store._worker.stats.commits == 3
    assert store._worker.stats.largest_batch == 2
    await store.close()


async def test_batch_wait_groups_later_write(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db", max_batch_wait=0.5)
    first = asyncio.create_task(store.set_alarm(0, make_alarm("i", "a", 1)))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(store.set_alarm(0, make_alarm("i", "b", 2)))
    assert await first is True
    assert await second is True
    assert store._worker.stats.commits == 1
    await store.close()


async def test_cancelled_queued_write_skipped(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "alarms.db")
    async with WorkerHold(store) as hold:
        doomed = asyncio.create_task(store.set_alarm(0, make_alarm("i", "cancelled", 1)))
        kept = asyncio.create_task(store.set_alarm(0, make_alarm("i", "kept", 2)))
        await hold.wait_queued(2)
        doomed.cancel()
        await asyncio.sleep(0)
    assert await kept is True
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert [a.alarm_id for a in await store.get_next_alarms(0)] == ["kept"]
    await store.close()


async def test_close_commits_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    store = await open_file_store(path)
    async with WorkerHold(store) as hold:
        tasks = [
            asyncio.create_task(store.set_alarm(0, make_alarm("i", f"a{n}", n))) for n in range(50)
        ]
        await hold.wait_queued(50)
        closing = asyncio.create_task(store.close())
        await hold.wait_queued(51)
        with pytest.raises(LifecycleError, match="closed"):
            await store.set_alarm(0, make_alarm("i", "late", 1))
        with pytest.raises(LifecycleError, match="closed"):
            await store.get_next_alarms(0)
    await closing
    assert await asyncio.gather(*tasks) == [True] * 50
    thread = store._worker._thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive()

    reopened = SQLiteAlarmStore(path)
    assert [a.alarm_id for a in await read_shard(reopened, 0)] == [f"a{n}" for n in range(50)]
    await reopened.close()


async def test_dropped_store_ends_thread(tmp_path: Path) -> None:
    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    assert await store.set_alarm(0, make_alarm("i", "a", 1)) is True
    thread = store._worker._thread
    assert thread is not None
    del store
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_batch_ops", 0),
        ("max_batch_ops", 1.5),
        ("max_batch_bytes", -1),
        ("max_batch_bytes", True),
        ("max_batch_wait", -0.1),
        ("max_batch_wait", 2),
        ("max_batch_wait", "0"),
    ],
)
def test_invalid_batch_options(tmp_path: Path, option: str, value: object) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=option):
        SQLiteAlarmStore(tmp_path / "a.db", **options)


CONCURRENT_WRITER = """
import asyncio, sys
from simsi.core.alarms import Alarm, DoneReason
from simsi.stores import SQLiteAlarmStore

async def writer(store, first, count, step):
    for n in range(first, count, step):
        alarm = Alarm(f"inst{n}", f"i{n}", "a", 1000 + n, meta={"n": n}, attempt=0, revision=n)
        assert await store.set_alarm(n % 4, alarm)
        print("set", n, flush=True)
        if n % 3 == 0:
            assert await store.mark_alarm_done(n % 4, f"i{n}", "a", DoneReason.SUCCEEDED)
            print("done", n, flush=True)

async def main():
    store = SQLiteAlarmStore(sys.argv[1])
    count = int(sys.argv[2])
    await asyncio.gather(*(writer(store, k, count, 64) for k in range(64)))
    print("finished", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_sigkill_keeps_acknowledged_group_commits(tmp_path: Path) -> None:
    path = tmp_path / "alarms.db"
    count = 200_000
    lines = run_writer_and_kill(path, count, script=CONCURRENT_WRITER, kill_after_lines=600)
    assert len(lines) == 600
    assert "finished" not in lines
    set_acked = {int(line.split()[1]) for line in lines if line.startswith("set ")}
    done_acked = {int(line.split()[1]) for line in lines if line.startswith("done ")}

    store = SQLiteAlarmStore(path)
    stored: dict[int, Alarm] = {}
    for shard in range(4):
        for alarm in await read_shard(store, shard):
            stored[int(alarm.internal_id[1:])] = alarm
    await store.close()

    # A removal may have committed without its acknowledgement, so only alarms
    # that are never removed must be stored for sure.
    assert {n for n in set_acked if n % 3 != 0} <= set(stored)
    assert not done_acked & set(stored)
    assert set(stored) <= set(range(count))
    for n, alarm in stored.items():
        assert alarm.meta == {"n": n}
        assert alarm.revision == n
