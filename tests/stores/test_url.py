"""open_store: every accepted URL form and the errors for invalid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from simsi.core.errors import ConfigError
from simsi.stores import (
    FoundationDBAlarmStore,
    MemoryAlarmStore,
    PostgresAlarmStore,
    RedisAlarmStore,
    SQLiteAlarmStore,
    open_store,
)
from simsi.testing.conformance import make_alarm


async def test_memory_url() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryAlarmStore)
    await store.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///alarms.db", "alarms.db"),
        ("sqlite:///data/alarms.db", "data/alarms.db"),
        ("sqlite:////var/lib/simsi/alarms.db", "/var/lib/simsi/alarms.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLITE:///x.db?synchronous=normal&busy_timeout=1.5", "x.db"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteAlarmStore)
    assert store.path == path


async def test_sqlite_url_opens_file(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/alarms.db")
    await store.set_alarm(0, make_alarm("i", "a", 1))
    await store.close()
    assert (tmp_path / "alarms.db").exists()


def test_postgres_schema_option() -> None:
    store = open_store("postgresql://app:pw@127.0.0.1:5432/db?schema=tenant_a&sslmode=disable")
    assert isinstance(store, PostgresAlarmStore)
    assert store.schema == "tenant_a"
    assert store._conninfo == "postgresql://app:pw@127.0.0.1:5432/db?sslmode=disable"
    assert isinstance(open_store("postgres://127.0.0.1/db"), PostgresAlarmStore)


def test_redis_prefix_option() -> None:
    store = open_store("redis://127.0.0.1:6379/2?prefix=tenant-a")
    assert isinstance(store, RedisAlarmStore)
    assert store.prefix == "tenant-a"
    assert isinstance(open_store("rediss://127.0.0.1:6380/0"), RedisAlarmStore)


@pytest.mark.parametrize(
    ("url", "cluster_file"),
    [
        ("fdb://", None),
        ("fdb:///etc/foundationdb/fdb.cluster?prefix=app", "/etc/foundationdb/fdb.cluster"),
        ("fdb://fdb.cluster", "fdb.cluster"),
    ],
)
def test_fdb_cluster_file(url: str, cluster_file: str | None) -> None:
    store = open_store(url)
    assert isinstance(store, FoundationDBAlarmStore)
    assert store._db._cluster_file == cluster_file  # type: ignore[attr-defined]


def test_fdb_prefix_option() -> None:
    store = open_store("fdb://?prefix=tenant&timeout=3")
    assert isinstance(store, FoundationDBAlarmStore)
    assert store.keyspace.prefix == "tenant"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "no scheme"),
        ("alarms.db", "no scheme"),
        ("mysql://127.0.0.1/db", "unknown scheme 'mysql'"),
        ("memory://somewhere", "takes no host or path"),
        ("memory://?x=1", "unknown option 'x'"),
        ("sqlite://alarms.db", "three slashes"),
        ("sqlite:///", "three slashes"),
        ("sqlite:///a.db?journal=wal", "unknown option 'journal'"),
        ("sqlite:///a.db?busy_timeout=soon", "busy_timeout must be a number"),
        ("sqlite:///a.db?synchronous=OFF", "synchronous must be one of"),
        ("postgresql://127.0.0.1/db?schema=bad-name", "schema name"),
        ("redis://127.0.0.1?prefix={x}", "prefix"),
        ("redis://127.0.0.1?require_fsync=maybe", "require_fsync must be true or false"),
        ("redis://127.0.0.1?colour=blue", "unknown option 'colour'"),
        ("fdb://?prefix=", "prefix"),
        ("fdb://?bogus=1", "unknown option 'bogus'"),
    ],
)
def test_invalid_urls(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert problem in message
    assert f"invalid store URL {url!r}" in message
    assert "sqlite:///relative/path.db" in message
    assert "fdb://[cluster-file]" in message


def test_password_not_in_error() -> None:
    with pytest.raises(ConfigError) as info:
        open_store("redis://:hunter2@127.0.0.1?colour=blue")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_non_string_url() -> None:
    with pytest.raises(ConfigError, match="expected a string"):
        open_store(None)  # type: ignore[arg-type]
