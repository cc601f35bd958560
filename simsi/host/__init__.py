"""The production host: asyncio runtime, configuration and the aiohttp server.

``HostServer`` and ``LoggingMetricsObserver`` are imported on first use, so
importing ``simsi.host`` (or its runtime) does not load aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simsi.host.config import HostConfig, load_config
from simsi.host.runtime import AsyncioRuntime

if TYPE_CHECKING:
    from simsi.host.observer import LoggingMetricsObserver
    from simsi.host.server import HostServer

__all__ = ["AsyncioRuntime", "HostConfig", "HostServer", "LoggingMetricsObserver", "load_config"]


def __getattr__(name: str) -> Any:
    if name == "HostServer":
        from simsi.host.server import HostServer

        return HostServer
    if name == "LoggingMetricsObserver":
        from simsi.host.observer import LoggingMetricsObserver

        return LoggingMetricsObserver
    raise AttributeError(f"module 'simsi.host' has no attribute {name!r}")
