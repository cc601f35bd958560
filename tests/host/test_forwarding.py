"""In-process forwarding between two hosts, and failures to reach the owner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from simsi.host.server import HostServer
from simsi.stores import MemoryAlarmStore
from tests.host.cluster import free_port_block
from tests.host.helpers import Probe, ids_owned_by, make_config


@contextlib.asynccontextmanager
async def two_hosts(**overrides: Any) -> AsyncIterator[tuple[str, str, str]]:
    """Run two hosts named after their ports; yield (pattern, first URL, second host id)."""
    base = free_port_block(2)
    pattern = f"{{{base}..{base + 1}}}"
    servers = []
    for port in (base, base + 1):
        config = make_config(
            host_id=str(port),
            hosts=pattern,
            shards=16,
            peer_url="http://127.0.0.1:{host}",
            **overrides,
        )
        server = HostServer(config, factory=Probe, store=MemoryAlarmStore())
        servers.append(TestServer(server.app, port=port))
    async with servers[0], servers[1]:
        yield pattern, str(servers[0].make_url("")).rstrip("/"), str(base + 1)


async def test_request_forwarded_to_owner() -> None:
    async with two_hosts() as (pattern, first, other):
        [instance_id] = ids_owned_by(other, pattern, 16, 1, "fwd")
        async with aiohttp.ClientSession() as session:
            url = f"{first}/v1/instances/{instance_id}/request"
            async with session.post(url, json={"op": "echo", "value": [1, "two"]}) as response:
                body = await response.json()
                served_by = response.headers["X-Simsi-Host"]
        assert response.status == 200
        assert body == {"result": [1, "two"]}
        assert served_by == other


async def test_slow_owner_gives_504() -> None:
    async with two_hosts(forward_timeout=0.3) as (pattern, first, other):
        [instance_id] = ids_owned_by(other, pattern, 16, 1, "slow")
        async with aiohttp.ClientSession() as session:
            url = f"{first}/v1/instances/{instance_id}/request"
            async with session.post(url, json={"op": "sleep", "seconds": 1}) as response:
                body = await response.json()
        assert response.status == 504
        assert body["error"]["type"] == "PeerTimeout"
        assert body["error"]["owner"] == other
        assert "may or may not have run" in body["error"]["message"]


async def test_websocket_proxied_to_owner() -> None:
    async with two_hosts() as (pattern, first, other):
        [instance_id] = ids_owned_by(other, pattern, 16, 1, "wsf")
        async with aiohttp.ClientSession() as session:
            url = f"{first}/v1/instances/{instance_id}/connect?room=red"
            async with session.ws_connect(url) as ws:
                await ws.send_json({"n": 1})
                echo = await ws.receive_json(timeout=5)
                await ws.send_json({"op": "boom"})
                closing = await ws.receive(timeout=5)
        assert echo == {"echo": {"n": 1}}
        assert closing.data == 1011
        assert "message handler exploded" in closing.extra


async def test_websocket_to_unreachable_owner_closes_4502() -> None:
    # Host ids are ports; port 9 (discard) has no listener on loopback.
    config = make_config(host_id="8", hosts="{8..9}", shards=8, peer_url="http://127.0.0.1:{host}")
    [foreign] = ids_owned_by("9", "{8..9}", 8, 1, "down")
    server = HostServer(config, factory=Probe, store=MemoryAlarmStore())
    async with TestServer(server.app) as test_server, aiohttp.ClientSession() as session:
        url = str(test_server.make_url(f"/v1/instances/{foreign}/connect"))
        async with session.ws_connect(url) as ws:
            closing = await ws.receive(timeout=5)
    assert closing.data == 4502
    assert closing.extra == "owner 9 unreachable"
