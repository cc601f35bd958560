"""In-process tests of the HTTP routes, under aiohttp's test server."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families

from simsi.core.placement import Placement, internal_id
from simsi.stores import MemoryAlarmStore
from tests.host.helpers import Probe, ids_owned_by, make_config, running

JSON_HEADERS = {"Content-Type": "application/json"}


def sample(text: str, name: str, **labels: str) -> float:
    """Return the value of one sample in Prometheus text, or 0 when it is absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                return float(item.value)
    return 0.0


async def post(client: Any, instance_id: str, payload: Any, **kwargs: Any) -> Any:
    path = f"/v1/instances/{quote(instance_id, safe='')}/request"
    headers = kwargs.pop("headers", JSON_HEADERS)
    return await client.post(path, data=json.dumps(payload), headers=headers, **kwargs)


async def test_request_returns_result() -> None:
    async with running() as (_server, client):
        first = await post(client, "c1", {"op": "add", "n": 2})
        second = await post(client, "c1", {"op": "add", "n": 3})
        assert first.status == 200
        assert await first.json() == {"result": {"count": 2, "host": "host-0"}}
        assert await second.json() == {"result": {"count": 5, "host": "host-0"}}
        assert second.headers["X-Simsi-Host"] == "host-0"
        assert second.content_type == "application/json"


async def test_request_id_with_special_characters() -> None:
    async with running(factory=Probe) as (_server, client):
        for instance_id in ("a/b", "with space", "ünïcode", "100%"):
            response = await post(client, instance_id, {"op": "echo", "value": instance_id})
            assert response.status == 200, instance_id
            assert (await response.json())["result"] == instance_id


async def test_malformed_json_rejected_and_host_serves() -> None:
    async with running() as (_server, client):
        await post(client, "c1", {"op": "add", "n": 1})
        bad = await client.post("/v1/instances/c1/request", data=b"{nope", headers=JSON_HEADERS)
        body = await bad.json()
        assert bad.status == 400
        assert body["error"]["type"] == "BadRequest"
        assert "not valid JSON" in body["error"]["message"]
        after = await post(client, "c1", {"op": "get"})
        assert (await after.json())["result"]["count"] == 1


async def test_nan_constant_rejected() -> None:
    async with running() as (_server, client):
        response = await client.post(
            "/v1/instances/c1/request", data=b'{"op": NaN}', headers=JSON_HEADERS
        )
        assert response.status == 400
        assert "NaN" in (await response.json())["error"]["message"]


async def test_invalid_utf8_rejected() -> None:
    async with running() as (_server, client):
        response = await client.post(
            "/v1/instances/c1/request", data=b'"\xff\xfe\xfa"', headers=JSON_HEADERS
        )
        assert response.status == 400


async def test_oversized_body_rejected_and_host_serves() -> None:
    async with running(make_config(max_body_bytes=1024)) as (_server, client):
        big = {"op": "add", "pad": "x" * 4096}
        response = await post(client, "c1", big)
        body = await response.json()
        assert response.status == 413
        assert body["error"]["type"] == "PayloadTooLarge"
        assert "1024 bytes" in body["error"]["message"]
        assert "--max-body-bytes" in body["error"]["message"]
        after = await post(client, "c1", {"op": "add"})
        assert after.status == 200
        assert (await after.json())["result"]["count"] == 1


async def test_wrong_content_type_rejected() -> None:
    async with running() as (_server, client):
        response = await client.post(
            "/v1/instances/c1/request",
            data="op=add",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        body = await response.json()
        assert response.status == 415
        assert body["error"]["type"] == "UnsupportedMediaType"
        assert "application/json" in body["error"]["message"]


async def test_missing_content_type_accepted() -> None:
    async with running() as (_server, client):
        response = await client.post(
            "/v1/instances/c1/request",
            data=b'{"op": "get"}',
            skip_auto_headers=["Content-Type"],
        )
        assert response.status == 200


async def test_unknown_route_is_404() -> None:
    async with running() as (_server, client):
        response = await client.get("/v2/nothing")
        body = await response.json()
        assert response.status == 404
        assert body["error"]["type"] == "NotFound"
        assert "/v2/nothing" in body["error"]["message"]


async def test_wrong_method_is_405() -> None:
    async with running() as (_server, client):
        response = await client.get("/v1/instances/c1/request")
        body = await response.json()
        assert response.status == 405
        assert body["error"]["type"] == "MethodNotAllowed"
        assert response.headers["Allow"] == "POST"


async def test_handler_exception_is_500() -> None:
    async with running() as (_server, client):
        response = await post(client, "c1", {"op": "fail"})
        body = await response.json()
        assert response.status == 500
        assert body["error"]["type"] == "HandlerError"
        assert body["error"]["instance_id"] == "c1"
        assert "'c1'" in body["error"]["message"]
        assert body["error"]["cause"] == "ValueError"
        after = await post(client, "c1", {"op": "get"})
        assert after.status == 200


async def test_handler_timeout_is_504() -> None:
    async with running(make_config(request_timeout=0.2)) as (_server, client):
        response = await post(client, "c1", {"op": "sleep", "seconds": 2})
        body = await response.json()
        assert response.status == 504
        assert body["error"]["type"] == "HandlerTimeout"
        assert "--request-timeout" in body["error"]["message"]


async def test_non_json_result_is_500() -> None:
    async with running(factory=Probe) as (_server, client):
        response = await post(client, "p", {"op": "set"})
        body = await response.json()
        assert response.status == 500
        assert body["error"]["type"] == "InvalidResponse"
        assert "'p'" in body["error"]["message"]


async def test_not_owner_without_forwarding_is_421() -> None:
    hosts = "host-{0..2}"
    config = make_config(hosts=hosts, shards=30, forward=False, peer_url="http://{host}.svc:8080")
    [foreign] = ids_owned_by("host-2", hosts, 30, 1)
    async with running(config) as (_server, client):
        response = await post(client, foreign, {"op": "get"})
        body = await response.json()
        assert response.status == 421
        assert body["error"]["type"] == "NotOwner"
        assert body["error"]["owner"] == "host-2"
        assert body["error"]["owner_url"] == "http://host-2.svc:8080"
        assert body["error"]["shard"] == Placement(hosts, 30).shard_of(foreign)


async def test_forwarded_request_never_forwarded_again() -> None:
    hosts = "host-{0..2}"
    config = make_config(hosts=hosts, shards=30, forward=True, peer_url="http://{host}.svc:8080")
    [foreign] = ids_owned_by("host-1", hosts, 30, 1)
    headers = {**JSON_HEADERS, "X-Simsi-Forwarded-By": "host-2"}
    async with running(config) as (_server, client):
        response = await post(client, foreign, {"op": "get"}, headers=headers)
        body = await response.json()
        assert response.status == 421
        assert body["error"]["owner"] == "host-1"
        assert "not forwarded again" in body["error"]["message"]


async def test_unreachable_owner_is_502() -> None:
    # Host ids are port numbers here; port 9 (discard) has no listener on loopback.
    hosts = "{8..9}"
    config = make_config(
        host_id="8", hosts=hosts, shards=8, peer_url="http://127.0.0.1:{host}", forward_timeout=2
    )
    [foreign] = ids_owned_by("9", hosts, 8, 1)
    async with running(config) as (_server, client):
        response = await post(client, foreign, {"op": "get"})
        body = await response.json()
        assert response.status == 502
        assert body["error"]["type"] == "PeerUnavailable"
        assert body["error"]["owner"] == "9"
        assert body["error"]["owner_url"] == "http://127.0.0.1:9"


async def test_placement_route() -> None:
    hosts = "host-{0..2}"
    config = make_config(hosts=hosts, shards=30, peer_url="http://{host}.svc:8080")
    async with running(config) as (_server, client):
        response = await client.get("/v1/placement/some%2Fid")
        body = await response.json()
        placement = Placement(hosts, 30)
        assert response.status == 200
        assert body["instance_id"] == "some/id"
        assert body["internal_id"] == internal_id("some/id")
        assert body["shard"] == placement.shard_of("some/id")
        assert body["owner"] == placement.owner("some/id")
        assert body["owner_url"] == f"http://{body['owner']}.svc:8080"


class BlockingStore(MemoryAlarmStore):
    """A memory store whose first page read waits until :attr:`release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def get_next_alarms(self, shard: int, after: Any = None, limit: int = 100) -> Any:
        await self.release.wait()
        return await super().get_next_alarms(shard, after=after, limit=limit)


async def test_readyz_waits_for_alarm_loading() -> None:
    store = BlockingStore()
    async with running(store=store, wait_ready=False) as (server, client):
        health = await client.get("/healthz")
        before = await client.get("/readyz")
        assert health.status == 200
        assert before.status == 503
        assert (await before.json())["error"]["type"] == "NotReady"
        store.release.set()
        await server.manager.wait_ready()
        after = await client.get("/readyz")
        assert after.status == 200
        assert await after.json() == {"ready": True, "host": "host-0"}


async def test_token_required_when_set() -> None:
    async with running(make_config(auth_token="s3cret")) as (_server, client):
        missing = await post(client, "c1", {"op": "get"})
        wrong = await post(
            client, "c1", {"op": "get"}, headers={"Authorization": "Bearer nope", **JSON_HEADERS}
        )
        right = await post(
            client, "c1", {"op": "get"}, headers={"Authorization": "Bearer s3cret", **JSON_HEADERS}
        )
        basic = await post(
            client, "c1", {"op": "get"}, headers={"Authorization": "Basic s3cret", **JSON_HEADERS}
        )
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await missing.json())["error"]["type"] == "Unauthorized"
        assert "s3cret" not in await missing.text()
        assert wrong.status == 401
        assert basic.status == 401
        assert right.status == 200


async def test_probes_open_and_metrics_closed_with_token() -> None:
    async with running(make_config(auth_token="s3cret")) as (_server, client):
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 200
        assert (await client.get("/metrics")).status == 401
        authorized = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert authorized.status == 200


async def test_metrics_count_requests() -> None:
    async with running() as (_server, client):
        for n in range(3):
            await post(client, f"c{n}", {"op": "add"})
        await post(client, "c0", {"op": "fail"})
        await client.post("/v1/instances/c0/request", data=b"{", headers=JSON_HEADERS)
        text = await (await client.get("/metrics")).text()
        route = "/v1/instances/{id}/request"
        assert sample(text, "simsi_requests_total", outcome="ok") == 3
        assert sample(text, "simsi_requests_total", outcome="error") == 1
        assert sample(text, "simsi_activations_total") == 3
        assert sample(text, "simsi_live_instances") == 3
        assert sample(text, "simsi_http_requests_total", route=route, status="200") == 3
        assert sample(text, "simsi_http_requests_total", route=route, status="400") == 1
        assert sample(text, "simsi_handler_errors_total", handler="on_request") == 1
        assert sample(text, "simsi_ready") == 1
        assert sample(text, "simsi_owned_shards") == 64


async def test_metrics_count_alarms() -> None:
    async with running() as (_server, client):
        await post(client, "reminder:a", {"op": "remind", "in": 0.05, "text": "hi", "id": "r1"})
        for _ in range(100):
            text = await (await client.get("/metrics")).text()
            if sample(text, "simsi_alarms_done_total", reason="succeeded") == 1:
                break
            await asyncio.sleep(0.02)
        assert sample(text, "simsi_alarms_set_total") == 1
        assert sample(text, "simsi_alarms_fired_total") == 1
        assert sample(text, "simsi_alarms_done_total", reason="succeeded") == 1
        assert sample(text, "simsi_alarm_lag_seconds_count") == 1


async def test_drain_finishes_running_request() -> None:
    async with running(make_config(drain_seconds=5)) as (server, client):
        slow = asyncio.ensure_future(post(client, "c1", {"op": "sleep", "seconds": 0.5}))
        while server.in_flight == 0:
            await asyncio.sleep(0.01)
        drain = asyncio.ensure_future(server.drain())
        await asyncio.sleep(0.05)
        rejected = await post(client, "c2", {"op": "get"})
        ready = await client.get("/readyz")
        assert rejected.status == 503
        assert (await rejected.json())["error"]["type"] == "Unavailable"
        assert rejected.headers["Retry-After"] == "1"
        assert ready.status == 503
        response = await slow
        assert response.status == 200
        assert (await response.json())["result"]["slept"] == 0.5
        assert await drain is True


async def test_deeply_nested_json_rejected_and_host_serves() -> None:
    async with running() as (_server, client):
        deep = b"[" * 50_000 + b"]" * 50_000
        response = await client.post("/v1/instances/c1/request", data=deep, headers=JSON_HEADERS)
        assert response.status == 400
        assert "nested too deeply" in (await response.json())["error"]["message"]
        after = await post(client, "c1", {"op": "add", "n": 1})
        assert (await after.json())["result"]["count"] == 1


async def test_undecodable_gzip_body_rejected() -> None:
    async with running() as (_server, client):
        headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
        response = await client.post(
            "/v1/instances/c1/request", data=b'{"op": "get"}', headers=headers
        )
        assert response.status == 400
        assert "Content-Encoding" in (await response.json())["error"]["message"]
