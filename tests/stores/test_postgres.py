"""PostgresAlarmStore: conformance, migrations, the page index, corrupt rows, failures."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from simsi.core.alarms import DoneReason
from simsi.core.errors import (
    ConfigError,
    CorruptStoreDataError,
    LifecycleError,
    StoreError,
    StoreUnavailableError,
)
from simsi.stores import PostgresAlarmStore
from simsi.testing.conformance import AlarmStoreConformance, StoreFactory, make_alarm
from tests.stores.bulk_conformance import BulkWriteConformance


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    """Return a fresh schema name and drop that schema after the test."""
    name = f"simsi_test_{secrets.token_hex(6)}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name))
        )


class TestPostgresStore(AlarmStoreConformance, BulkWriteConformance):
    durable = True

    @pytest.fixture
    def store_factory(self, postgres_url: str, schema: str) -> StoreFactory:
        return lambda: PostgresAlarmStore(postgres_url, schema=schema, max_size=4)


def query(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


async def test_open_creates_schema(postgres_url: str, schema: str) -> None:
    store = PostgresAlarmStore(postgres_url, schema=schema)
    await store.open()
    await store.open()
    await store.close()
    versions = query(postgres_url, f"SELECT version FROM {schema}.simsi_migrations")
    assert versions == [(1,)]
    tables = query(
        postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "ORDER BY table_name",
        (schema,),
    )
    assert tables == [("alarms",), ("simsi_migrations",)]


async def test_concurrent_opens_migrate_once(postgres_url: str, schema: str) -> None:
    stores = [PostgresAlarmStore(postgres_url, schema=schema) for _ in range(5)]
    await asyncio.gather(*(store.open() for store in stores))
    await asyncio.gather(*(store.close() for store in stores))
    versions = query(postgres_url, f"SELECT version FROM {schema}.simsi_migrations")
    assert versions == [(1,)]


async def test_newer_schema_rejected(postgres_url: str, schema: str) -> None:
    first = PostgresAlarmStore(postgres_url, schema=schema)
    await first.open()
    await first.close()
    query(postgres_url, f"INSERT INTO {schema}.simsi_migrations (version) VALUES (99)")
    store = PostgresAlarmStore(postgres_url, schema=schema)
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade simsi"):
        await store.get_next_alarms(0)
    await store.close()


async def test_page_query_uses_index(postgres_url: str, schema: str) -> None:
    store = PostgresAlarmStore(postgres_url, schema=schema)
    await store.open()
    await store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            psycopg.sql.SQL("EXPLAIN ").format() + store._sql["page_after"],
            (1, 10, "a", "b", 5),
        ).fetchall()
    text = "\n".join(row[0] for row in plan)
    assert "alarms_order" in text
    assert "Sort" not in text


async def test_ids_sort_by_code_point(postgres_url: str, schema: str) -> None:
    store = PostgresAlarmStore(postgres_url, schema=schema)
    for internal in ["b", "B", "a", "A", "é"]:
        await store.set_alarm(0, make_alarm(internal, "x", 1))
    page = await store.get_next_alarms(0)
    await store.close()
    assert [a.internal_id for a in page] == ["A", "B", "a", "b", "é"]


async def test_corrupt_meta_changes_nothing(postgres_url: str, schema: str) -> None:
    store = PostgresAlarmStore(postgres_url, schema=schema)
    await store.set_alarm(2, make_alarm("i", "bad", 10, meta={"ok": True}))
    query(postgres_url, f"UPDATE {schema}.alarms SET meta = 'not json'")
    with pytest.raises(CorruptStoreDataError, match=r"shard 2: .*'bad'.*not valid JSON"):
        await store.get_next_alarms(2)
    with pytest.raises(CorruptStoreDataError):
        await store.get_alarms(2, "i")
    await store.close()
    assert query(postgres_url, f"SELECT meta FROM {schema}.alarms") == [("not json",)]


async def test_unreachable_server() -> None:
    store = PostgresAlarmStore(
        "postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2", timeout=2
    )
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:1") as info:
        await store.set_alarm(0, make_alarm("i", "a", 1))
    assert "secret" not in str(info.value)
    with pytest.raises(StoreUnavailableError):
        await store.mark_alarm_done(0, "i", "a", DoneReason.SUCCEEDED)
    await store.close()


async def test_closed_store_rejects_calls(postgres_url: str, schema: str) -> None:
    store = PostgresAlarmStore(postgres_url, schema=schema)
    await store.close()
    with pytest.raises(LifecycleError):
        await store.open()


@pytest.mark.parametrize("name", ["", "1abc", "has-dash", "semi;colon", "x" * 64, 'quo"te'])
def test_invalid_schema_name(name: str) -> None:
    with pytest.raises(ConfigError, match="schema name"):
        PostgresAlarmStore("postgresql://127.0.0.1/test", schema=name)


def test_invalid_pool_sizes() -> None:
    with pytest.raises(ConfigError, match="min_size"):
        PostgresAlarmStore("postgresql://127.0.0.1/test", min_size=5, max_size=2)
