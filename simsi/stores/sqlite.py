"""The embedded alarm store: one SQLite file in WAL mode, the default for single hosts."""

from __future__ import annotations

import functools
import os
import sqlite3
import weakref
from collections.abc import Callable
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
from simsi.stores.sqlite_batch import BatchLimits, SQLiteWorker

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
    run one after another, in the order they were made. Several processes may
    share a file: SQLite locks it, and a writer waits up to ``busy_timeout``
    seconds for another.

    Writes (``set_alarm``, ``mark_alarm_done``, ``set_alarms``) use group commit:
    the writes queued when the worker becomes free run in one transaction, each
    inside its own savepoint, and each call returns only after that transaction
    committed. A write that fails raises in its own call and changes nothing;
    the other writes of the transaction are not affected. Reads run between
    these transactions.

    The file is opened, and its schema created, on the first call.

    Args:
        path: the database file, or ``":memory:"`` for a private in-memory database
            that is lost on close.
        synchronous: SQLite's ``synchronous`` setting: ``"FULL"`` (durable across
            power loss), ``"EXTRA"`` or ``"NORMAL"`` (durable across a process crash
            only; WAL mode may lose the last commits on power loss).
        busy_timeout: seconds a write waits for another process's lock before the
            call raises :class:`~simsi.core.errors.StoreUnavailableError`.
        max_batch_ops: maximum rows one group commit writes. A ``set_alarms`` call
            with more alarms runs alone in its own transaction.
        max_batch_bytes: maximum estimated bytes (ids plus meta JSON) one group
            commit writes; a larger single call runs alone.
        max_batch_wait: seconds the worker waits for more writes after the first
            write of a batch, from 0 to 1. The default 0 adds no delay and groups
            only the writes already waiting.

    Raises:
        ConfigError: an option is invalid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        max_batch_ops: int = 1000,
        max_batch_bytes: int = 4 * 1024 * 1024,
        max_batch_wait: float = 0.0,
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
        limits = BatchLimits(max_batch_ops, max_batch_bytes, max_batch_wait)
        self._path = os.fspath(path)
        self._synchronous = mode
        self._busy_timeout = float(busy_timeout)
        self._worker = SQLiteWorker(
            functools.partial(_open_connection, self._path, mode, self._busy_timeout),
            functools.partial(_translate, self._path, self._busy_timeout),
            limits,
        )
        # A store dropped without close() ends its thread after the queued jobs ran.
        weakref.finalize(self, self._worker.stop_soon)
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
            rows = await self._run(_fetch, _PAGE_FIRST, (shard, limit))
        else:
            rows = await self._run(_fetch, _PAGE_AFTER, (shard, *after, limit))
        return [self._decode(shard, row) for row in rows]

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        check_shard(shard)
        check_id("internal_id", internal_id)
        rows = await self._run(_fetch, _OF_INSTANCE, (shard, internal_id))
        return [self._decode(shard, row) for row in rows]

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        With ``if_revision``, write only if the stored alarm with the same
        ``(internal_id, alarm_id)`` exists and has that revision.
        """
        meta = check_alarm(shard, alarm)
        size = len(meta) + len(alarm.instance_id) + len(alarm.internal_id) + len(alarm.alarm_id)
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
            return await self._write(_changes_one_row, (_UPSERT, params), rows=1, nbytes=size)
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
        return await self._write(
            _changes_one_row, (_UPDATE_IF_REVISION, params), rows=1, nbytes=size
        )

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard`` atomically.

        Alarms are written in list order, so a later alarm with the same ids wins.
        Every alarm is validated before any is written, and a failure rolls the
        whole call back (its savepoint), leaving other calls of the same group
        commit written.
        """
        check_shard(shard)
        rows = []
        size = 0
        for alarm in alarms:
            meta = check_alarm(shard, alarm)
            size += len(meta) + len(alarm.instance_id) + len(alarm.internal_id)
            size += len(alarm.alarm_id)
            row = (
                shard,
                alarm.internal_id,
                alarm.alarm_id,
                alarm.instance_id,
                alarm.fires_at_us,
                meta,
                alarm.attempt,
                alarm.revision,
            )
            rows.append(row)
        self._lifecycle.check_open()
        if rows:
            await self._write(_execute_many, (_UPSERT, rows), rows=len(rows), nbytes=size)

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
        size = len(internal_id) + len(alarm_id)
        if if_revision is None:
            args: tuple[Any, ...] = (_DELETE, (shard, internal_id, alarm_id))
        else:
            check_revision("if_revision", if_revision)
            args = (_DELETE_IF_REVISION, (shard, internal_id, alarm_id, if_revision))
        return await self._write(_changes_one_row, args, rows=1, nbytes=size)

    async def close(self) -> None:
        """Commit the writes already made, close the database and stop the worker thread.

        Calls made before ``close()`` still complete; calls made after it raise
        :class:`~simsi.core.errors.LifecycleError`. Calling it again does nothing.
        """
        if not self._lifecycle.close():
            return
        await self._worker.stop()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` alone on the worker thread, outside any transaction."""
        self._lifecycle.check_open()
        result: T = await self._worker.submit(fn, args, write=False)
        return result

    async def _write(
        self, fn: Callable[..., T], args: tuple[Any, ...], rows: int, nbytes: int
    ) -> T:
        """Run ``fn(connection, *args)`` in the next group commit; return after it committed."""
        self._lifecycle.check_open()
        result: T = await self._worker.submit(fn, args, write=True, rows=rows, nbytes=nbytes)
        return result

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


# -- run on the worker thread -------------------------------------------------------------


def _fetch(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return conn.execute(sql, params).fetchall()


def _changes_one_row(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> bool:
    return conn.execute(sql, params).rowcount == 1


def _execute_many(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(sql, rows)


def _open_connection(path: str, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` in WAL mode and create or check its schema."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=True)
    try:
        _prepare(conn, path, synchronous)
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: str, synchronous: str) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"SQLite database {path!r} has schema version {version}, newer than the "
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


def _translate(path: str, busy_timeout: float, exc: sqlite3.DatabaseError) -> StoreError:
    """Return the simsi error for a SQLite error of the database at ``path``."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return StoreUnavailableError(
                f"SQLite database {path!r} stayed locked by another connection for "
                f"more than busy_timeout={busy_timeout}s ({text}); retry later"
            )
        return StoreUnavailableError(
            f"SQLite database {path!r} failed: {text}; check that the file and its "
            "directory exist and are writable, with free disk space"
        )
    if "not a database" in text or "malformed" in text:
        return CorruptStoreDataError(
            f"SQLite file {path!r} is damaged or not a database ({text}); "
            "restore it from a backup or point the store at another file"
        )
    return StoreError(f"SQLite database {path!r} failed: {text}")
