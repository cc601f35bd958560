"""A real FoundationDB cluster as a :class:`~simsi.stores.foundationdb.KVDatabase`.

This module needs the ``foundationdb`` Python bindings (a simsi dependency) and, at
run time, the FoundationDB client library ``libfdb_c`` from the FoundationDB
client package. The bindings load that library only when the cluster is opened,
so importing simsi works without it.

simsi selects FoundationDB API version :data:`API_VERSION` (710, the API of
FoundationDB 7.1), which clients of version 7.1 and later support. The API
version is selected once per process, on the first open.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import fdb

from simsi.core.errors import ConfigError

T = TypeVar("T")

#: The FoundationDB API version simsi selects.
API_VERSION = 710


class FDBClusterDatabase:
    """Opens a FoundationDB cluster on first use and runs transactions in worker threads.

    Args:
        cluster_file: the cluster file path; None uses FoundationDB's default
            (``FDB_CLUSTER_FILE`` or ``/etc/foundationdb/fdb.cluster``).
        api_version: the FoundationDB API version to select.
        timeout: seconds after which a transaction fails with ``transaction_timed_out``
            (1031), which the store reports as
            :class:`~simsi.core.errors.StoreUnavailableError`; FoundationDB itself
            would wait for an unreachable cluster forever.

    Raises:
        ConfigError: ``timeout`` is not positive.
    """

    def __init__(
        self,
        cluster_file: str | None = None,
        *,
        api_version: int = API_VERSION,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(
                f"FoundationDB timeout must be a positive number of seconds, got {timeout!r}"
            )
        self._cluster_file = cluster_file
        self._api_version = api_version
        self._timeout_ms = max(1, round(timeout * 1000))
        self._database: Any = None
        self._lock = threading.Lock()

    @property
    def error_types(self) -> tuple[type[BaseException], ...]:
        """``(fdb.FDBError,)`` once the cluster is open; empty before."""
        error = getattr(fdb, "FDBError", None)
        return (error,) if isinstance(error, type) else ()

    def create_transaction(self) -> _ClusterTransaction:
        """Open the cluster if needed and return a new transaction with the timeout set.

        Raises:
            ConfigError: the client library is missing or another API version is in use.
        """
        transaction = self._open().create_transaction()
        transaction.options.set_timeout(self._timeout_ms)
        return _ClusterTransaction(transaction)

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a worker thread, because ``fdb`` futures block while waiting."""
        return await asyncio.to_thread(work)

    def close(self) -> None:
        """Drop the database handle; the ``fdb`` network thread stays up for the process."""
        with self._lock:
            self._database = None

    def _open(self) -> Any:
        with self._lock:
            if self._database is not None:
                return self._database
            try:
                fdb.api_version(self._api_version)
            except RuntimeError as exc:
                raise ConfigError(
                    f"cannot select FoundationDB API version {self._api_version}: {exc}; "
                    "every FoundationDB user in one process must select the same version"
                ) from exc
            except Exception as exc:
                # The bindings raise a bare Exception when libfdb_c cannot be loaded.
                raise ConfigError(
                    f"cannot load the FoundationDB client library ({exc}); install the "
                    "FoundationDB client package (libfdb_c) matching your cluster's version"
                ) from exc
            self._database = fdb.open(self._cluster_file)
            return self._database


class _ClusterTransaction:
    """Adapts ``fdb.Transaction`` futures to the blocking :class:`KVTransaction` calls."""

    def __init__(self, transaction: Any) -> None:
        self._tr = transaction

    def get(self, key: bytes) -> bytes | None:
        value = self._tr.get(key).wait().value
        return None if value is None else bytes(value)

    def get_range(self, begin: bytes, end: bytes, limit: int = 0) -> list[tuple[bytes, bytes]]:
        return [(bytes(kv.key), bytes(kv.value)) for kv in self._tr.get_range(begin, end, limit)]

    def set(self, key: bytes, value: bytes) -> None:
        self._tr.set(key, value)

    def clear(self, key: bytes) -> None:
        self._tr.clear(key)

    def commit(self) -> None:
        self._tr.commit().wait()

    def on_error(self, error: BaseException) -> None:
        # fdb's on_error future sleeps the backoff, then resets the transaction or
        # raises the error again when it is not retryable.
        self._tr.on_error(error).wait()
