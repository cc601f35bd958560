"""SQLiteAlarmStore: conformance, durability across SIGKILL, corrupt rows and options."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simsi.core.alarms import DoneReason
from simsi.core.errors import (
    ConfigError,
    CorruptStoreDataError,
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


def run_writer_and_kill(path: Path, count: int, kill_after: str) -> list[str]:
    """Run WRITER in a subprocess, SIGKILL it once it prints ``kill_after``."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if lines[-1] == kill_after:
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
