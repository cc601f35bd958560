"""FoundationDBAlarmStore on SimKV (with and without faults) and on a real cluster."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import fdb.tuple
import pytest

from simsi.core.alarms import Alarm, DoneReason
from simsi.core.errors import (
    ConfigError,
    CorruptStoreDataError,
    StoreError,
    StoreUnavailableError,
)
from simsi.sim.kv import COMMIT_UNKNOWN_RESULT, NOT_COMMITTED, ManualClock, SimKV, SimKVError
from simsi.stores import FoundationDBAlarmStore
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory, make_alarm
from tests.stores.bulk_conformance import BulkWriteConformance

T = TypeVar("T")


def sim_factory(kv: SimKV, **options: Any) -> StoreFactory:
    return lambda: FoundationDBAlarmStore(kv, close_database=False, **options)


class TestFoundationDBOnSimKV(AlarmStoreConformance, BulkWriteConformance):
    durable = True

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return sim_factory(SimKV(), rows_per_read=4)


class TestFoundationDBWithFaults(AlarmStoreConformance, BulkWriteConformance):
    """Every third commit conflicts or has an unknown result; the outcomes must not change."""

    durable = True

    @pytest.fixture
    def kv(self) -> SimKV:
        return SimKV(
            rng=random.Random(2024),
            conflict_probability=0.2,
            unknown_result_probability=0.2,
            unknown_applied_probability=0.5,
        )

    @pytest.fixture
    def store_factory(self, kv: SimKV) -> StoreFactory:
        return sim_factory(kv, rows_per_read=5)

    async def test_faults_were_injected(self, kv: SimKV) -> None:
        store = FoundationDBAlarmStore(kv)
        alarms = [make_alarm("i", f"a{n}", n, revision=n) for n in range(40)]
        for alarm in alarms:
            assert await store.set_alarm(0, alarm) is True
        for alarm in alarms[::2]:
            done = await store.mark_alarm_done(
                0, "i", alarm.alarm_id, DoneReason.SUCCEEDED, if_revision=alarm.revision
            )
            assert done is True
        assert await store.get_next_alarms(0) == alarms[1::2]
        assert kv.stats.conflicts > 0
        assert kv.stats.unknown_results > 0


class ThreadedSimKV(SimKV):
    """SimKV run from worker threads, so concurrent store calls really interleave.

    One lock guards each SimKV call, and each call ends with a short sleep, so
    transactions interleave between calls and conflict for real.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)

    def create_transaction(self) -> Any:
        with self.lock:
            return _Locked(super().create_transaction(), self.lock)


class _Locked:
    def __init__(self, target: Any, lock: threading.RLock) -> None:
        self._target = target
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        def call(*args: Any) -> Any:
            with self._lock:
                result = method(*args)
            time.sleep(0.0005)  # let other threads run between calls
            return result

        return call


class TestFoundationDBThreaded(AlarmStoreConformance, BulkWriteConformance):
    durable = True

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return sim_factory(ThreadedSimKV())

    async def test_writers_conflict_and_converge(self) -> None:
        kv = ThreadedSimKV()
        store = FoundationDBAlarmStore(kv)
        versions = [make_alarm("i", "same", 100 + n, revision=n) for n in range(40)]
        await asyncio.gather(*(store.set_alarm(0, alarm) for alarm in versions))
        (stored,) = await store.get_next_alarms(0)
        assert stored in versions
        assert await store.get_alarms(0, "i") == [stored]
        assert len(kv.items()) == 2
        assert kv.stats.conflicts > 0


class _FakeFuture:
    def __init__(self, value: Any = None) -> None:
        self.value = value

    def wait(self) -> _FakeFuture:
        return self


class _FakeKeyValue:
    def __init__(self, key: bytes, value: bytes) -> None:
        self.key, self.value = key, value


class _FakeOptions:
    def __init__(self) -> None:
        self.timeout_ms: int | None = None

    def set_timeout(self, ms: int) -> None:
        self.timeout_ms = ms


class _FakeFDBTransaction:
    """The ``fdb.Transaction`` future API on top of a SimKV transaction."""

    def __init__(self, kv: SimKV) -> None:
        self._tr = kv.create_transaction()
        self.options = _FakeOptions()

    def get(self, key: bytes) -> _FakeFuture:
        return _FakeFuture(self._tr.get(key))

    def get_range(self, begin: bytes, end: bytes, limit: int = 0) -> Iterator[_FakeKeyValue]:
        return iter([_FakeKeyValue(k, v) for k, v in self._tr.get_range(begin, end, limit)])

    def set(self, key: bytes, value: bytes) -> None:
        self._tr.set(key, value)

    def clear(self, key: bytes) -> None:
        self._tr.clear(key)

    def commit(self) -> _FakeFuture:
        self._tr.commit()
        return _FakeFuture()

    def on_error(self, error: BaseException) -> _FakeFuture:
        self._tr.on_error(error)
        return _FakeFuture()


@pytest.fixture
def fake_fdb(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace ``fdb.api_version`` and ``fdb.open`` with a SimKV-backed fake cluster."""
    opened: dict[str, Any] = {"kv": SimKV(), "api_versions": [], "cluster_files": []}

    class FakeDatabase:
        def create_transaction(self) -> _FakeFDBTransaction:
            return _FakeFDBTransaction(opened["kv"])

    def fake_open(cluster_file: str | None = None) -> FakeDatabase:
        opened["cluster_files"].append(cluster_file)
        return FakeDatabase()

    def fake_api_version(version: int) -> None:
        # Like the real bindings, fdb.FDBError exists only once a version is selected.
        opened["api_versions"].append(version)
        monkeypatch.setattr(fdb, "FDBError", SimKVError, raising=False)

    monkeypatch.delattr(fdb, "FDBError", raising=False)
    monkeypatch.setattr(fdb, "api_version", fake_api_version)
    monkeypatch.setattr(fdb, "open", fake_open)
    return opened


class TestFoundationDBClusterAdapter(AlarmStoreConformance, BulkWriteConformance):
    """The real-cluster code path, with SimKV behind the ``fdb`` calls."""

    durable = True

    @pytest.fixture
    def store_factory(self, fake_fdb: dict[str, Any]) -> StoreFactory:
        return lambda: FoundationDBAlarmStore.open_cluster("test.cluster", prefix="adapter")

    async def test_api_version_and_timeout(
        self, store_factory: StoreFactory, fake_fdb: dict[str, Any]
    ) -> None:
        store = FoundationDBAlarmStore.open_cluster("x.cluster", timeout=2.5)
        assert fake_fdb["api_versions"] == []
        await store.set_alarm(0, make_alarm("i", "a", 1))
        assert fake_fdb["api_versions"] == [710]
        assert fake_fdb["cluster_files"] == ["x.cluster"]
        await store.close()

    async def test_first_call_retries_conflict(self, fake_fdb: dict[str, Any]) -> None:
        kv: SimKV = fake_fdb["kv"]
        kv.inject_commit_error(NOT_COMMITTED)
        store = FoundationDBAlarmStore.open_cluster(prefix="first")
        assert await store.set_alarm(0, make_alarm("i", "a", 1)) is True
        assert kv.stats.retries == 1
        assert len(await store.get_next_alarms(0)) == 1
        await store.close()


@pytest.mark.skipif(
    not os.environ.get("FDB_CLUSTER_FILE"),
    reason="FDB_CLUSTER_FILE is not set, so there is no FoundationDB cluster to test against",
)
class TestFoundationDBCluster(AlarmStoreConformance, BulkWriteConformance):
    durable = True

    @pytest.fixture
    def store_factory(self) -> Iterator[StoreFactory]:
        prefix = f"simsi-test-{random.getrandbits(64):016x}"
        cluster_file = os.environ["FDB_CLUSTER_FILE"]
        yield lambda: FoundationDBAlarmStore.open_cluster(cluster_file, prefix=prefix)
        fdb.api_version(710)
        db = fdb.open(cluster_file)
        begin, end = fdb.tuple.range((prefix,)).start, fdb.tuple.range((prefix,)).stop
        db.clear_range(begin, end)


# Store-specific behaviour on SimKV


async def test_keys_use_tuple_encoding() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv, prefix="app")
    await store.set_alarm(3, Alarm("inst", "I", "tick", 1234, meta={"a": 1}, attempt=2, revision=9))
    decoded = [(fdb.tuple.unpack(k), fdb.tuple.unpack(v)) for k, v in kv.items()]
    assert decoded == [
        (("app", "a", 3, 1234, "I", "tick"), (1, "inst", '{"a":1}', 2, 9)),
        (("app", "i", 3, "I", "tick"), (1234,)),
    ]


async def test_prefixes_are_isolated() -> None:
    kv = SimKV()
    one = FoundationDBAlarmStore(kv, prefix="one", close_database=False)
    two = FoundationDBAlarmStore(kv, prefix="two", close_database=False)
    await one.set_alarm(0, make_alarm("i", "a", 5))
    assert await two.get_next_alarms(0) == []
    assert await two.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED) is False
    assert len(await one.get_next_alarms(0)) == 1


async def test_pages_span_several_transactions() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv, rows_per_read=3)
    alarms = [make_alarm("i", f"a{n:02}", n) for n in range(10)]
    for alarm in alarms:
        await store.set_alarm(0, alarm)
    commits = kv.stats.commits
    assert await store.get_next_alarms(0, limit=10) == alarms
    assert await store.get_next_alarms(0, after=alarms[1].key, limit=7) == alarms[2:9]
    assert await store.get_alarms(0, "i") == alarms
    assert kv.stats.commits == commits


@pytest.mark.parametrize("applied", [True, False])
async def test_set_if_revision_after_unknown_result(applied: bool) -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv)
    await store.set_alarm(0, make_alarm("i", "a", 10, revision=1))
    kv.inject_commit_error(COMMIT_UNKNOWN_RESULT, applied=applied)
    retry = make_alarm("i", "a", 20, attempt=1, revision=2)
    assert await store.set_alarm(0, retry, if_revision=1) is True
    assert await store.get_next_alarms(0) == [retry]
    assert kv.stats.unknown_results == 1


@pytest.mark.parametrize("applied", [True, False])
async def test_mark_done_after_unknown_result(applied: bool) -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv)
    await store.set_alarm(0, make_alarm("i", "a", 10, revision=4))
    kv.inject_commit_error(COMMIT_UNKNOWN_RESULT, applied=applied)
    assert await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED, if_revision=4) is True
    assert await store.get_next_alarms(0) == []
    assert kv.items() == []


async def test_replace_after_unknown_result_leaves_one_alarm() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv)
    await store.set_alarm(0, make_alarm("i", "a", 10))
    kv.inject_commit_error(COMMIT_UNKNOWN_RESULT, applied=True)
    moved = make_alarm("i", "a", 50, revision=1)
    assert await store.set_alarm(0, moved) is True
    assert await store.get_next_alarms(0) == [moved]
    assert len(kv.items()) == 2


async def test_retry_after_transaction_too_old() -> None:
    clock = ManualClock()
    kv = SimKV(clock)
    store = FoundationDBAlarmStore(kv)
    await store.set_alarm(0, make_alarm("i", "a", 10))
    original = kv.create_transaction
    slow_once = [True]

    def slow_transaction() -> Any:
        tr = original()
        if slow_once.pop() if slow_once else False:
            tr.get(b"warm-up")
            clock.advance(6)
        return tr

    kv.create_transaction = slow_transaction  # type: ignore[method-assign]
    assert await store.mark_alarm_done(0, "i", "a", DoneReason.CANCELLED) is True
    assert kv.stats.too_old == 1
    assert kv.items() == []


async def test_gives_up_after_max_retries() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv, max_retries=3)
    for _ in range(4):
        kv.inject_commit_error(NOT_COMMITTED)
    with pytest.raises(StoreUnavailableError, match="failed 4 times"):
        await store.set_alarm(0, make_alarm("i", "a", 10))
    assert kv.items() == []


async def test_non_retryable_error_is_store_error() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv)
    kv.inject_commit_error(2101)
    with pytest.raises(StoreError, match="2101") as info:
        await store.set_alarm(0, make_alarm("i", "a", 10))
    assert not isinstance(info.value, StoreUnavailableError)


async def test_corrupt_record_changes_nothing() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv, prefix="p")
    await store.set_alarm(1, make_alarm("i", "good", 10))
    tr = kv.create_transaction()
    tr.set(fdb.tuple.pack(("p", "a", 1, 20, "i", "bad")), b"\x99not a tuple")
    tr.set(fdb.tuple.pack(("p", "i", 1, "i", "bad")), fdb.tuple.pack((20,)))
    tr.commit()
    before = kv.items()
    with pytest.raises(CorruptStoreDataError, match=r"shard 1: .*'bad'"):
        await store.get_next_alarms(1)
    with pytest.raises(CorruptStoreDataError):
        await store.get_alarms(1, "i")
    with pytest.raises(CorruptStoreDataError):
        await store.mark_alarm_done(1, "i", "bad", DoneReason.SUCCEEDED)
    assert kv.items() == before


async def test_index_without_record_is_corrupt() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv, prefix="p")
    tr = kv.create_transaction()
    tr.set(fdb.tuple.pack(("p", "i", 0, "i", "orphan")), fdb.tuple.pack((7,)))
    tr.commit()
    with pytest.raises(CorruptStoreDataError, match="record is missing"):
        await store.set_alarm(0, make_alarm("i", "orphan", 9))
    assert len(kv.items()) == 1


def test_options_checked() -> None:
    with pytest.raises(ConfigError, match="rows_per_read"):
        FoundationDBAlarmStore(SimKV(), rows_per_read=0)
    with pytest.raises(ConfigError, match="prefix"):
        FoundationDBAlarmStore(SimKV(), prefix="")


async def test_missing_client_library_is_config_error() -> None:
    try:
        fdb.api_version(710)
    except Exception:
        pass
    else:
        pytest.skip("the FoundationDB client library is installed here")
    store = FoundationDBAlarmStore.open_cluster("/nonexistent/fdb.cluster")
    with pytest.raises(ConfigError, match="client library"):
        await store.get_next_alarms(0)


async def test_outage_is_store_unavailable() -> None:
    kv = SimKV()
    store = FoundationDBAlarmStore(kv)
    await store.set_alarm(0, make_alarm("i", "a", 10))
    kv.set_available(False)
    with pytest.raises(StoreUnavailableError, match="1031"):
        await store.get_next_alarms(0)
    with pytest.raises(StoreUnavailableError, match="1031"):
        await store.set_alarm(0, make_alarm("i", "b", 10))
    kv.set_available(True)
    assert [a.alarm_id for a in await store.get_next_alarms(0)] == ["a"]
