"""Three real ``simsi serve`` processes with forwarding and a bearer token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from simsi.core.placement import Placement
from tests.host.cluster import Cluster, http_get
from tests.host.helpers import ids_owned_by
from tests.host.test_routes import sample

TOKEN = "cluster-token"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    running = Cluster(directory, 3, token=TOKEN, extra_args=("--max-body-bytes", "64KiB"))
    try:
        yield running.start()
    finally:
        running.stop()


def others(cluster: Cluster, host_id: str) -> list[str]:
    return [host.host_id for host in cluster.hosts if host.host_id != host_id]


async def post(
    session: aiohttp.ClientSession, cluster: Cluster, entry: str, instance_id: str, payload: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    url = f"{cluster.host(entry).url}/v1/instances/{instance_id}/request"
    async with session.post(url, json=payload, headers=cluster.headers()) as response:
        return response.status, await response.json(), response


async def test_forwarded_request_served_by_owner(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as session:
        for owner in cluster.hosts:
            [instance_id] = ids_owned_by(owner.host_id, cluster.pattern, cluster.shards, 1, "fw")
            entries = others(cluster, owner.host_id)
            count = 0
            for n, entry in enumerate([*entries, owner.host_id, *entries]):
                status, body, response = await post(
                    session, cluster, entry, instance_id, {"op": "add", "n": n + 1}
                )
                count += n + 1
                assert status == 200, body
                assert body["result"] == {"count": count, "host": owner.host_id}
                assert response.headers["X-Simsi-Host"] == owner.host_id


async def test_missing_or_wrong_token_is_401(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as session:
        for host in cluster.hosts:
            url = f"{host.url}/v1/instances/anything/request"
            async with session.post(url, json={"op": "get"}) as missing:
                missing_body = await missing.json()
            wrong_headers = {"Authorization": "Bearer wrong-token"}
            async with session.post(url, json={"op": "get"}, headers=wrong_headers) as wrong:
                wrong_status = wrong.status
            assert missing.status == 401
            assert missing_body["error"]["type"] == "Unauthorized"
            assert wrong_status == 401
            assert http_get(f"{host.url}/metrics")[0] == 401
            assert http_get(f"{host.url}/healthz")[0] == 200
            assert http_get(f"{host.url}/readyz") == (200, {"ready": True, "host": host.host_id})


async def test_bad_input_keeps_hosts_serving(cluster: Cluster) -> None:
    entry = cluster.hosts[0]
    [local] = ids_owned_by(entry.host_id, cluster.pattern, cluster.shards, 1, "bad")
    [foreign] = ids_owned_by(cluster.hosts[1].host_id, cluster.pattern, cluster.shards, 1, "bad")
    headers = {**cluster.headers(), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for instance_id in (local, foreign):
            url = f"{entry.url}/v1/instances/{instance_id}/request"
            async with session.post(url, data=b'{"op": ', headers=headers) as malformed:
                malformed_body = await malformed.json()
            big = json.dumps({"op": "add", "pad": "x" * 70_000})
            async with session.post(url, data=big, headers=headers) as oversized:
                oversized_body = await oversized.json()
            async with session.post(url, data=b"[1, 2", headers=headers) as truncated:
                truncated_status = truncated.status
            assert malformed.status == 400
            assert malformed_body["error"]["type"] == "BadRequest"
            assert oversized.status == 413
            assert oversized_body["error"]["type"] == "PayloadTooLarge"
            assert truncated_status == 400
            status, body, _ = await post(
                session, cluster, entry.host_id, instance_id, {"op": "add"}
            )
            assert status == 200
            assert body["result"]["count"] == 1
        async with session.get(f"{entry.url}/v1/nothing", headers=cluster.headers()) as unknown:
            unknown_body = await unknown.json()
        assert unknown.status == 404
        assert unknown_body["error"]["type"] == "NotFound"
    assert all(host.alive() for host in cluster.hosts)


async def test_placement_agrees_on_every_host(cluster: Cluster) -> None:
    placement = Placement(cluster.pattern, cluster.shards)
    for instance_id in ("alpha", "beta", "gamma/delta"):
        results = [
            http_get(f"{host.url}/v1/placement/{instance_id.replace('/', '%2F')}", cluster.token)
            for host in cluster.hosts
        ]
        owners = {body["owner"] for _status, body in results}
        assert {status for status, _body in results} == {200}
        assert owners == {placement.owner(instance_id)}


async def test_websocket_through_non_owner_is_proxied(cluster: Cluster) -> None:
    owner, entry = cluster.hosts[2], cluster.hosts[0]
    [instance_id] = ids_owned_by(owner.host_id, cluster.pattern, cluster.shards, 1, "ws")
    url = f"{entry.url}/v1/instances/{instance_id}/connect"
    async with aiohttp.ClientSession(headers=cluster.headers()) as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            await ws.send_json({"op": "add", "n": 7})
            reply = await ws.receive_json(timeout=5)
            await ws.send_json({"op": "close"})
            closing = await ws.receive(timeout=5)
        assert hello == {"hello": instance_id, "count": 0}
        assert reply == {"count": 7}
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == 1000
        assert closing.extra == "closed by the instance"

        async with session.ws_connect(url) as ws:
            again = await ws.receive_json(timeout=5)
            await ws.close(code=1000, message=b"bye")
        assert again["count"] == 7
        status, body, _ = await post(session, cluster, owner.host_id, instance_id, {"op": "get"})
        assert status == 200
        assert body["result"]["count"] == 7

        async with session.ws_connect(url + "?mode=reject") as ws:
            rejected = await ws.receive(timeout=5)
        async with session.ws_connect(url + "?mode=ignore") as ws:
            unhandled = await ws.receive(timeout=5)
        assert rejected.data == 4403
        assert rejected.extra == "rejected on request (mode=reject)"
        assert unhandled.data == 4406


async def test_metrics_count_forwarding(cluster: Cluster) -> None:
    entry, owner = cluster.hosts[1], cluster.hosts[0]
    ids = ids_owned_by(owner.host_id, cluster.pattern, cluster.shards, 5, "metric")
    before = http_get(f"{entry.url}/metrics", cluster.token)[1]
    async with aiohttp.ClientSession() as session:
        for instance_id in ids:
            status, _body, _ = await post(
                session, cluster, entry.host_id, instance_id, {"op": "add"}
            )
            assert status == 200
    after = http_get(f"{entry.url}/metrics", cluster.token)[1]
    owner_metrics = http_get(f"{owner.url}/metrics", cluster.token)[1]
    labels = {"kind": "request", "outcome": "ok"}
    forwarded = sample(after, "simsi_forwarded_requests_total", **labels) - sample(
        before, "simsi_forwarded_requests_total", **labels
    )
    assert forwarded == 5
    assert sample(owner_metrics, "simsi_activations_total") >= 5
    assert sample(owner_metrics, "simsi_ready") == 1
    assert sample(owner_metrics, "simsi_owned_shards") == len(
        Placement(cluster.pattern, cluster.shards).shards_of(owner.host_id)
    )


async def test_logs_never_contain_token(cluster: Cluster) -> None:
    for host in cluster.hosts:
        log = host.log()
        assert "auth required" in log
        assert TOKEN not in log
