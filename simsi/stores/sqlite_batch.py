"""The SQLite store's worker thread: reads one at a time, writes in group commits.

With ``synchronous=FULL`` every commit waits for an fsync, so one commit per
write caps a store at one write per fsync: a few hundred to a few thousand
writes per second on common disks. The worker instead runs every write that is
already queued when it becomes free in one transaction (a group commit) and
acknowledges each write only after that transaction committed, so durability
is the same as with one commit per write.

Each write runs inside its own ``SAVEPOINT``, so a write that fails is rolled
back alone: its caller gets the error, and the other writes of the batch commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simsi.core.errors import ConfigError, LifecycleError

#: Job function: called on the worker thread with the open connection and the job's args.
JobFunction = Callable[..., Any]

logger = logging.getLogger("simsi.stores.sqlite")

_thread_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Bounds of one group commit.

    A batch takes queued writes in order until the next one would pass a limit.
    A single write above a limit (a large ``set_alarms`` call) runs alone.

    Attributes:
        max_batch_ops: maximum rows written per transaction.
        max_batch_bytes: maximum estimated bytes (ids and meta JSON) written per
            transaction.
        max_batch_wait: seconds the worker waits for more writes once a batch has
            one; 0 batches only the writes already queued and adds no delay.
    """

    max_batch_ops: int = 1000
    max_batch_bytes: int = 4 * 1024 * 1024
    max_batch_wait: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_batch_ops", "max_batch_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        wait = self.max_batch_wait
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 1:
            raise ConfigError(
                f"max_batch_wait must be a number of seconds from 0 to 1, got {wait!r}"
            )


@dataclass(slots=True)
class _Job:
    fn: JobFunction
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    write: bool
    rows: int = 1
    nbytes: int = 0
    stop: bool = False


@dataclass(slots=True)
class _Outcome:
    job: _Job
    result: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class WorkerStats:
    """Counters of the worker's group commits, read by benchmarks and tests."""

    commits: int = 0
    committed_writes: int = 0
    largest_batch: int = 0
    retried_batches: int = 0


class SQLiteWorker:
    """One thread that owns a SQLite connection and runs the jobs of one store.

    Jobs run in the order they were submitted. A read runs alone, in autocommit
    mode. A write is grouped with the writes queued right behind it (up to
    :class:`BatchLimits`) into one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction,
    and its future resolves only after that ``COMMIT`` returned.

    The thread starts on the first job. It is a daemon thread, so an unclosed
    store does not keep the interpreter from exiting. A write still running
    then is lost, but no write had been acknowledged before it committed.

    Args:
        connect: opens and prepares the connection; called on the worker thread.
        translate: turns a ``sqlite3.DatabaseError`` into the error the caller gets.
        limits: the group-commit bounds.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        translate: Callable[[sqlite3.DatabaseError], Exception],
        limits: BatchLimits,
    ) -> None:
        self._connect = connect
        self._translate = translate
        self._limits = limits
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        # Set on the worker thread only, when the finalizer's None arrives inside a batch.
        self._stop_requested = False
        self.stats = WorkerStats()

    def submit(
        self, fn: JobFunction, args: tuple[Any, ...], *, write: bool, rows: int = 1, nbytes: int = 0
    ) -> asyncio.Future[Any]:
        """Queue ``fn(connection, *args)``; return a future of its result.

        Raises:
            LifecycleError: the worker was stopped.
        """
        loop = asyncio.get_running_loop()
        job = _Job(fn, args, loop.create_future(), loop, write, rows, nbytes)
        self._put(job)
        return job.future

    async def stop(self) -> None:
        """Run every job queued before this call, close the connection and end the thread."""
        if self._thread is None:
            self._stopped = True
            return
        loop = asyncio.get_running_loop()
        job = _Job(_no_job, (), loop.create_future(), loop, write=False, stop=True)
        self._put(job)
        await job.future

    def stop_soon(self) -> None:
        """Ask the thread to end after the queued jobs, without waiting; for finalizers."""
        if self._thread is not None and not self._stopped:
            self._queue.put(None)

    def _put(self, job: _Job) -> None:
        if self._stopped:
            raise LifecycleError("the SQLite store's worker thread has stopped; open a new store")
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    name = f"simsi-sqlite-{next(_thread_numbers)}"
                    self._thread = threading.Thread(target=self._main, name=name, daemon=True)
                    self._thread.start()
        if job.stop:
            self._stopped = True
        self._queue.put(job)

    # -- the worker thread ------------------------------------------------------------------

    def _main(self) -> None:
        carried: _Job | None = None
        while not self._stop_requested:
            job = carried if carried is not None else self._queue.get()
            carried = None
            if job is None or job.stop:
                self._close_connection(job)
                break
            if job.write:
                batch, carried = self._collect(job)
                self._deliver(self._run_batch(batch))
            else:
                self._deliver([self._run_alone(job)])
        else:
            # _collect took the finalizer's None while it gathered a batch.
            self._close_connection(None)
        self._reject_leftovers()

    def _collect(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        """Take the writes queued behind ``first``; return them and the job that ended the batch."""
        limits = self._limits
        batch = [first]
        max_ops, max_bytes, max_wait = (
            limits.max_batch_ops,
            limits.max_batch_bytes,
            limits.max_batch_wait,
        )
        rows, nbytes = first.rows, first.nbytes
        deadline = time.monotonic() + max_wait if max_wait > 0 else None
        while rows < max_ops and nbytes < max_bytes:
            try:
                if deadline is None:
                    job = self._queue.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                self._stop_requested = True
                return batch, None
            if not job.write:
                return batch, job
            if rows + job.rows > max_ops or nbytes + job.nbytes > max_bytes:
                return batch, job
            batch.append(job)
            rows += job.rows
            nbytes += job.nbytes
        return batch, None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _run_alone(self, job: _Job) -> _Outcome:
        try:
            return _Outcome(job, result=job.fn(self._connection(), *job.args))
        except Exception as exc:
            return _Outcome(job, error=self._wrap(exc))

    def _run_batch(self, batch: list[_Job]) -> list[_Outcome]:
        try:
            conn = self._connection()
        except Exception as exc:
            return [_Outcome(job, error=self._wrap(exc)) for job in batch]
        settled: list[_Outcome] = []
        # A cancelled caller no longer waits, so its write is skipped, as an executor
        # skips a cancelled job that has not started.
        pending = [job for job in batch if not job.future.cancelled()]
        # Every retry drops at least the write that failed, so this loop ends.
        while pending:
            pending = self._attempt(conn, pending, settled)
            if pending:
                self.stats.retried_batches += 1
        return settled

    def _attempt(
        self, conn: sqlite3.Connection, jobs: list[_Job], settled: list[_Outcome]
    ) -> list[_Job]:
        """Run ``jobs`` in one transaction; settle them and return the jobs to run again.

        Jobs are returned only when a failing job made SQLite roll the whole
        transaction back, as a trigger's ``RAISE(ROLLBACK)`` and some I/O, disk-full
        and out-of-memory errors do. The jobs before it lost their changes, so they
        run again in a new transaction, without the failed job.
        """
        done: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            settled.extend(_Outcome(job, error=self._wrap(exc)) for job in jobs)
            return []
        try:
            for index, job in enumerate(jobs):
                conn.execute("SAVEPOINT simsi_write")
                try:
                    result = job.fn(conn, *job.args)
                except Exception as exc:
                    settled.append(_Outcome(job, error=self._wrap(exc)))
                    if not conn.in_transaction:
                        return [outcome.job for outcome in done] + jobs[index + 1 :]
                    conn.execute("ROLLBACK TO simsi_write")
                    conn.execute("RELEASE simsi_write")
                    continue
                conn.execute("RELEASE simsi_write")
                done.append(_Outcome(job, result=result))
            conn.execute("COMMIT")
        except Exception as exc:
            # BEGIN, SAVEPOINT bookkeeping or COMMIT failed: nothing of this
            # transaction is durable, so every job not settled yet gets the error.
            self._rollback(conn)
            failed = {id(outcome.job) for outcome in settled}
            unsettled = [job for job in jobs if id(job) not in failed]
            settled.extend(_Outcome(job, error=self._wrap(exc)) for job in unsettled)
            return []
        settled.extend(done)
        self.stats.commits += 1
        self.stats.committed_writes += len(done)
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        return []

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                # The callers get the error that caused the rollback. A broken
                # connection also fails the next job, which reports it.
                logger.warning("SQLite ROLLBACK after a failed group commit failed: %s", exc)

    def _wrap(self, exc: Exception) -> BaseException:
        # Each caller gets its own translated error, so tracebacks of callers that
        # raise at once do not mix. Errors other than DatabaseError pass unchanged.
        if isinstance(exc, sqlite3.DatabaseError):
            translated = self._translate(exc)
            translated.__cause__ = exc
            return translated
        return exc

    def _close_connection(self, job: _Job | None) -> None:
        outcome = None if job is None else _Outcome(job)
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error as exc:
                if outcome is None:
                    logger.warning("closing an unused SQLite store's connection failed: %s", exc)
                else:
                    outcome.error = self._wrap(exc)
            self._conn = None
        self._stopped = True
        if outcome is not None:
            self._deliver([outcome])

    def _reject_leftovers(self) -> None:
        # Jobs queued from another thread while the stop job was queued.
        leftovers: list[_Outcome] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                error = LifecycleError("the SQLite store was closed; open a new store")
                leftovers.append(_Outcome(job, error=error))
        self._deliver(leftovers)

    @staticmethod
    def _deliver(outcomes: list[_Outcome]) -> None:
        """Resolve futures on their event loops: one thread-safe callback per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome.job.loop, []).append(outcome)
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError, and no caller waits for these results.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, items)


def _resolve(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        future = outcome.job.future
        if future.done():
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.result)


def _no_job(conn: sqlite3.Connection) -> None:
    """Stand-in function of the stop job, which the worker handles itself."""
