"""RedisAlarmStore: conformance, key layout, atomic scripts, corrupt keys, failures."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from simsi.core.alarms import DoneReason
from simsi.core.errors import ConfigError, CorruptStoreDataError, StoreUnavailableError
from simsi.stores import RedisAlarmStore
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory, make_alarm
from tests.stores.bulk_conformance import BulkWriteConformance


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """Return a fresh key prefix and delete its keys after the test."""
    name = f"simsi-test-{secrets.token_hex(6)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


class TestRedisStore(AlarmStoreConformance, BulkWriteConformance):
    durable = True

    @pytest.fixture
    def store_factory(self, redis_url: str, prefix: str) -> StoreFactory:
        return lambda: RedisAlarmStore(redis_url, prefix=prefix)


async def test_key_layout(redis_url: str, prefix: str, client: redis.Redis) -> None:
    store = RedisAlarmStore(redis_url, prefix=prefix)
    await store.set_alarm(5, make_alarm("I", "tick", 255, meta=[1], attempt=2, revision=-3))
    await store.close()
    keys = sorted(client.scan_iter(match=f"{prefix}:*"))
    base = f"{prefix}:{{5}}:".encode()
    assert keys == [base + b"alarm:I\x00tick", base + b"ids", base + b"order"]
    assert client.zrange(base + b"order", 0, -1, withscores=True) == [
        (b"00000000000000ffI\x00tick", 0.0)
    ]
    assert client.zrange(base + b"ids", 0, -1) == [b"I\x00tick"]
    assert client.hgetall(base + b"alarm:I\x00tick") == {
        b"pos": b"00000000000000ffI\x00tick",
        b"instance_id": b"instance-I",
        b"fires_at_us": b"255",
        b"meta": b"[1]",
        b"attempt": b"2",
        b"revision": b"-3",
    }


async def test_done_removes_every_key(redis_url: str, prefix: str, client: redis.Redis) -> None:
    store = RedisAlarmStore(redis_url, prefix=prefix)
    await store.set_alarm(0, make_alarm("i", "a", 1))
    await store.set_alarm(0, make_alarm("i", "a", 2))
    assert await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED) is True
    await store.close()
    assert list(client.scan_iter(match=f"{prefix}:*")) == []


async def test_times_beyond_float_precision(redis_url: str, prefix: str) -> None:
    store = RedisAlarmStore(redis_url, prefix=prefix)
    base = 2**62
    alarms = [make_alarm("i", f"a{n}", base + n) for n in (3, 1, 2)]
    for alarm in alarms:
        await store.set_alarm(0, alarm)
    page = await store.get_next_alarms(0)
    assert [a.fires_at_us for a in page] == [base + 1, base + 2, base + 3]
    assert await store.get_next_alarms(0, after=page[0].key) == page[1:]
    assert await store.get_next_alarms(0, after=(2**64, "", "")) == []
    assert await store.get_next_alarms(0, after=(-1, "z", "z")) == page
    await store.close()


async def test_corrupt_hash_changes_nothing(
    redis_url: str, prefix: str, client: redis.Redis
) -> None:
    store = RedisAlarmStore(redis_url, prefix=prefix)
    await store.set_alarm(1, make_alarm("i", "bad", 10))
    alarm_key = f"{prefix}:{{1}}:alarm:i\x00bad".encode()
    client.hset(alarm_key, "revision", "not a number")
    with pytest.raises(CorruptStoreDataError, match=r"shard 1: .*'bad'.*invalid field"):
        await store.get_next_alarms(1)
    with pytest.raises(CorruptStoreDataError):
        await store.get_alarms(1, "i")
    client.hdel(alarm_key, "pos")
    before = client.hgetall(alarm_key)
    with pytest.raises(CorruptStoreDataError, match="no pos field"):
        await store.set_alarm(1, make_alarm("i", "bad", 20))
    with pytest.raises(CorruptStoreDataError, match="no pos field"):
        await store.mark_alarm_done(1, "i", "bad", DoneReason.CANCELLED)
    assert client.hgetall(alarm_key) == before
    await store.close()


async def test_missing_hash_is_corrupt(redis_url: str, prefix: str, client: redis.Redis) -> None:
    store = RedisAlarmStore(redis_url, prefix=prefix)
    await store.set_alarm(0, make_alarm("i", "gone", 10))
    client.delete(f"{prefix}:{{0}}:alarm:i\x00gone".encode())
    with pytest.raises(CorruptStoreDataError, match="hash is missing"):
        await store.get_next_alarms(0)
    await store.close()


async def test_require_fsync(redis_url: str, prefix: str, client: redis.Redis) -> None:
    settings = client.config_get("append*")
    store = RedisAlarmStore(redis_url, prefix=prefix, require_fsync=True)
    if settings.get("appendonly") == "yes" and settings.get("appendfsync") == "always":
        assert await store.get_next_alarms(0) == []
    else:
        with pytest.raises(ConfigError, match="appendfsync always"):
            await store.get_next_alarms(0)
    await store.close()


async def test_unreachable_server() -> None:
    store = RedisAlarmStore("redis://:secret@127.0.0.1:1/0", timeout=2)
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:1") as info:
        await store.set_alarm(0, make_alarm("i", "a", 1))
    assert "secret" not in str(info.value)
    await store.close()


@pytest.mark.parametrize("prefix", ["", "with{brace", "with}brace"])
def test_invalid_prefix(prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisAlarmStore("redis://127.0.0.1:6379/0", prefix=prefix)
