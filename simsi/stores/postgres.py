"""The PostgreSQL alarm store, on psycopg 3 with an asynchronous connection pool."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from simsi.core.alarms import Alarm, AlarmKey, DoneReason
from simsi.core.errors import ConfigError, StoreError, StoreUnavailableError
from simsi.stores._common import (
    Lifecycle,
    check_alarm,
    check_done_args,
    check_id,
    check_page_args,
    check_revision,
    check_shard,
    decode_alarm,
    describe_row,
)
from simsi.stores.postgres_schema import (
    LATEST_VERSION,
    MIGRATIONS,
    check_schema_name,
    compose,
    statements,
)


class PostgresAlarmStore:
    """An :class:`~simsi.core.alarms.AlarmStore` in a PostgreSQL schema.

    The pool connects, and the schema is created or migrated, on :meth:`open` or on
    the first call. Each operation is one parameterised statement in autocommit
    mode, and conditional writes compare the revision in the same statement.
    Connection failures raise :class:`~simsi.core.errors.StoreUnavailableError`.

    Args:
        conninfo: a libpq connection string or ``postgresql://`` URL.
        schema: the PostgreSQL schema holding the ``alarms`` and ``simsi_migrations``
            tables; created if missing.
        min_size: connections the pool keeps open.
        max_size: the maximum number of pool connections.
        timeout: seconds to wait for a connection before a call raises
            :class:`~simsi.core.errors.StoreUnavailableError`.

    Raises:
        ConfigError: the schema name or a pool size is invalid.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "simsi",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
    ) -> None:
        self._schema = check_schema_name(schema)
        if not isinstance(min_size, int) or not 0 <= min_size <= max_size or max_size < 1:
            raise ConfigError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, "
                f"got min_size={min_size!r}, max_size={max_size!r}"
            )
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._conninfo = conninfo
        self._where = f"PostgreSQL {describe_conninfo(conninfo)} schema {schema!r}"
        self._timeout = float(timeout)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool | None = None
        self._sql = statements(self._schema)
        self._open_lock = asyncio.Lock()
        self._lifecycle = Lifecycle(f"PostgresAlarmStore(schema={schema!r})")

    @property
    def schema(self) -> str:
        """The PostgreSQL schema of the store's tables."""
        return self._schema

    async def open(self) -> None:
        """Connect the pool and create or migrate the schema; later calls do nothing.

        Raises:
            StoreUnavailableError: the server cannot be reached.
            StoreError: the schema is newer than this simsi, or a migration failed.
        """
        self._lifecycle.check_open()
        async with self._open_lock:
            if self._pool is not None:
                return
            pool = AsyncConnectionPool(
                self._conninfo,
                min_size=self._min_size,
                max_size=self._max_size,
                open=False,
                timeout=self._timeout,
                kwargs={"autocommit": True},
                check=AsyncConnectionPool.check_connection,
                name=f"simsi-{self._schema}",
            )
            try:
                await pool.open(wait=True, timeout=self._timeout)
                await self._migrate(pool)
            except (psycopg.Error, PoolTimeout) as exc:
                await pool.close()
                raise self._translate(exc) from exc
            except BaseException:
                await pool.close()
                raise
            if self._lifecycle.closed:
                # close() ran while the pool was opening.
                await pool.close()
                self._lifecycle.check_open()
            self._pool = pool

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``.

        Raises:
            CorruptStoreDataError: a row of the page cannot be decoded.
        """
        check_page_args(shard, after, limit)
        if after is None:
            rows = await self._fetch(self._sql["page_first"], (shard, limit))
        else:
            rows = await self._fetch(self._sql["page_after"], (shard, *after, limit))
        return [self._decode(shard, row) for row in rows]

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        check_shard(shard)
        check_id("internal_id", internal_id)
        rows = await self._fetch(self._sql["of_instance"], (shard, internal_id))
        return [self._decode(shard, row) for row in rows]

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        With ``if_revision``, write only if the stored alarm with the same
        ``(internal_id, alarm_id)`` exists and has that revision.
        """
        meta = check_alarm(shard, alarm)
        if if_revision is None:
            params: tuple[Any, ...] = (
                shard,
                alarm.internal_id,
                alarm.alarm_id,
                alarm.instance_id,
                alarm.fires_at_us,
                meta,
                alarm.attempt,
                alarm.revision,
            )
            return await self._execute(self._sql["upsert"], params) == 1
        check_revision("if_revision", if_revision)
        params = (
            alarm.instance_id,
            alarm.fires_at_us,
            meta,
            alarm.attempt,
            alarm.revision,
            shard,
            alarm.internal_id,
            alarm.alarm_id,
            if_revision,
        )
        return await self._execute(self._sql["update_if_revision"], params) == 1

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard`` in one transaction.

        The upserts are sent with ``executemany``, which psycopg pipelines, so the
        batch costs about one round trip. Alarms are written in list order, so a
        later alarm with the same ids wins. Every alarm is validated before any is
        written, and a failure rolls the whole batch back.
        """
        check_shard(shard)
        rows = [
            (
                shard,
                alarm.internal_id,
                alarm.alarm_id,
                alarm.instance_id,
                alarm.fires_at_us,
                check_alarm(shard, alarm),
                alarm.attempt,
                alarm.revision,
            )
            for alarm in alarms
        ]
        self._lifecycle.check_open()
        if not rows:
            return
        pool = await self._ready()
        try:
            async with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(self._sql["upsert"], rows)
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._translate(exc) from exc

    async def mark_alarm_done(
        self,
        shard: int,
        internal_id: str,
        alarm_id: str,
        reason: DoneReason,
        *,
        if_revision: int | None = None,
    ) -> bool:
        """Remove an alarm; return whether one was removed.

        Unknown ids remove nothing and are not an error. With ``if_revision``,
        remove only an alarm that still has that revision.
        """
        check_done_args(shard, internal_id, alarm_id, reason)
        if if_revision is None:
            return await self._execute(self._sql["delete"], (shard, internal_id, alarm_id)) == 1
        check_revision("if_revision", if_revision)
        params = (shard, internal_id, alarm_id, if_revision)
        return await self._execute(self._sql["delete_if_revision"], params) == 1

    async def close(self) -> None:
        """Close the pool's connections; calling it again does nothing."""
        if self._lifecycle.close() and self._pool is not None:
            await self._pool.close()

    async def _migrate(self, pool: AsyncConnectionPool) -> None:
        schema = sql.Identifier(self._schema)
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"simsi:{self._schema}",)
            )
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.simsi_migrations ("
                    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(schema)
            )
            cursor = await conn.execute(
                sql.SQL("SELECT coalesce(max(version), 0) FROM {}.simsi_migrations").format(schema)
            )
            row = await cursor.fetchone()
            current = row[0] if row else 0
            if current > LATEST_VERSION:
                raise StoreError(
                    f"{self._where} has schema version {current}, newer than version "
                    f"{LATEST_VERSION} that this simsi writes; upgrade simsi"
                )
            for version, migration in MIGRATIONS:
                if version <= current:
                    continue
                for statement in migration:
                    await conn.execute(compose(statement, self._schema))
                await conn.execute(
                    sql.SQL("INSERT INTO {}.simsi_migrations (version) VALUES (%s)").format(schema),
                    (version,),
                )

    async def _fetch(self, query: sql.Composed, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        pool = await self._ready()
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(query, params)
                return await cursor.fetchall()
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._translate(exc) from exc

    async def _execute(self, query: sql.Composed, params: tuple[Any, ...]) -> int:
        pool = await self._ready()
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(query, params)
                return cursor.rowcount
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._translate(exc) from exc

    async def _ready(self) -> AsyncConnectionPool:
        self._lifecycle.check_open()
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        return self._pool

    def _translate(self, exc: BaseException) -> StoreError:
        if isinstance(exc, PoolTimeout | psycopg.OperationalError):
            return StoreUnavailableError(
                f"{self._where} is unreachable: {exc}; check that the server is running "
                "and accepts connections, then retry"
            )
        return StoreError(f"{self._where} failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _decode(shard: int, row: tuple[Any, ...]) -> Alarm:
        instance_id, internal_id, alarm_id, fires_at_us, meta, attempt, revision = row
        return decode_alarm(
            shard,
            describe_row(internal_id, alarm_id),
            instance_id=instance_id,
            internal_id=internal_id,
            alarm_id=alarm_id,
            fires_at_us=fires_at_us,
            meta=meta,
            attempt=attempt,
            revision=revision,
        )


def describe_conninfo(conninfo: str) -> str:
    """Return ``user@host:port/dbname`` of a connection string, leaving out the password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(invalid connection string)"
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    user = params.get("user", "")
    dbname = params.get("dbname", "")
    return f"{user}@{host}:{port}/{dbname}" if user else f"{host}:{port}/{dbname}"
