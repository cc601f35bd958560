"""HTTP routes: instance requests, placement, health, readiness and metrics.

Request bodies and responses are JSON. ``POST /v1/instances/{id}/request``
passes the parsed body to ``on_request`` (an empty body is ``null``) and
responds ``{"result": ...}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from simsi.core.errors import ConfigError, HandlerError, LifecycleError, NotOwnerError
from simsi.core.placement import internal_id
from simsi.host.forwarding import FORWARDED_HEADER
from simsi.host.metrics import CONTENT_TYPE
from simsi.host.responses import (
    error_response,
    handler_error_response,
    json_response,
    not_owner_response,
    unavailable_response,
)

if TYPE_CHECKING:
    from simsi.host.server import HostServer

SERVER: web.AppKey[HostServer] = web.AppKey("simsi_host_server")

_JSON_TYPES = ("application/json", "text/json")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype in _JSON_TYPES or mimetype.endswith("+json")


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """Read the request body and parse it as JSON; an empty body is ``None``.

    Raises:
        web.HTTPException: 415 for a non-JSON content type, 413 for an oversized
            body, 400 for malformed JSON (turned into JSON bodies by the middleware).
    """
    content_type = request.headers.get("Content-Type")
    if not _is_json_type(content_type):
        raise _Reply(
            error_response(
                415,
                f"Content-Type {content_type!r} is not accepted; send JSON with "
                "Content-Type: application/json",
            )
        )
    try:
        body = await request.read()
    except web.HTTPException:
        raise
    except (RequestPayloadError, aiohttp.ClientPayloadError) as exc:
        raise _Reply(
            error_response(400, f"request body cannot be read: {exc}; check Content-Encoding")
        ) from None
    if not body.strip():
        return body, None
    try:
        return body, parse_json(body, "request body")
    except InvalidJSONError as exc:
        raise _Reply(error_response(400, str(exc))) from None


class InvalidJSONError(ValueError):
    """A client sent text that is not a JSON document simsi accepts."""


def parse_json(data: bytes | str, what: str) -> Any:
    """Parse JSON that a client sent, rejecting NaN, infinity and nesting too deep to parse.

    Raises:
        InvalidJSONError: the text is not such a document; the message names ``what``.
    """
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InvalidJSONError(f"{what} is not valid JSON: {exc}; send a JSON document") from None
    except RecursionError:
        raise InvalidJSONError(
            f"{what} is nested too deeply to parse; send a flatter JSON document"
        ) from None


class _Reply(Exception):
    """Raised inside a handler to respond with a prepared response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _encode_result(instance_id: str, result: Any) -> web.Response:
    try:
        text = json.dumps({"result": result}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return error_response(
            500,
            f"on_request of instance {instance_id!r} returned a value that is not JSON "
            f"({type(result).__name__}: {exc}); return dicts, lists, strings, numbers, "
            "booleans or None",
            type_name="InvalidResponse",
            instance_id=instance_id,
        )
    return web.Response(body=text.encode(), content_type="application/json")


async def handle_request(request: web.Request) -> web.Response:
    """``POST /v1/instances/{id}/request``: run ``on_request`` here or on the owner host."""
    server = request.app[SERVER]
    instance_id = request.match_info["id"]
    try:
        body, payload = await read_json(request)
    except _Reply as reply:
        return reply.response
    # The manager checks ownership itself, so the instance id is hashed once per request.
    try:
        result = await server.manager.request(instance_id, payload)
    except HandlerError as exc:
        return handler_error_response(exc)
    except NotOwnerError as exc:
        forwarded = FORWARDED_HEADER in request.headers
        if forwarded or not server.config.forward:
            return not_owner_response(exc, server.forwarder.owner_url(exc.owner), forwarded)
        return await server.forwarder.forward_request(exc.owner, instance_id, body)
    except LifecycleError as exc:
        return unavailable_response(exc)
    except ConfigError as exc:
        return error_response(400, str(exc))
    return _encode_result(instance_id, result)


async def handle_placement(request: web.Request) -> web.Response:
    """``GET /v1/placement/{id}``: the owner host, shard and internal id of an instance."""
    server = request.app[SERVER]
    instance_id = request.match_info["id"]
    placement = server.manager.placement
    try:
        shard = placement.shard_of(instance_id)
    except ConfigError as exc:
        return error_response(400, str(exc))
    owner = placement.owner_of_shard(shard)
    return json_response(
        {
            "instance_id": instance_id,
            "internal_id": internal_id(instance_id),
            "shard": shard,
            "shards": placement.shards,
            "owner": owner,
            "owner_url": server.forwarder.owner_url(owner),
            "host": server.config.host_id,
        }
    )


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 while the process serves HTTP (liveness)."""
    server = request.app[SERVER]
    return json_response({"status": "ok", "host": server.config.host_id})


async def handle_readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 once the owned shards' alarms are loaded, 503 before and while draining."""
    server = request.app[SERVER]
    host = server.config.host_id
    if server.draining:
        reason = f"host {host!r} is draining after a stop signal and takes no new work"
    elif not server.manager.ready:
        reason = f"host {host!r} is still loading the alarms of its owned shards"
    else:
        return json_response({"ready": True, "host": host})
    body = {"ready": False, "host": host, "error": {"type": "NotReady", "message": reason}}
    return json_response(body, 503)


async def handle_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: every metric of this host in the Prometheus text format."""
    server = request.app[SERVER]
    response = web.Response(body=server.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
