"""Opening the host's alarm store from its ``--store`` URL."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from simsi.core.alarms import AlarmStore
from simsi.core.errors import ConfigError


async def open_host_store(url: str) -> AlarmStore:
    """Open the alarm store named by ``url`` with ``simsi.stores.open_store``.

    Until ``simsi.stores`` provides ``open_store``, ``sqlite:///PATH`` and
    ``memory://`` are opened here directly.

    Raises:
        ConfigError: the URL is invalid or names a store this build cannot open.
    """
    stores: Any = importlib.import_module("simsi.stores")
    open_store = getattr(stores, "open_store", None)
    if open_store is None:
        return _open_builtin(url)
    try:
        store = open_store(url)
        if inspect.isawaitable(store):
            store = await store
    except ConfigError as exc:
        raise ConfigError(f"--store / SIMSI_STORE: {exc}") from None
    return store


def _open_builtin(url: str) -> AlarmStore:
    # TODO: remove once simsi.stores.open_store exists; it covers every store kind.
    from simsi.stores import MemoryAlarmStore, SQLiteAlarmStore

    if url == "memory://" or url == "memory:":
        return MemoryAlarmStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ConfigError(
                f"--store / SIMSI_STORE {url!r} has no file path; write sqlite:///alarms.db "
                "(relative) or sqlite:////var/lib/simsi/alarms.db (absolute)"
            )
        return SQLiteAlarmStore(path)
    raise ConfigError(
        f"--store / SIMSI_STORE {url!r} is not supported by this build; use "
        "sqlite:///PATH or memory://"
    )
