"""The FoundationDB alarm store, written against a minimal transaction interface.

The store's transaction code uses only :class:`KVTransaction` and :class:`KVDatabase`,
the small part of the ``fdb`` API it needs. Two databases implement them:
:class:`~simsi.stores.fdb_cluster.FDBClusterDatabase` wraps a real cluster opened
with the ``foundationdb`` bindings, and ``simsi.sim.kv.SimKV`` is an in-memory
store with FoundationDB's conflict, retry and ``commit_unknown_result`` behaviour,
so tests and the simulator run the very same code.

Every operation runs in a retry loop like ``fdb.transactional``: errors go to the
transaction's ``on_error``, which resets it for a retry (``not_committed`` 1020,
``commit_unknown_result`` 1021, ``transaction_too_old`` 1007 and the other
retryable codes) or re-raises. Writes read the alarm before changing it, so a
retry after ``commit_unknown_result`` converges on the same final state and
returns the result the first attempt would have returned.

Transactions stay within FoundationDB's limits. A write changes at most three keys
of about 2 kB at most, and one value of about 68 kB at most, far below the 10 MB
transaction limit. A read transaction reads at most ``rows_per_read`` records, so
a long page is split over several transactions that each finish well within
5 seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

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
    corrupt,
    describe_row,
)
from simsi.stores.fdb_keys import AlarmKeyspace

T = TypeVar("T")

logger = logging.getLogger("simsi.stores.foundationdb")

COMMIT_UNKNOWN_RESULT = 1021

#: Maximum number of alarms one transaction of :meth:`FoundationDBAlarmStore.set_alarms` writes.
BULK_MAX_ALARMS = 200
#: Maximum bytes of keys and records one such transaction writes (FoundationDB allows 10 MB).
BULK_MAX_BYTES = 1_000_000


class KVTransaction(Protocol):
    """The part of ``fdb.Transaction`` the store uses, with results instead of futures."""

    def get(self, key: bytes) -> bytes | None:
        """Return the value of ``key``, or None if it is absent."""

    def get_range(self, begin: bytes, end: bytes, limit: int = 0) -> Sequence[tuple[bytes, bytes]]:
        """Return up to ``limit`` (0: all) pairs with keys in ``[begin, end)``, in key order."""

    def set(self, key: bytes, value: bytes) -> None:
        """Write ``value`` to ``key`` at commit."""

    def clear(self, key: bytes) -> None:
        """Remove ``key`` at commit."""

    def commit(self) -> None:
        """Commit the transaction, raising the database's error type on failure."""

    def on_error(self, error: BaseException) -> None:
        """Prepare a retry after a retryable ``error``, or raise it again."""


class KVDatabase(Protocol):
    """A database that creates :class:`KVTransaction` objects."""

    @property
    def error_types(self) -> tuple[type[BaseException], ...]:
        """The exception types its transactions raise, each with an int ``code``."""

    def create_transaction(self) -> KVTransaction:
        """Return a new transaction."""

    async def run(self, work: Callable[[], T]) -> T:
        """Run blocking ``work`` (a whole retry loop) without blocking the event loop."""

    def close(self) -> None:
        """Release the database."""


@dataclass(slots=True)
class _Attempts:
    retries: int = 0
    # An earlier attempt returned True and then hit commit_unknown_result, so its
    # writes may be in the database already.
    maybe_applied: bool = False


class FoundationDBAlarmStore:
    """An :class:`~simsi.core.alarms.AlarmStore` on FoundationDB or on ``SimKV``.

    See :mod:`simsi.stores.fdb_keys` for the key layout. Use :meth:`open_cluster`
    for a real cluster; pass a ``SimKV`` as ``database`` for tests and simulation.

    Args:
        database: the database to run transactions on.
        prefix: the first element of every key (the subspace).
        max_retries: retries of one transaction before the call raises
            :class:`~simsi.core.errors.StoreUnavailableError`.
        rows_per_read: records read per transaction when loading a page.
        close_database: whether :meth:`close` also closes ``database``.

    Raises:
        ConfigError: an option is invalid.
    """

    def __init__(
        self,
        database: KVDatabase,
        *,
        prefix: str = "simsi",
        max_retries: int = 100,
        rows_per_read: int = 256,
        close_database: bool = True,
    ) -> None:
        for name, value in (("max_retries", max_retries), ("rows_per_read", rows_per_read)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self._db = database
        self._keys = AlarmKeyspace(prefix)
        self._max_retries = max_retries
        self._rows_per_read = rows_per_read
        self._close_database = close_database
        self._lifecycle = Lifecycle(f"FoundationDBAlarmStore(prefix={prefix!r})")

    @classmethod
    def open_cluster(
        cls, cluster_file: str | None = None, *, prefix: str = "simsi", timeout: float = 10.0
    ) -> FoundationDBAlarmStore:
        """Return a store on the cluster named by ``cluster_file`` (None: the default file).

        The cluster is opened on the first call, which needs the FoundationDB client
        library (``libfdb_c``) installed. ``timeout`` bounds each transaction in seconds.
        """
        from simsi.stores.fdb_cluster import FDBClusterDatabase

        return cls(FDBClusterDatabase(cluster_file, timeout=timeout), prefix=prefix)

    @property
    def keyspace(self) -> AlarmKeyspace:
        """The key layout, for tools that inspect or clear the subspace."""
        return self._keys

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``.

        A page longer than ``rows_per_read`` is read by several transactions, each
        continuing after the last key of the previous one.
        """
        check_page_args(shard, after, limit)
        begin, end = self._keys.shard_range(shard)
        if after is not None:
            begin = max(begin, self._keys.alarm_key(shard, *after) + b"\x00")
        alarms: list[Alarm] = []
        while len(alarms) < limit:
            count = min(limit - len(alarms), self._rows_per_read)
            rows = await self._transact(self._range_reader(begin, end, count))
            alarms.extend(self._keys.decode_alarm(shard, key, value) for key, value in rows)
            if len(rows) < count:
                break
            begin = rows[-1][0] + b"\x00"
        return alarms

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        check_shard(shard)
        check_id("internal_id", internal_id)
        begin, end = self._keys.instance_range(shard, internal_id)
        alarms: list[Alarm] = []
        while True:
            chunk = await self._transact(self._instance_reader(shard, begin, end))
            alarms.extend(alarm for _, alarm in chunk)
            if len(chunk) < self._rows_per_read:
                break
            begin = chunk[-1][0] + b"\x00"
        alarms.sort(key=lambda alarm: alarm.key)
        return alarms

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        With ``if_revision``, write only if the stored alarm with the same
        ``(internal_id, alarm_id)`` exists and has that revision.
        """
        meta_text = check_alarm(shard, alarm)
        if if_revision is not None:
            check_revision("if_revision", if_revision)
        record = self._keys.encode_record(alarm, meta_text)

        def work(tr: KVTransaction, attempts: _Attempts) -> bool:
            index_key = self._keys.index_key(shard, alarm.internal_id, alarm.alarm_id)
            old = self._read_stored(tr, shard, alarm.internal_id, alarm.alarm_id)
            if if_revision is not None:
                if old is None:
                    return False
                old_fires, old_record, old_revision = old
                if old_revision != if_revision:
                    # A retry whose earlier attempt committed finds its own write.
                    same = old_fires == alarm.fires_at_us and old_record == record
                    return attempts.maybe_applied and same
            if old is not None and old[0] != alarm.fires_at_us:
                tr.clear(self._keys.alarm_key(shard, old[0], alarm.internal_id, alarm.alarm_id))
            alarm_key = self._keys.alarm_key(
                shard, alarm.fires_at_us, alarm.internal_id, alarm.alarm_id
            )
            tr.set(alarm_key, record)
            tr.set(index_key, self._keys.encode_index(alarm.fires_at_us))
            return True

        return await self._transact(work)

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard``.

        Writes in transactions of at most :data:`BULK_MAX_ALARMS` alarms and
        :data:`BULK_MAX_BYTES` bytes of keys and records, a tenth of FoundationDB's
        10 MB limit. Each transaction makes two reads per alarm, which should finish
        well within the 5-second limit on a healthy cluster (an estimate; not
        measured on a real cluster). Each transaction is atomic, but a failed one
        leaves the ones before it written. Alarms are written in list
        order, so a later alarm with the same ids wins. Every alarm is validated
        before any is written.
        """
        check_shard(shard)
        records = [
            (alarm, self._keys.encode_record(alarm, check_alarm(shard, alarm))) for alarm in alarms
        ]
        self._lifecycle.check_open()
        batch: list[tuple[Alarm, bytes]] = []
        size = 0
        for alarm, record in records:
            # Record plus two keys of about the same size as the ids.
            cost = len(record) + 2 * (len(alarm.internal_id) + len(alarm.alarm_id) + 64)
            if batch and (len(batch) >= BULK_MAX_ALARMS or size + cost > BULK_MAX_BYTES):
                await self._transact(self._bulk_writer(shard, batch))
                batch, size = [], 0
            batch.append((alarm, record))
            size += cost
        if batch:
            await self._transact(self._bulk_writer(shard, batch))

    def _bulk_writer(
        self, shard: int, batch: list[tuple[Alarm, bytes]]
    ) -> Callable[[KVTransaction, _Attempts], None]:
        def work(tr: KVTransaction, attempts: _Attempts) -> None:
            # Unconditional writes converge on the same state when a retry follows
            # commit_unknown_result, so the attempts need no special handling.
            for alarm, record in batch:
                old = self._read_stored(tr, shard, alarm.internal_id, alarm.alarm_id)
                if old is not None and old[0] != alarm.fires_at_us:
                    tr.clear(self._keys.alarm_key(shard, old[0], alarm.internal_id, alarm.alarm_id))
                key = self._keys.alarm_key(
                    shard, alarm.fires_at_us, alarm.internal_id, alarm.alarm_id
                )
                tr.set(key, record)
                index_key = self._keys.index_key(shard, alarm.internal_id, alarm.alarm_id)
                tr.set(index_key, self._keys.encode_index(alarm.fires_at_us))

        return work

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
        if if_revision is not None:
            check_revision("if_revision", if_revision)

        def work(tr: KVTransaction, attempts: _Attempts) -> bool:
            old = self._read_stored(tr, shard, internal_id, alarm_id)
            if old is None:
                # A retry whose earlier attempt committed finds the alarm gone.
                return attempts.maybe_applied
            fires_at_us, _, revision = old
            if if_revision is not None and revision != if_revision:
                return False
            tr.clear(self._keys.alarm_key(shard, fires_at_us, internal_id, alarm_id))
            tr.clear(self._keys.index_key(shard, internal_id, alarm_id))
            return True

        return await self._transact(work)

    async def close(self) -> None:
        """Stop accepting calls and close the database if the store owns it."""
        if self._lifecycle.close() and self._close_database:
            self._db.close()

    # Transactions

    async def _transact(self, work: Callable[[KVTransaction, _Attempts], T]) -> T:
        self._lifecycle.check_open()
        return await self._db.run(lambda: self._retry_loop(work))

    def _retry_loop(self, work: Callable[[KVTransaction, _Attempts], T]) -> T:
        tr = self._db.create_transaction()
        # Read after create_transaction: a real cluster defines its error type only
        # once it is open.
        errors = self._db.error_types
        attempts = _Attempts()
        while True:
            would_apply = False
            try:
                result = work(tr, attempts)
                would_apply = result is True
                tr.commit()
                return result
            except errors as exc:
                code = getattr(exc, "code", None)
                if code == COMMIT_UNKNOWN_RESULT and would_apply:
                    attempts.maybe_applied = True
                attempts.retries += 1
                if attempts.retries > self._max_retries:
                    raise StoreUnavailableError(
                        f"FoundationDB transaction failed {attempts.retries} times, last with "
                        f"error {code} ({exc}); check the cluster's health, then retry"
                    ) from exc
                try:
                    tr.on_error(exc)
                except errors as final:
                    raise self._translate(final) from final
                logger.debug(
                    "retrying FoundationDB transaction (retry %d) after error %s: %s",
                    attempts.retries,
                    code,
                    exc,
                )

    def _range_reader(
        self, begin: bytes, end: bytes, count: int
    ) -> Callable[[KVTransaction, _Attempts], list[tuple[bytes, bytes]]]:
        def work(tr: KVTransaction, attempts: _Attempts) -> list[tuple[bytes, bytes]]:
            return list(tr.get_range(begin, end, count))

        return work

    def _instance_reader(
        self, shard: int, begin: bytes, end: bytes
    ) -> Callable[[KVTransaction, _Attempts], list[tuple[bytes, Alarm]]]:
        def work(tr: KVTransaction, attempts: _Attempts) -> list[tuple[bytes, Alarm]]:
            return self._read_instance_chunk(tr, shard, begin, end, self._rows_per_read)

        return work

    @staticmethod
    def _translate(error: BaseException) -> StoreError:
        code = getattr(error, "code", None)
        if isinstance(code, int) and code < 2000:
            return StoreUnavailableError(
                f"FoundationDB transaction failed with error {code} ({error}); "
                "check that the cluster is reachable and healthy, then retry"
            )
        return StoreError(f"FoundationDB rejected the transaction with error {code} ({error})")

    def _read_stored(
        self, tr: KVTransaction, shard: int, internal_id: str, alarm_id: str
    ) -> tuple[int, bytes, int] | None:
        """Return ``(fires_at_us, record bytes, revision)`` of a stored alarm, or None."""
        index_key = self._keys.index_key(shard, internal_id, alarm_id)
        index_value = tr.get(index_key)
        if index_value is None:
            return None
        _, _, fires_at_us = self._keys.decode_index(shard, index_key, index_value)
        alarm_key = self._keys.alarm_key(shard, fires_at_us, internal_id, alarm_id)
        record = tr.get(alarm_key)
        if record is None:
            raise corrupt(
                shard,
                describe_row(internal_id, alarm_id),
                f"the index says fires_at_us={fires_at_us} but that record is missing",
            )
        alarm = self._keys.decode_alarm(shard, alarm_key, record)
        return fires_at_us, record, alarm.revision

    def _read_instance_chunk(
        self, tr: KVTransaction, shard: int, begin: bytes, end: bytes, count: int
    ) -> list[tuple[bytes, Alarm]]:
        chunk: list[tuple[bytes, Alarm]] = []
        for index_key, index_value in tr.get_range(begin, end, count):
            internal_id, alarm_id, fires_at_us = self._keys.decode_index(
                shard, index_key, index_value
            )
            alarm_key = self._keys.alarm_key(shard, fires_at_us, internal_id, alarm_id)
            record = tr.get(alarm_key)
            if record is None:
                raise corrupt(
                    shard,
                    describe_row(internal_id, alarm_id),
                    f"the index says fires_at_us={fires_at_us} but that record is missing",
                )
            chunk.append((index_key, self._keys.decode_alarm(shard, alarm_key, record)))
        return chunk
