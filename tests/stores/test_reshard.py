"""Resharding stored alarms: every store, crashes and resumes, the state file, the CLI,
and a host meeting an alarm stored under the old shard count."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
import pytest_asyncio
import redis

from simsi.core.alarms import Alarm, AlarmStore, DoneReason, to_micros
from simsi.core.errors import ConfigError, NotOwnerError
from simsi.core.interface import AlarmContext, StableInterface
from simsi.core.manager import InterfaceManager
from simsi.core.observer import ManagerObserver
from simsi.core.placement import Placement, internal_id, shard_of_internal_id
from simsi.host.runtime import AsyncioRuntime
from simsi.stores import MemoryAlarmStore, PostgresAlarmStore, RedisAlarmStore, SQLiteAlarmStore
from simsi.stores.bulk import set_alarms
from simsi.stores.reshard import (
    MOVED_REASON,
    ShardProgress,
    default_state_path,
    describe_url,
    reshard,
)
from simsi.testing.conformance import read_shard

BACKENDS = ["memory", "sqlite", "postgres", "redis"]


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    name = f"simsi_reshard_{secrets.token_hex(6)}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name))
        )


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    name = f"simsi-reshard-{secrets.token_hex(6)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest_asyncio.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AlarmStore]:
    """An empty store of each kind, closed after the test."""
    backend: AlarmStore
    if request.param == "memory":
        backend = MemoryAlarmStore()
    elif request.param == "sqlite":
        backend = SQLiteAlarmStore(tmp_path / "alarms.db", synchronous="NORMAL")
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        backend = PostgresAlarmStore(url, schema=schema, max_size=4)
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisAlarmStore(url, prefix=request.getfixturevalue("redis_prefix"))
    try:
        yield backend
    finally:
        await backend.close()


def make_alarms(instances: int = 60, per_instance: int = 3) -> list[Alarm]:
    """Alarms with distinct meta, attempts and revisions, so a changed copy shows."""
    alarms = []
    for n in range(instances):
        instance = f"inst-{n}"
        for k in range(per_instance):
            alarms.append(
                Alarm(
                    instance_id=instance,
                    internal_id=internal_id(instance),
                    alarm_id=f"alarm-{k}",
                    fires_at_us=1_700_000_000_000_000 + (n * 7 + k * 13) % 50,
                    meta={"n": n, "k": k},
                    attempt=k,
                    revision=n * 100 + k - 150,
                )
            )
    return alarms


async def store_alarms(store: AlarmStore, alarms: list[Alarm], shards: int) -> None:
    by_shard: dict[int, list[Alarm]] = {}
    for alarm in alarms:
        by_shard.setdefault(shard_of_internal_id(alarm.internal_id, shards), []).append(alarm)
    for shard, group in by_shard.items():
        await set_alarms(store, shard, group)


Row = tuple[int, str, str, str, int, str, int, int]


def row(shard: int, alarm: Alarm) -> Row:
    """Return a hashable form of an alarm in ``shard``, with every field."""
    meta = json.dumps(alarm.meta, sort_keys=True)
    return (
        shard,
        alarm.instance_id,
        alarm.internal_id,
        alarm.alarm_id,
        alarm.fires_at_us,
        meta,
        alarm.attempt,
        alarm.revision,
    )


async def stored(store: AlarmStore, shards: int) -> Counter[Row]:
    """Count stored alarms over shards 0..shards+2, so strays past the range show."""
    found: Counter[Row] = Counter()
    for shard in range(shards + 3):
        for alarm in await read_shard(store, shard, limit=100):
            found[row(shard, alarm)] += 1
    return found


def placed(alarms: list[Alarm], shards: int) -> Counter[Row]:
    """Count each alarm once, in its shard among ``shards``."""
    return Counter(row(shard_of_internal_id(a.internal_id, shards), a) for a in alarms)


class SimulatedCrash(Exception):
    """Raised by :class:`CrashingStore` in place of a process crash."""


class CrashingStore:
    """Passes calls to ``inner`` and raises on the write after the first ``writes`` writes."""

    def __init__(self, inner: AlarmStore, writes: int) -> None:
        self.inner = inner
        self.left = writes
        self.get_next_alarms = inner.get_next_alarms
        self.get_alarms = inner.get_alarms
        self.close = inner.close

    def _write(self) -> None:
        if self.left == 0:
            raise SimulatedCrash("crash before this write")
        self.left -= 1

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        self._write()
        return await self.inner.set_alarm(shard, alarm, if_revision=if_revision)

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        self._write()
        await set_alarms(self.inner, shard, alarms)

    async def mark_alarm_done(self, shard: int, *args: Any, **kwargs: Any) -> bool:
        self._write()
        return await self.inner.mark_alarm_done(shard, *args, **kwargs)


@pytest.mark.parametrize(("from_shards", "to_shards"), [(8, 13), (13, 5), (1, 4), (6, 1)])
async def test_every_alarm_lands_once(store: AlarmStore, from_shards: int, to_shards: int) -> None:
    alarms = make_alarms()
    await store_alarms(store, alarms, from_shards)
    result = await reshard(store, from_shards, to_shards, batch=7)
    assert await stored(store, max(from_shards, to_shards)) == placed(alarms, to_shards)
    expected_moves = sum(
        shard_of_internal_id(a.internal_id, from_shards)
        != shard_of_internal_id(a.internal_id, to_shards)
        for a in alarms
    )
    assert result.moved == expected_moves
    assert result.conflicts == 0
    assert sorted(result.shards) == list(range(from_shards))


@pytest.mark.parametrize("crash_after", [0, 1, 3, 9, 40])
async def test_crash_then_resume(store: AlarmStore, tmp_path: Path, crash_after: int) -> None:
    alarms = make_alarms()
    await store_alarms(store, alarms, 8)
    state = tmp_path / "state.json"
    with pytest.raises(SimulatedCrash):
        await reshard(CrashingStore(store, crash_after), 8, 20, batch=10, state_path=state)
    result = await reshard(store, 8, 20, batch=10, state_path=state)
    assert await stored(store, 20) == placed(alarms, 20)
    assert result.conflicts == 0
    assert json.loads(state.read_text())["finished"] is True


async def test_crash_leaves_duplicate_resolved(store: AlarmStore, tmp_path: Path) -> None:
    alarms = make_alarms(instances=20, per_instance=1)
    await store_alarms(store, alarms, 1)
    page = await store.get_next_alarms(0, limit=5)
    # Shard 0 of 1 moves to its own shard of 4: the first page needs up to 4
    # bulk writes (one per new shard), so crashing after them leaves duplicates.
    targets = {shard_of_internal_id(a.internal_id, 4) for a in page} - {0}
    state = tmp_path / "state.json"
    with pytest.raises(SimulatedCrash):
        await reshard(CrashingStore(store, len(targets)), 1, 4, batch=5, state_path=state)
    duplicated = (await stored(store, 4)).total() - len(alarms)
    assert duplicated == sum(shard_of_internal_id(a.internal_id, 4) != 0 for a in page)
    assert duplicated > 0
    result = await reshard(store, 1, 4, batch=5, state_path=state)
    assert await stored(store, 4) == placed(alarms, 4)
    assert result.resumed_at is None


async def test_second_run_moves_nothing(store: AlarmStore, tmp_path: Path) -> None:
    alarms = make_alarms()
    await store_alarms(store, alarms, 16)
    state = tmp_path / "state.json"
    first = await reshard(store, 16, 7, batch=25, state_path=state)
    assert first.moved > 0
    second = await reshard(store, 16, 7, batch=25, state_path=state)
    assert second.moved == 0
    assert second.scanned == len(alarms)
    assert await stored(store, 16) == placed(alarms, 7)


async def test_resume_reports_shard(tmp_path: Path) -> None:
    store = MemoryAlarmStore()
    alarms = make_alarms()
    await store_alarms(store, alarms, 4)
    state = tmp_path / "state.json"
    with pytest.raises(SimulatedCrash):
        await reshard(CrashingStore(store, 60), 4, 9, batch=4, state_path=state)
    crashed_at = json.loads(state.read_text())["shard"]
    result = await reshard(store, 4, 9, batch=4, state_path=state)
    assert result.resumed_at == crashed_at
    assert result.scanned >= len(alarms)
    assert await stored(store, 9) == placed(alarms, 9)


async def test_same_count_moves_nothing() -> None:
    store = MemoryAlarmStore()
    alarms = make_alarms()
    await store_alarms(store, alarms, 5)
    result = await reshard(store, 5, 5, batch=3)
    assert result.moved == 0
    assert result.scanned == len(alarms)
    assert await stored(store, 5) == placed(alarms, 5)


async def test_progress_reports_each_page() -> None:
    store = MemoryAlarmStore()
    await store_alarms(store, make_alarms(instances=30, per_instance=1), 3)
    updates: list[tuple[int, int, int, bool]] = []

    def record(update: ShardProgress) -> None:
        counts = update.counts
        updates.append((update.shard, counts.scanned, counts.moved, counts.finished))

    result = await reshard(store, 3, 6, batch=4, progress=record)
    finished = [update for update in updates if update[3]]
    assert [update[0] for update in finished] == [0, 1, 2]
    assert sum(update[1] for update in finished) == result.scanned
    assert sum(update[2] for update in finished) == result.moved
    assert len(updates) > len(finished)
    assert "resharded 3 -> 6 shards: scanned 30 alarms" in result.summary()


class ConflictingStore(MemoryAlarmStore):
    """Reports the first removal of every old copy as failed, like a concurrent change."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[tuple[str, str]] = set()

    async def mark_alarm_done(self, shard: int, internal: str, alarm_id: str, reason: DoneReason, **kw: Any) -> bool:  # fmt: skip
        if (internal, alarm_id) not in self.refused:
            self.refused.add((internal, alarm_id))
            return False
        return await super().mark_alarm_done(shard, internal, alarm_id, reason, **kw)


async def test_conflicts_counted_then_moved() -> None:
    store = ConflictingStore()
    alarms = make_alarms(instances=20, per_instance=1)
    await store_alarms(store, alarms, 2)
    first = await reshard(store, 2, 3, batch=50)
    assert first.conflicts > 0
    assert first.moved == 0
    second = await reshard(store, 2, 3, batch=50)
    assert second.moved == first.conflicts
    assert second.conflicts == 0
    assert await stored(store, 3) == placed(alarms, 3)


def test_moved_reason_is_cancelled() -> None:
    assert MOVED_REASON is DoneReason.MOVED


@pytest.mark.parametrize(
    ("from_shards", "to_shards", "batch", "message"),
    [
        (0, 4, 10, r"from_shards must be an integer >= 1, got 0"),
        (4, -1, 10, r"to_shards must be an integer >= 1, got -1"),
        (True, 4, 10, r"from_shards .* got True"),
        (4, 4, 0, r"batch must be an integer from 1 to 100000 alarms, got 0"),
        (4, 4, 100_001, r"got 100001"),
    ],
)
async def test_invalid_arguments_rejected(
    from_shards: Any, to_shards: Any, batch: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        await reshard(MemoryAlarmStore(), from_shards, to_shards, batch=batch)


async def test_state_of_other_reshard_rejected(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    store = MemoryAlarmStore()
    await reshard(store, 2, 4, state_path=state, store_label="sqlite:///a.db")
    with pytest.raises(ConfigError, match=r"state.json.*records .*delete the file"):
        await reshard(store, 2, 5, state_path=state, store_label="sqlite:///a.db")
    with pytest.raises(ConfigError, match=r"records"):
        await reshard(store, 2, 4, state_path=state, store_label="sqlite:///b.db")


@pytest.mark.parametrize("text", ["not json", "{}", '{"version": 99}', "[1, 2]"])
async def test_invalid_state_file_rejected(tmp_path: Path, text: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(text)
    with pytest.raises(ConfigError, match=r"state.json.*delete it to start over"):
        await reshard(MemoryAlarmStore(), 2, 4, state_path=state)


def test_default_state_paths() -> None:
    assert default_state_path("sqlite:///data/a.db?busy_timeout=1", 4, 8) == Path(
        "data/a.db.reshard-4-to-8.json"
    )
    assert default_state_path("redis://127.0.0.1:6379/0", 4, 8) == Path("simsi-reshard-4-to-8.json")
    assert describe_url("postgresql://me:secret@127.0.0.1/db") == "postgresql://me:***@127.0.0.1/db"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simsi.cli", "reshard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_reshards_sqlite_file(tmp_path: Path) -> None:
    alarms = make_alarms(instances=80, per_instance=2)
    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    await store_alarms(store, alarms, 8)
    await store.close()
    url = "sqlite:///alarms.db"

    first = run_cli(
        "--store", url, "--from-shards", "8", "--to-shards", "24", "--batch", "9", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("resharded 8 -> 24 shards: scanned 160 alarms, moved ")
    assert "shard 7 done (8 of 8)" in first.stderr
    state = json.loads((tmp_path / "alarms.db.reshard-8-to-24.json").read_text())
    assert state["finished"] is True
    assert state["store"] == url

    second = run_cli("--store", url, "--from-shards", "8", "--to-shards", "24", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    # The second run scans shards 0..7 again, which now hold only their own alarms.
    kept = sum(shard_of_internal_id(a.internal_id, 24) < 8 for a in alarms)
    assert f"scanned {kept} alarms, moved 0, conflicts 0" in second.stdout

    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    try:
        assert await stored(store, 24) == placed(alarms, 24)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "sqlite:///a.db", "--from-shards", "0", "--to-shards", "4"], "from_shards must be an integer >= 1, got 0"),
        (["--store", "sqlite:///a.db", "--from-shards", "4", "--to-shards", "0"], "to_shards must be an integer >= 1, got 0"),
        (["--store", "sqlite:///a.db", "--from-shards", "4", "--to-shards", "8", "--batch", "0"], "batch must be"),
        (["--store", "nosuch://x", "--from-shards", "4", "--to-shards", "8"], "unknown scheme 'nosuch'"),
        (["--store", "memory://", "--from-shards", "4", "--to-shards", "8"], "lives only inside one process"),
        (["--store", "sqlite:///a.db", "--from-shards", "4", "--to-shards", "4"], "both 4, so no alarm would move"),
        (["--store", "sqlite:///a.db", "--from-shards", "4", "--to-shards", "8"], "does not exist; check the path"),
    ],
)  # fmt: skip
def test_cli_rejects_invalid_input(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid input" in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "a.db").exists()


def test_cli_rejects_other_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    sqlite3.connect(tmp_path / "a.db").close()
    args = ["--store", "sqlite:///a.db", "--state", str(state)]
    assert run_cli(*args, "--from-shards", "2", "--to-shards", "3", cwd=tmp_path).returncode == 0
    result = run_cli(*args, "--from-shards", "2", "--to-shards", "4", cwd=tmp_path)
    assert result.returncode == 2
    assert "delete the file or pass another state file" in result.stderr


async def test_cli_resumes_crashed_run(tmp_path: Path) -> None:
    alarms = make_alarms(instances=50, per_instance=2)
    url = "sqlite:///alarms.db"
    state = tmp_path / "alarms.db.reshard-6-to-10.json"
    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    try:
        await store_alarms(store, alarms, 6)
        crashing = CrashingStore(store, 30)
        with pytest.raises(SimulatedCrash):
            await reshard(crashing, 6, 10, batch=8, state_path=state, store_label=url)
    finally:
        await store.close()
    crashed_at = json.loads(state.read_text())["shard"]

    result = run_cli("--store", url, "--from-shards", "6", "--to-shards", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"resumed at shard {crashed_at}" in result.stdout
    store = SQLiteAlarmStore(tmp_path / "alarms.db")
    try:
        assert await stored(store, 10) == placed(alarms, 10)
    finally:
        await store.close()


class AlarmRecorder(StableInterface):
    """Records the instance id of every alarm delivery."""

    fired: ClassVar[list[str]] = []

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        AlarmRecorder.fired.append(ctx.instance_id)


class SwallowedErrors(ManagerObserver):
    def __init__(self) -> None:
        self.errors: list[tuple[BaseException, str]] = []

    def error_swallowed(self, where: str, error: BaseException, *, detail: str = "") -> None:
        self.errors.append((error, detail))


async def run_host(host_id: str, store: AlarmStore, observer: ManagerObserver) -> None:
    """Run one host of three over 8 shards until its due alarms had time to fire."""
    manager = InterfaceManager(
        host_id,
        "host-{0..2}",
        8,
        AlarmRecorder,
        runtime=AsyncioRuntime(),
        store=store,
        observer=observer,
    )
    async with manager:
        await manager.wait_ready()
        for _ in range(50):
            if AlarmRecorder.fired:
                break
            await asyncio.sleep(0.02)
        engine = manager.alarms
        assert engine is not None
        assert engine.schedule.in_flight == 0


async def test_stranded_alarm_waits_for_reshard() -> None:
    old, new = Placement("host-{0..2}", 4), Placement("host-{0..2}", 8)
    instance = next(
        candidate
        for candidate in (f"inst-{n}" for n in range(1000))
        if old.owner(candidate) == "host-0" and new.owner(candidate) != "host-0"
    )
    alarm = Alarm(instance, internal_id(instance), "wake", to_micros(time.time() - 1), None, 0, 1)
    store = MemoryAlarmStore()
    await store.set_alarm(old.shard_of(instance), alarm)
    AlarmRecorder.fired = []

    # host-0 still loads the old shard but no longer owns the instance.
    observer = SwallowedErrors()
    await run_host("host-0", store, observer)
    assert AlarmRecorder.fired == []
    assert len(observer.errors) == 1
    error, detail = observer.errors[0]
    assert isinstance(error, NotOwnerError)
    assert error.owner == new.owner(instance)
    assert "run simsi reshard" in detail
    assert await store.get_next_alarms(old.shard_of(instance)) == [alarm]

    await reshard(store, 4, 8)
    await run_host(new.owner(instance), store, SwallowedErrors())
    assert AlarmRecorder.fired == [instance]
    assert await store.get_next_alarms(old.shard_of(instance)) == []
    assert await store.get_next_alarms(new.shard_of(instance)) == []
