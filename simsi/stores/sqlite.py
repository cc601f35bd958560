"""The embedded alarm store: one SQLite file in WAL mode, the default for single hosts."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from simsi.core.alarms import Alarm, AlarmKey, DoneReason
from simsi.core.errors import ConfigError, CorruptStoreDataError, StoreError, StoreUnavailableError
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

T = TypeVar("T")

#: Schema version written to ``PRAGMA user_version``.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS simsi_alarms (
    shard INTEGER NOT NULL,
    internal_id TEXT NOT NULL,
    alarm_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    fires_at_us INTEGER NOT NULL,
    meta TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shard, internal_id, alarm_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS simsi_alarms_order
    ON simsi_alarms (shard, fires_at_us, internal_id, alarm_id);
"""

_COLUMNS = "instance_id, internal_id, alarm_id, fires_at_us, meta, attempt, revision"

_PAGE_FIRST = (
    f"SELECT {_COLUMNS} FROM simsi_alarms WHERE shard = ? "
    "ORDER BY fires_at_us, internal_id, alarm_id LIMIT ?"
)
_PAGE_AFTER = (
    f"SELECT {_COLUMNS} FROM simsi_alarms "
    "WHERE shard = ? AND (fires_at_us, internal_id, alarm_id) > (?, ?, ?) "
    "ORDER BY fires_at_us, internal_id, alarm_id LIMIT ?"
)
_OF_INSTANCE = (
    f"SELECT {_COLUMNS} FROM simsi_alarms WHERE shard = ? AND internal_id = ? "
    "ORDER BY fires_at_us, internal_id, alarm_id"
)
_UPSERT = """
INSERT INTO simsi_alarms
    (shard, internal_id, alarm_id, instance_id, fires_at_us, meta, attempt, revision)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (shard, internal_id, alarm_id) DO UPDATE SET
    instance_id = excluded.instance_id,
    fires_at_us = excluded.fires_at_us,
    meta = excluded.meta,
    attempt = excluded.attempt,
    revision = excluded.revision
"""
_UPDATE_IF_REVISION = """
UPDATE simsi_alarms SET instance_id = ?, fires_at_us = ?, meta = ?, attempt = ?, revision = ?
WHERE shard = ? AND internal_id = ? AND alarm_id = ? AND revision = ?
"""
_DELETE = "DELETE FROM simsi_alarms WHERE shard = ? AND internal_id = ? AND alarm_id = ?"
_DELETE_IF_REVISION = _DELETE + " AND revision = ?"

_SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")


class SQLiteAlarmStore:
    """An :class:`~simsi.core.alarms.AlarmStore` in one SQLite file.

    The database runs in WAL mode with ``synchronous=FULL`` by default, so an
    alarm whose ``set_alarm`` returned survives a crash of the process and of
    the machine. Every call runs on one dedicated worker thread that owns the
    connection, so the event loop never blocks on disk I/O and calls of one store
    are serialised. Several processes may share a file: SQLite locks it, and a
    writer waits up to ``busy_timeout`` seconds for another.

    The file is opened, and its schema created, on the first call.

    Args:
        path: the database file, or ``":memory:"`` for a private in-memory database
            that is lost on close.
        synchronous: SQLite's ``synchronous`` setting: ``"FULL"`` (durable across
            power loss), ``"EXTRA"`` or ``"NORMAL"`` (durable across a process crash
            only; WAL mode may lose the last commits on power loss).
        busy_timeout: seconds a write waits for another process's lock before the
            call raises :class:`~simsi.core.errors.StoreUnavailableError`.

    Raises:
        ConfigError: ``synchronous`` or ``busy_timeout`` is invalid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
    ) -> None:
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in _SYNCHRONOUS_MODES:
            raise ConfigError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS_MODES)}, got {synchronous!r}"
            )
        if not isinstance(busy_timeout, int | float) or not busy_timeout >= 0:
            raise ConfigError(
                f"busy_timeout must be a number of seconds >= 0, got {busy_timeout!r}"
            )
        self._path = os.fspath(path)
        self._synchronous = mode
        self._busy_timeout = float(busy_timeout)
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsi-sqlite")
        self._lifecycle = Lifecycle(f"SQLiteAlarmStore({self._path!r})")

    @property
    def path(self) -> str:
        """The database file path."""
        return self._path

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``.

        Raises:
            CorruptStoreDataError: a row of the page cannot be decoded.
        """
        check_page_args(shard, after, limit)
        if after is None:
            rows = await self._run(self._query, _PAGE_FIRST, (shard, limit))
        else:
            rows = await self._run(self._query, _PAGE_AFTER, (shard, *after, limit))
        return [self._decode(shard, row) for row in rows]

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        check_shard(shard)
        check_id("internal_id", internal_id)
        rows = await self._run(self._query, _OF_INSTANCE, (shard, internal_id))
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
            return await self._run(self._execute, _UPSERT, params) == 1
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
        return await self._run(self._execute, _UPDATE_IF_REVISION, params) == 1

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard`` in one transaction.

        Alarms are written in list order, so a later alarm with the same ids wins.
        Every alarm is validated before any is written, and a failure rolls the
        whole batch back.
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
        if rows:
            await self._run(self._execute_many, _UPSERT, rows)

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
            return await self._run(self._execute, _DELETE, (shard, internal_id, alarm_id)) == 1
        check_revision("if_revision", if_revision)
        params = (shard, internal_id, alarm_id, if_revision)
        return await self._run(self._execute, _DELETE_IF_REVISION, params) == 1

    async def close(self) -> None:
        """Close the database and stop the worker thread; calling it again does nothing."""
        if not self._lifecycle.close():
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_connection)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self._lifecycle.check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: sqlite3.DatabaseError) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError):
            if "locked" in text or "busy" in text:
                return StoreUnavailableError(
                    f"SQLite database {self._path!r} stayed locked by another connection for "
                    f"more than busy_timeout={self._busy_timeout}s ({text}); retry later"
                )
            return StoreUnavailableError(
                f"SQLite database {self._path!r} failed: {text}; check that the file and its "
                "directory exist and are writable, with free disk space"
            )
        if "not a database" in text or "malformed" in text:
            return CorruptStoreDataError(
                f"SQLite file {self._path!r} is damaged or not a database ({text}); "
                "restore it from a backup or point the store at another file"
            )
        return StoreError(f"SQLite database {self._path!r} failed: {text}")

    def _connection(self) -> sqlite3.Connection:
        # Runs on the worker thread only, which owns the connection.
        if self._conn is not None:
            return self._conn
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=True
        )
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite database {self._path!r} has schema version {version}, newer than the "
                f"version {SCHEMA_VERSION} this simsi writes; upgrade simsi"
            )
        if version < SCHEMA_VERSION:
            # The tables are created with IF NOT EXISTS under a write lock, so two
            # processes opening a new file at once both succeed.
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
                )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, params).fetchall()

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._connection().execute(sql, params).rowcount

    def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
