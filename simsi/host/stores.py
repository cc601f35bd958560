"""Opening the host's alarm store from its ``--store`` URL."""

from __future__ import annotations

from simsi.core.alarms import AlarmStore
from simsi.core.errors import ConfigError
from simsi.stores import open_store


def open_host_store(url: str) -> AlarmStore:
    """Return the alarm store named by ``url`` (see ``simsi.stores.open_store``).

    Raises:
        ConfigError: the URL is invalid; the message names the flag and variable.
    """
    try:
        return open_store(url)
    except ConfigError as exc:
        raise ConfigError(f"--store / SIMSI_STORE: {exc}") from None
