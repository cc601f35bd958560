"""SimKV: an ordered in-memory key-value store with FoundationDB's transaction semantics.

The FoundationDB alarm store runs its transaction code unchanged against SimKV in
tests and in the simulator. SimKV models the parts of FoundationDB that this code
depends on:

- multi-version reads: a transaction reads the database as of its read version,
  taken at its first read, and reads its own uncommitted writes;
- serialisable commits: a commit fails with ``not_committed`` (1020) when a key
  or range it read without ``snapshot`` was written by a transaction that committed
  after its read version;
- ``transaction_too_old`` (1007) once a transaction is more than 5 seconds old by
  the store's clock;
- ``commit_unknown_result`` (1021) injected at random or on request, after which
  the commit may or may not have been applied;
- an outage, during which reads and commits fail with ``transaction_timed_out``
  (1031), as they do on a real cluster with a transaction timeout set;
- FoundationDB's size limits: 10,000-byte keys, 100,000-byte values and
  10,000,000-byte transactions, counted like ``get_approximate_size``: keys,
  values and conflict ranges;
- ``on_error``, which resets the transaction for the retryable errors 1007, 1020
  and 1021 and re-raises every other error, like ``fdb.Transaction.on_error``.
  Unlike FoundationDB it does not sleep before the retry.

Everything is deterministic: time comes only from the ``clock`` callable and
randomness only from the ``random.Random`` passed in.
"""

from __future__ import annotations

import bisect
import heapq
import random
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# FoundationDB error codes, with FoundationDB's names.
TRANSACTION_TOO_OLD = 1007
TRANSACTION_TIMED_OUT = 1031
NOT_COMMITTED = 1020
COMMIT_UNKNOWN_RESULT = 1021
USED_DURING_COMMIT = 2017
KEY_OUTSIDE_LEGAL_RANGE = 2004
INVERTED_RANGE = 2005
TRANSACTION_TOO_LARGE = 2101
KEY_TOO_LARGE = 2102
VALUE_TOO_LARGE = 2103

#: Codes :meth:`SimTransaction.on_error` retries, as FoundationDB's ``on_error`` does.
RETRYABLE_CODES = frozenset({TRANSACTION_TOO_OLD, NOT_COMMITTED, COMMIT_UNKNOWN_RESULT})

_DESCRIPTIONS = {
    TRANSACTION_TOO_OLD: "Transaction is too old to perform reads or be committed",
    TRANSACTION_TIMED_OUT: "Operation aborted because the transaction timed out",
    NOT_COMMITTED: "Transaction not committed due to conflict with another transaction",
    COMMIT_UNKNOWN_RESULT: "Transaction may or may not have committed",
    USED_DURING_COMMIT: "Operation issued while a commit was outstanding",
    KEY_OUTSIDE_LEGAL_RANGE: "Key outside legal range",
    INVERTED_RANGE: "Range begin key larger than end key",
    TRANSACTION_TOO_LARGE: "Transaction exceeds byte limit",
    KEY_TOO_LARGE: "Key length exceeds limit",
    VALUE_TOO_LARGE: "Value length exceeds limit",
}

#: FoundationDB's limits, in bytes and seconds.
MAX_KEY_BYTES = 10_000
MAX_VALUE_BYTES = 100_000
MAX_TRANSACTION_BYTES = 10_000_000
MAX_TRANSACTION_SECONDS = 5.0

_SYSTEM_PREFIX = b"\xff"

Range = tuple[bytes, bytes]
#: ``(begin, end, value)``: a set when ``end == begin + b"\\x00"``, a clear when value is None.
Mutation = tuple[bytes, bytes, bytes | None]


class SimKVError(Exception):
    """A FoundationDB error raised by SimKV; ``code`` is FoundationDB's error code.

    Attributes:
        code: the FoundationDB error code, such as 1020 for ``not_committed``.
        description: FoundationDB's description of the code.
    """

    def __init__(self, code: int) -> None:
        self.code = code
        self.description = _DESCRIPTIONS.get(code, "Unknown error")
        super().__init__(f"{self.description} ({code})")


class ManualClock:
    """A clock that moves only when advanced, the default clock of :class:`SimKV`.

    Args:
        start: the initial time in seconds.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """Return the current time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"a ManualClock only moves forward, got {seconds!r} seconds")
        self.now += seconds


@dataclass(slots=True)
class SimKVStats:
    """Counters of what happened to commits, for tests and simulation reports."""

    commits: int = 0
    conflicts: int = 0
    unknown_results: int = 0
    too_old: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class _Commit:
    version: int
    write_ranges: tuple[Range, ...]


def _key_after(key: bytes) -> bytes:
    return key + b"\x00"


class SimKV:
    """An ordered in-memory key-value store with FoundationDB transaction semantics.

    Args:
        clock: returns the current time in seconds; transactions older than 5 seconds
            by this clock fail with ``transaction_too_old``. The simulator passes its
            true simulated time. Defaults to a :class:`ManualClock` at 0, available
            as :attr:`clock`.
        rng: the source of injected faults; required when a fault probability is above 0.
        conflict_probability: chance that a commit which would succeed fails with
            ``not_committed`` (1020) instead, applying nothing.
        unknown_result_probability: chance that a commit which would succeed raises
            ``commit_unknown_result`` (1021).
        unknown_applied_probability: chance that such a commit was applied anyway.

    Raises:
        ValueError: a probability is outside ``[0, 1]``, or faults are requested without ``rng``.
    """

    #: The exception types :meth:`SimTransaction.on_error` understands.
    error_types: tuple[type[BaseException], ...] = (SimKVError,)

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        *,
        rng: random.Random | None = None,
        conflict_probability: float = 0.0,
        unknown_result_probability: float = 0.0,
        unknown_applied_probability: float = 0.5,
    ) -> None:
        for name, value in (
            ("conflict_probability", conflict_probability),
            ("unknown_result_probability", unknown_result_probability),
            ("unknown_applied_probability", unknown_applied_probability),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if rng is None and (conflict_probability > 0 or unknown_result_probability > 0):
            raise ValueError(
                "SimKV fault injection needs a seeded source: pass rng=random.Random(seed)"
            )
        self.clock: Callable[[], float] = clock if clock is not None else ManualClock()
        self.stats = SimKVStats()
        self._rng = rng
        self._conflict_probability = conflict_probability
        self._unknown_probability = unknown_result_probability
        self._unknown_applied_probability = unknown_applied_probability
        self._version = 0
        self._keys: list[bytes] = []
        self._history: dict[bytes, list[tuple[int, bytes | None]]] = {}
        self._commits: deque[_Commit] = deque()
        self._injected: deque[tuple[int, bool]] = deque()
        self._live: weakref.WeakSet[SimTransaction] = weakref.WeakSet()
        self._closed = False
        self.available = True

    @property
    def version(self) -> int:
        """The version of the latest commit; 0 before the first."""
        return self._version

    def create_transaction(self) -> SimTransaction:
        """Return a new transaction; its read version is taken at its first read.

        Raises:
            RuntimeError: the store was closed.
        """
        if self._closed:
            raise RuntimeError("SimKV is closed; create a new SimKV")
        return SimTransaction(self)

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` at once on the calling task; SimKV never blocks, so no thread is used."""
        return work()

    def close(self) -> None:
        """Reject new transactions. The data stays readable through :meth:`items`."""
        self._closed = True

    def set_available(self, available: bool) -> None:
        """Start (``False``) or end (``True``) an outage.

        During an outage every read and commit raises ``transaction_timed_out``
        (1031), which ``on_error`` does not retry.
        """
        self.available = available

    def inject_commit_error(self, code: int, *, applied: bool = False) -> None:
        """Make the next commit that would succeed raise ``code`` instead.

        Injected errors queue up and are used one per commit, before the random
        faults. ``applied=True`` applies the commit before raising, which only
        makes sense for ``commit_unknown_result``.
        """
        self._injected.append((code, applied))

    def items(self, begin: bytes = b"", end: bytes = _SYSTEM_PREFIX) -> list[tuple[bytes, bytes]]:
        """Return the committed key-value pairs in ``[begin, end)``, ordered by key."""
        return list(self._range_at(self._version, begin, end))

    # The methods below serve SimTransaction.

    def _value_at(self, key: bytes, version: int) -> bytes | None:
        for entry_version, value in reversed(self._history.get(key, ())):
            if entry_version <= version:
                return value
        return None

    def _range_at(
        self, version: int, begin: bytes, end: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        low = bisect.bisect_left(self._keys, begin)
        high = bisect.bisect_left(self._keys, end)
        for index in range(high - 1, low - 1, -1) if reverse else range(low, high):
            key = self._keys[index]
            value = self._value_at(key, version)
            if value is not None:
                yield key, value

    def _commit(
        self,
        read_version: int | None,
        read_ranges: list[Range],
        write_ranges: list[Range],
        mutations: list[Mutation],
    ) -> None:
        if read_version is not None and self._conflicts(read_version, read_ranges):
            self.stats.conflicts += 1
            raise SimKVError(NOT_COMMITTED)
        code, applied = self._draw_fault()
        if code == NOT_COMMITTED:
            self.stats.conflicts += 1
        elif code == COMMIT_UNKNOWN_RESULT:
            self.stats.unknown_results += 1
        if code is None or applied:
            self._apply(write_ranges, mutations)
        if code is not None:
            raise SimKVError(code)

    def _draw_fault(self) -> tuple[int | None, bool]:
        if self._injected:
            return self._injected.popleft()
        if self._rng is None:
            return None, False
        if self._rng.random() < self._conflict_probability:
            return NOT_COMMITTED, False
        if self._rng.random() < self._unknown_probability:
            return COMMIT_UNKNOWN_RESULT, self._rng.random() < self._unknown_applied_probability
        return None, False

    def _conflicts(self, read_version: int, read_ranges: list[Range]) -> bool:
        for commit in reversed(self._commits):
            if commit.version <= read_version:
                return False
            for read_begin, read_end in read_ranges:
                for write_begin, write_end in commit.write_ranges:
                    if read_begin < write_end and write_begin < read_end:
                        return True
        return False

    def _apply(self, write_ranges: list[Range], mutations: list[Mutation]) -> None:
        self._version += 1
        version = self._version
        for begin, end, value in mutations:
            if end == _key_after(begin):
                self._write(begin, version, value)
                continue
            for key, _ in list(self._range_at(version, begin, end)):
                self._write(key, version, None)
        self._commits.append(_Commit(version, tuple(write_ranges)))
        self.stats.commits += 1
        self._collect_garbage()

    def _write(self, key: bytes, version: int, value: bytes | None) -> None:
        history = self._history.get(key)
        if history is None:
            if value is not None:
                bisect.insort(self._keys, key)
                self._history[key] = [(version, value)]
        elif history[-1][0] == version:
            history[-1] = (version, value)
        else:
            history.append((version, value))

    def _collect_garbage(self) -> None:
        # Versions at or below every live transaction's read version are never read
        # or checked for conflicts again. Histories are trimmed every 256 commits.
        now = self.clock()
        live = [
            tr.read_version
            for tr in self._live
            if tr.read_version is not None and not tr.is_too_old(now)
        ]
        oldest = min(live, default=self._version)
        while self._commits and self._commits[0].version <= oldest:
            self._commits.popleft()
        if self._version % 256:
            return
        for key in list(self._keys):
            history = self._history[key]
            visible = [entry for entry in history if entry[0] <= oldest][-1:]
            kept = visible + [entry for entry in history if entry[0] > oldest]
            if len(kept) == 1 and kept[0][1] is None:
                del self._history[key]
                del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                self._history[key] = kept


class SimTransaction:
    """One SimKV transaction, with the methods of ``fdb.Transaction`` the stores use.

    Reads return values directly instead of futures. ``snapshot`` offers the same
    reads without read conflicts, like ``fdb.Transaction.snapshot``.
    """

    def __init__(self, kv: SimKV) -> None:
        self._kv = kv
        self.snapshot = _SnapshotReads(self)
        self._clear_state()

    def _clear_state(self) -> None:
        self.read_version: int | None = None
        self._started_at = 0.0
        self._writes: dict[bytes, bytes | None] = {}
        self._cleared: list[Range] = []
        self._mutations: list[Mutation] = []
        self._read_ranges: list[Range] = []
        self._write_ranges: list[Range] = []
        self._size = 0
        self._finished = False

    def is_too_old(self, now: float) -> bool:
        """Return whether the transaction's read version is more than 5 seconds old at ``now``."""
        return self.read_version is not None and now - self._started_at > MAX_TRANSACTION_SECONDS

    def get_read_version(self) -> int:
        """Return the read version, taking it now if no read has happened yet."""
        self._check_usable()
        return self._ensure_read_version()

    def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        """Return the value of ``key`` as of the read version, or None if it is absent."""
        self._check_usable()
        self._check_key(key)
        read_version = self._ensure_read_version()
        if not snapshot:
            self._add_read_range(key, _key_after(key))
        if key in self._writes:
            return self._writes[key]
        if self._is_cleared(key):
            return None
        return self._kv._value_at(key, read_version)

    def get_range(
        self,
        begin: bytes,
        end: bytes,
        limit: int = 0,
        reverse: bool = False,
        *,
        snapshot: bool = False,
    ) -> list[tuple[bytes, bytes]]:
        """Return the pairs with keys in ``[begin, end)``, at most ``limit`` (0: no limit)."""
        self._check_usable()
        if begin > end:
            raise SimKVError(INVERTED_RANGE)
        read_version = self._ensure_read_version()
        result: list[tuple[bytes, bytes]] = []
        for pair in self._merged_range(read_version, begin, end, reverse):
            result.append(pair)
            if limit and len(result) >= limit:
                break
        if not snapshot:
            if limit and len(result) >= limit:
                last = result[-1][0]
                begin, end = (last, end) if reverse else (begin, _key_after(last))
            self._add_read_range(begin, end)
        return result

    def set(self, key: bytes, value: bytes) -> None:
        """Write ``value`` to ``key`` when the transaction commits."""
        self._check_usable()
        self._check_key(key)
        if len(value) > MAX_VALUE_BYTES:
            raise SimKVError(VALUE_TOO_LARGE)
        self._writes[key] = value
        self._record_mutation(key, _key_after(key), value, len(key) + len(value))

    def clear(self, key: bytes) -> None:
        """Remove ``key`` when the transaction commits."""
        self._check_usable()
        self._check_key(key)
        self._writes[key] = None
        self._record_mutation(key, _key_after(key), None, len(key))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        """Remove every key in ``[begin, end)`` when the transaction commits."""
        self._check_usable()
        if begin > end:
            raise SimKVError(INVERTED_RANGE)
        for key in [k for k in self._writes if begin <= k < end]:
            del self._writes[key]
        self._cleared.append((begin, end))
        self._record_mutation(begin, end, None, len(begin) + len(end))

    def commit(self) -> None:
        """Commit the writes atomically.

        Raises:
            SimKVError: 1020 on a conflict, 1007 when too old, 1021 when the result
                is unknown (the writes may or may not have been applied), 2101 when
                the transaction exceeds 10,000,000 bytes.
        """
        self._check_usable()
        self._check_available()
        self._finished = True
        self._kv._live.discard(self)
        self._check_age()
        if not self._mutations:
            return
        if self._size > MAX_TRANSACTION_BYTES:
            raise SimKVError(TRANSACTION_TOO_LARGE)
        self._kv._commit(self.read_version, self._read_ranges, self._write_ranges, self._mutations)

    def on_error(self, error: BaseException) -> None:
        """Reset the transaction for a retry after a retryable error, or re-raise ``error``."""
        if isinstance(error, SimKVError) and error.code in RETRYABLE_CODES:
            self._kv.stats.retries += 1
            self.reset()
            return
        raise error

    def reset(self) -> None:
        """Discard reads and writes; the next read takes a new read version."""
        self._kv._live.discard(self)
        self._clear_state()

    def _check_usable(self) -> None:
        if self._finished:
            raise SimKVError(USED_DURING_COMMIT)

    def _check_available(self) -> None:
        if not self._kv.available:
            raise SimKVError(TRANSACTION_TIMED_OUT)

    def _check_age(self) -> None:
        if self.is_too_old(self._kv.clock()):
            self._kv.stats.too_old += 1
            raise SimKVError(TRANSACTION_TOO_OLD)

    @staticmethod
    def _check_key(key: bytes) -> None:
        if len(key) > MAX_KEY_BYTES:
            raise SimKVError(KEY_TOO_LARGE)
        if key.startswith(_SYSTEM_PREFIX):
            raise SimKVError(KEY_OUTSIDE_LEGAL_RANGE)

    def _ensure_read_version(self) -> int:
        # Every read passes here, so this is where reads check the outage and the
        # 5-second limit.
        self._check_available()
        if self.read_version is None:
            self.read_version = self._kv.version
            self._started_at = self._kv.clock()
            self._kv._live.add(self)
        self._check_age()
        return self.read_version

    def _add_read_range(self, begin: bytes, end: bytes) -> None:
        self._read_ranges.append((begin, end))
        self._size += len(begin) + len(end)

    def _record_mutation(self, begin: bytes, end: bytes, value: bytes | None, size: int) -> None:
        self._mutations.append((begin, end, value))
        self._write_ranges.append((begin, end))
        self._size += size + len(begin) + len(end)

    def _is_cleared(self, key: bytes) -> bool:
        return any(begin <= key < end for begin, end in self._cleared)

    def _merged_range(
        self, read_version: int, begin: bytes, end: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        # Committed pairs as of the read version, overlaid with this transaction's
        # own writes and range clears, merged lazily in key order.
        committed = (
            (key, value)
            for key, value in self._kv._range_at(read_version, begin, end, reverse)
            if key not in self._writes and not self._is_cleared(key)
        )
        own_keys = sorted((key for key in self._writes if begin <= key < end), reverse=reverse)
        own = ((key, self._writes[key]) for key in own_keys)
        for key, value in heapq.merge(committed, own, key=lambda pair: pair[0], reverse=reverse):
            if value is not None:
                yield key, value


class _SnapshotReads:
    """Reads of a transaction that add no read conflicts."""

    def __init__(self, transaction: SimTransaction) -> None:
        self._transaction = transaction

    def get(self, key: bytes) -> bytes | None:
        """Return the value of ``key`` without a read conflict."""
        return self._transaction.get(key, snapshot=True)

    def get_range(
        self, begin: bytes, end: bytes, limit: int = 0, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """Return the pairs in ``[begin, end)`` without a read conflict."""
        return self._transaction.get_range(begin, end, limit, reverse, snapshot=True)
