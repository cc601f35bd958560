"""In-process tests of the WebSocket route, under aiohttp's test server."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.host.helpers import Probe, ids_owned_by, make_config, running


@pytest.fixture(autouse=True)
def clear_probe_events() -> None:
    Probe.events.clear()


async def wait_for_event(kind: str, timeout: float = 2.0) -> tuple[Any, ...]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for event in Probe.events:
            if event[0] == kind:
                return event
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind!r} event within {timeout} s; events: {Probe.events}")


async def test_accepted_connection_exchanges_messages() -> None:
    async with running() as (_server, client):
        ws = await client.ws_connect("/v1/instances/c1/connect")
        hello = await ws.receive_json(timeout=2)
        await ws.send_json({"op": "add", "n": 4})
        reply = await ws.receive_json(timeout=2)
        await ws.send_json({"op": "add"})
        second = await ws.receive_json(timeout=2)
        assert hello == {"hello": "c1", "count": 0}
        assert reply == {"count": 4}
        assert second == {"count": 5}
        await ws.close()
        count = await client.post("/v1/instances/c1/request", json={"op": "get"})
        assert (await count.json())["result"]["count"] == 5


async def test_client_close_reaches_instance() -> None:
    async with running(factory=Probe) as (_server, client):
        ws = await client.ws_connect("/v1/instances/p1/connect?room=blue&user=ann")
        await ws.send_json({"x": 1})
        echo = await ws.receive_json(timeout=2)
        await ws.close(code=4000, message=b"client done")
        closed = await wait_for_event("closed")
        connected = await wait_for_event("connected")
        assert echo == {"echo": {"x": 1}}
        assert connected == ("connected", "p1", {"room": "blue", "user": "ann"})
        assert closed == ("closed", "p1", 4000, "client done")


async def test_instance_close_reaches_client() -> None:
    async with running() as (_server, client):
        ws = await client.ws_connect("/v1/instances/c1/connect")
        await ws.receive_json(timeout=2)
        await ws.send_json({"op": "close"})
        message = await ws.receive(timeout=2)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1000
        assert message.extra == "closed by the instance"


async def test_rejected_connection_closes_4403() -> None:
    async with running() as (_server, client):
        ws = await client.ws_connect("/v1/instances/c1/connect?mode=reject")
        message = await ws.receive(timeout=2)
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4403
        assert message.extra == "rejected on request (mode=reject)"


async def test_unhandled_connection_closes_4406() -> None:
    async with running() as (_server, client):
        ws = await client.ws_connect("/v1/instances/c1/connect?mode=ignore")
        message = await ws.receive(timeout=2)
        assert ws.close_code == 4406
        assert "neither accepted nor rejected" in message.extra


async def test_on_connect_error_closes_4500() -> None:
    async with running(factory=Probe) as (_server, client):
        ws = await client.ws_connect("/v1/instances/p1/connect?mode=raise")
        message = await ws.receive(timeout=2)
        assert ws.close_code == 4500
        assert "RuntimeError: on_connect exploded" in message.extra


async def test_message_handler_error_closes_1011() -> None:
    async with running(factory=Probe) as (_server, client):
        ws = await client.ws_connect("/v1/instances/p1/connect")
        await ws.send_json({"op": "boom"})
        message = await ws.receive(timeout=2)
        closed = await wait_for_event("closed")
        assert ws.close_code == 1011
        assert "message handler exploded" in message.extra
        assert closed[2] == 1011


async def test_malformed_message_closes_4400() -> None:
    async with running(factory=Probe) as (_server, client):
        ws = await client.ws_connect("/v1/instances/p1/connect")
        await ws.send_str("{not json")
        message = await ws.receive(timeout=2)
        closed = await wait_for_event("closed")
        assert ws.close_code == 4400
        assert "not valid JSON" in message.extra
        assert closed[2] == 4400


async def test_binary_message_closes_4400() -> None:
    async with running(factory=Probe) as (_server, client):
        ws = await client.ws_connect("/v1/instances/p1/connect")
        await ws.send_bytes(b"\x00\x01")
        message = await ws.receive(timeout=2)
        assert ws.close_code == 4400
        assert "binary" in message.extra


async def test_not_owner_without_forwarding_closes_4421() -> None:
    hosts = "host-{0..2}"
    config = make_config(hosts=hosts, shards=30, forward=False)
    [foreign] = ids_owned_by("host-1", hosts, 30, 1)
    async with running(config) as (_server, client):
        ws = await client.ws_connect(f"/v1/instances/{foreign}/connect")
        message = await ws.receive(timeout=2)
        assert ws.close_code == 4421
        assert message.extra == "owner=host-1"


async def test_plain_get_needs_upgrade() -> None:
    async with running() as (_server, client):
        response = await client.get("/v1/instances/c1/connect")
        body = await response.json()
        assert response.status == 426
        assert body["error"]["type"] == "UpgradeRequired"


async def test_token_checked_before_upgrade() -> None:
    async with running(make_config(auth_token="tok")) as (_server, client):
        with pytest.raises(aiohttp.WSServerHandshakeError) as rejected:
            await client.ws_connect("/v1/instances/c1/connect")
        ws = await client.ws_connect(
            "/v1/instances/c1/connect", headers={"Authorization": "Bearer tok"}
        )
        hello = await ws.receive_json(timeout=2)
        assert rejected.value.status == 401
        assert hello["hello"] == "c1"
        await ws.close()


async def test_drain_closes_connections_1001() -> None:
    async with running(factory=Probe) as (server, client):
        ws = await client.ws_connect("/v1/instances/p1/connect")
        await wait_for_event("connected")
        assert server.metrics.live_connections._value.get() == 1
        drained = await server.drain()
        message = await ws.receive(timeout=2)
        closed = await wait_for_event("closed")
        assert drained is True
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 1001
        assert message.extra == "host shutting down"
        assert closed[2] == 1001
        assert server.metrics.live_connections._value.get() == 0


async def test_nan_and_deep_messages_close_4400() -> None:
    for text, fragment in (
        ("NaN", "NaN is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ):
        async with running(factory=Probe) as (_server, client):
            ws = await client.ws_connect("/v1/instances/p1/connect")
            await ws.send_str(text)
            message = await ws.receive(timeout=5)
            assert ws.close_code == 4400
            assert fragment in message.extra
            health = await client.get("/healthz")
            assert health.status == 200
