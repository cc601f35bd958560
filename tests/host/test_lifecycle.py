"""Real processes: SIGTERM drain, SIGKILL and restart with pending alarms, --no-forward."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.host.cluster import Cluster, http_get
from tests.host.helpers import ids_owned_by


async def post_json(session: aiohttp.ClientSession, url: str, payload: Any) -> tuple[int, Any]:
    async with session.post(url, json=payload) as response:
        return response.status, await response.json()


async def test_sigterm_drains_running_request(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 1, extra_args=("--drain-seconds", "10")).start()
    host = cluster.hosts[0]
    request_url = f"{host.url}/v1/instances/slow/request"
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{host.url}/v1/instances/chat/connect")
            await ws.receive_json(timeout=5)

            slow = asyncio.ensure_future(
                post_json(session, request_url, {"op": "sleep", "seconds": 1.5})
            )
            await asyncio.sleep(0.3)
            host.signal(signal.SIGTERM)
            await asyncio.sleep(0.2)

            ready_status, ready_body = http_get(host.url + "/readyz")
            rejected_status, rejected_body = await post_json(
                session, f"{host.url}/v1/instances/other/request", {"op": "get"}
            )
            closing = await ws.receive(timeout=5)
            status, body = await slow
        exit_code = await asyncio.to_thread(host.wait, 15)
    finally:
        cluster.stop()

    log = host.log()
    assert ready_status == 503
    assert ready_body["ready"] is False
    assert rejected_status == 503
    assert rejected_body["error"]["type"] == "Unavailable"
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data == 1001
    assert status == 200
    assert body["result"]["slept"] == 1.5
    assert exit_code == 0
    assert "received SIGTERM: draining" in log
    assert f"host {host.host_id} stopped" in log
    assert "drain cut short" not in log


async def test_alarms_fire_after_sigkill_and_restart(tmp_path: Path) -> None:
    fired_log = tmp_path / "fired.jsonl"
    cluster = Cluster(tmp_path, 3, env={"SIMSI_EXAMPLE_FIRED_LOG": str(fired_log)}).start()
    entry, victim = cluster.hosts[0], cluster.hosts[1]
    victim_ids = ids_owned_by(victim.host_id, cluster.pattern, cluster.shards, 6, "reminder:v")
    other_ids = ids_owned_by(entry.host_id, cluster.pattern, cluster.shards, 2, "reminder:e")
    expected: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for n, instance_id in enumerate(victim_ids + other_ids):
                # Due before the restart (overdue when it loads) and after it.
                delay = 1.0 if n % 2 == 0 else 4.0
                for k in range(3):
                    payload = {"op": "remind", "in": delay + 0.1 * k, "text": f"{instance_id}/{k}"}
                    status, body = await post_json(
                        session, f"{entry.url}/v1/instances/{instance_id}/request", payload
                    )
                    assert status == 200, body
                    expected[body["result"]["alarm_id"]] = body["result"]["fires_at"]

            victim.signal(signal.SIGKILL)
            assert await asyncio.to_thread(victim.wait, 5) == -signal.SIGKILL
            await asyncio.sleep(1.5)
            victim.start()
            await asyncio.to_thread(victim.wait_ready, None)

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                fired = _read_fired(fired_log)
                if set(expected) <= set(fired):
                    break
                await asyncio.sleep(0.2)

            pending = []
            for instance_id in victim_ids:
                status, body = await post_json(
                    session, f"{entry.url}/v1/instances/{instance_id}/request", {"op": "pending"}
                )
                pending.extend(body["result"])
    finally:
        cluster.stop()

    fired = _read_fired(fired_log)
    missing = sorted(set(expected) - set(fired))
    assert missing == [], f"alarms never fired: {missing}\n{victim.log()}"
    assert pending == []
    for alarm_id, fires_at in expected.items():
        assert fired[alarm_id]["fired_at"] >= fires_at, alarm_id
    victim_alarms = [row for row in fired.values() if row["instance_id"] in victim_ids]
    assert {row["host"] for row in victim_alarms} == {victim.host_id}
    assert victim.log().count(f"host {victim.host_id} ready:") == 2


def _read_fired(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["alarm_id"]: row for row in rows}


async def test_no_forward_returns_421_with_owner(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 3, extra_args=("--no-forward",))
    host = cluster.hosts[0]
    host.start()
    try:
        await asyncio.to_thread(host.wait_ready, None)
        owner = cluster.hosts[2].host_id
        [foreign] = ids_owned_by(owner, cluster.pattern, cluster.shards, 1, "nf")
        async with aiohttp.ClientSession() as session:
            status, body = await post_json(
                session, f"{host.url}/v1/instances/{foreign}/request", {"op": "get"}
            )
            async with session.ws_connect(f"{host.url}/v1/instances/{foreign}/connect") as ws:
                closing = await ws.receive(timeout=5)
    finally:
        cluster.stop()
    assert status == 421
    assert body["error"]["owner"] == owner
    assert body["error"]["owner_url"] == f"http://127.0.0.1:{owner}"
    assert closing.data == 4421
    assert closing.extra == f"owner={owner}"
