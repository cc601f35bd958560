"""Helpers shared by the host tests: in-process servers and test interfaces."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from aiohttp.test_utils import TestClient, TestServer

from simsi.core.alarms import AlarmStore
from simsi.core.connection import Connection, IncomingConnection
from simsi.core.interface import InstanceContext, StableInterface
from simsi.core.manager import InterfaceFactory
from simsi.core.placement import Placement
from simsi.host.config import HostConfig
from simsi.host.server import HostServer
from simsi.stores import MemoryAlarmStore

REPO = Path(__file__).resolve().parents[2]
APP_FILE = REPO / "runtime" / "app.py"
EXAMPLE_APP = f"{APP_FILE}:make_interface"


def ids_owned_by(host: str, hosts: str, shards: int, count: int, prefix: str = "c") -> list[str]:
    """Return ``count`` instance ids ``{prefix}-N`` that ``host`` owns."""
    placement = Placement(hosts, shards)
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"{prefix}-{n}"
        if placement.owner(candidate) == host:
            found.append(candidate)
        n += 1
    return found


def make_config(**overrides: Any) -> HostConfig:
    """Return a one-host configuration for in-process tests, with ``overrides`` applied."""
    base = HostConfig(
        app=EXAMPLE_APP,
        host_id="host-0",
        hosts="host-0",
        shards=64,
        store_url="memory://",
        listen_host="127.0.0.1",
        listen_port=0,
        request_timeout=5.0,
        drain_seconds=5.0,
    )
    return dataclasses.replace(base, **overrides)


@contextlib.asynccontextmanager
async def running(
    config: HostConfig | None = None,
    *,
    factory: InterfaceFactory | None = None,
    store: AlarmStore | None = None,
    wait_ready: bool = True,
) -> AsyncIterator[tuple[HostServer, TestClient[Any, Any]]]:
    """Run a host in this process under aiohttp's test server and yield it with a client."""
    server = HostServer(config or make_config(), factory=factory, store=store or MemoryAlarmStore())
    async with TestClient(TestServer(server.app)) as client:
        if wait_ready:
            await server.manager.wait_ready()
        yield server, client


class Probe(StableInterface):
    """A test interface that records connection events in :attr:`events`.

    Requests: ``{"op": "echo", "value": x}`` returns ``x``; ``{"op": "set"}`` returns
    a Python set (not JSON); ``{"op": "sleep", "seconds": s}`` sleeps.
    Connections: meta ``mode=raise`` makes ``on_connect`` raise; messages with
    ``{"op": "boom"}`` make the message handler raise; others are echoed back.
    """

    events: ClassVar[list[tuple[Any, ...]]] = []

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        op = payload.get("op")
        if op == "echo":
            return payload.get("value")
        if op == "set":
            return {1, 2}
        if op == "sleep":
            await ctx.sleep(payload["seconds"])
            return "slept"
        raise ValueError(f"unknown op {op!r}")

    async def on_connect(self, ctx: InstanceContext, connection: IncomingConnection) -> None:
        if connection.meta.get("mode") == "raise":
            raise RuntimeError("on_connect exploded")
        end = connection.accept()
        Probe.events.append(("connected", self.instance_id, dict(connection.meta)))

        def closed(code: int, reason: str) -> None:
            Probe.events.append(("closed", self.instance_id, code, reason))

        end.on_close(closed)

    async def on_message(self, ctx: InstanceContext, connection: Connection, message: Any) -> None:
        if isinstance(message, dict) and message.get("op") == "boom":
            raise RuntimeError("message handler exploded")
        Probe.events.append(("message", self.instance_id, message))
        await connection.send({"echo": message})
