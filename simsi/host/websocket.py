"""The WebSocket route: a duplex connection between a client and an instance.

``GET /v1/instances/{id}/connect`` upgrades to a WebSocket, passes the query
string to ``on_connect`` as the connection meta (string values, the first of
repeated keys), and then carries JSON text frames both ways. Close codes the
host chooses are 4000 plus the matching HTTP status:

====  ==============================================================
1000  normal close, by the client or the instance
1001  the host or the instance is shutting down
1011  the instance's message handler raised (reason names the error)
4400  the client sent a binary frame or malformed JSON
4403  ``on_connect`` rejected the connection (reason is its reason)
4406  ``on_connect`` neither accepted nor rejected the connection
4421  another host owns the instance and forwarding is off
4500  ``on_connect`` raised
4502  the owner host could not be reached to proxy the connection
4503  the host is draining or not started
4504  ``on_connect`` timed out
====  ==============================================================
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from simsi.core.connection import CLOSE_NORMAL, Connection
from simsi.core.errors import (
    ConnectionClosedError,
    ConnectionRejectedError,
    HandlerError,
    LifecycleError,
)
from simsi.host.forwarding import FORWARDED_HEADER
from simsi.host.responses import HOST_HEADER, error_response, is_timeout
from simsi.host.routes import SERVER, InvalidJSONError, parse_json

if TYPE_CHECKING:
    from simsi.core.manager import InterfaceManager
    from simsi.host.server import HostServer

CLOSE_BAD_MESSAGE = 4400
CLOSE_REJECTED = 4403
CLOSE_UNHANDLED = 4406
CLOSE_NOT_OWNER = 4421
CLOSE_CONNECT_FAILED = 4500
CLOSE_UNAVAILABLE = 4503
CLOSE_CONNECT_TIMEOUT = 4504

#: Seconds a close waits for the client's close frame before dropping the connection.
CLOSE_TIMEOUT_SECONDS = 5.0

#: Seconds between pings that detect clients which vanished without a close frame.
HEARTBEAT_SECONDS = 30.0

# The reason the core gives for a connection that on_connect left pending.


def _reason(text: str) -> bytes:
    """Encode a close reason, cut to the 123 bytes a WebSocket close frame allows."""
    return text.encode()[:123]


async def handle_connect(request: web.Request) -> web.StreamResponse:
    """``GET /v1/instances/{id}/connect``: connect a WebSocket client to the instance."""
    server = request.app[SERVER]
    instance_id = request.match_info["id"]
    ws = web.WebSocketResponse(
        max_msg_size=server.config.max_body_bytes,
        heartbeat=HEARTBEAT_SECONDS,
        timeout=CLOSE_TIMEOUT_SECONDS,
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        return error_response(
            426,
            f"{request.path} is a WebSocket route; connect with a WebSocket client "
            "(Upgrade: websocket)",
            headers={"Upgrade": "websocket"},
        )
    ws.headers[HOST_HEADER] = server.config.host_id
    await ws.prepare(request)
    server.track_websocket(ws)
    try:
        manager = server.manager
        owner = manager.owner(instance_id)
        if owner == manager.host_id:
            await _serve_local(server, ws, instance_id, dict(request.query))
        elif FORWARDED_HEADER in request.headers or not server.config.forward:
            await ws.close(code=CLOSE_NOT_OWNER, message=_reason(f"owner={owner}"))
        else:
            await server.forwarder.proxy_websocket(ws, owner, instance_id, request.query_string)
    finally:
        server.untrack_websocket(ws)
    return ws


async def _open(
    manager: InterfaceManager, ws: web.WebSocketResponse, instance_id: str, meta: dict[str, Any]
) -> Connection | None:
    """Run ``on_connect``; return the caller's end, or close ``ws`` and return ``None``."""

    async def to_client(message: Any) -> None:
        try:
            text = json.dumps(message, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"connection messages must be JSON-serialisable, got {type(message).__name__}: {exc}"
            ) from exc
        await ws.send_str(text)

    try:
        return await manager.connect(instance_id, meta, on_message=to_client)
    except ConnectionRejectedError as exc:
        if exc.unhandled:
            await ws.close(code=CLOSE_UNHANDLED, message=_reason(exc.reason))
        else:
            await ws.close(code=CLOSE_REJECTED, message=_reason(exc.reason))
    except HandlerError as exc:
        if is_timeout(exc):
            await ws.close(code=CLOSE_CONNECT_TIMEOUT, message=_reason("on_connect timed out"))
        else:
            cause = exc.__cause__
            detail = f"on_connect raised {type(cause).__name__}: {cause}"
            await ws.close(code=CLOSE_CONNECT_FAILED, message=_reason(detail))
    except LifecycleError as exc:
        await ws.close(code=CLOSE_UNAVAILABLE, message=_reason(str(exc)))
    return None


async def _serve_local(
    server: HostServer, ws: web.WebSocketResponse, instance_id: str, meta: dict[str, Any]
) -> None:
    connection = await _open(server.manager, ws, instance_id, meta)
    if connection is None:
        return
    server.track_websocket(ws, connection.close)
    closing: list[asyncio.Task[bool]] = []

    def close_client(code: int, reason: str) -> None:
        # The close handshake waits for the client, so it runs in its own task
        # instead of holding the instance's turn for a network round trip.
        if not ws.closed:
            closing.append(asyncio.ensure_future(ws.close(code=code, message=_reason(reason))))

    connection.on_close(close_client)
    if connection.closed:
        close_client(connection.close_code or CLOSE_NORMAL, connection.close_reason)
    code, reason = CLOSE_NORMAL, "client closed the connection"
    try:
        if not connection.closed:
            code, reason = await _read_client(ws, connection)
    finally:
        if not connection.closed:
            await connection.close(code, reason)
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)


async def _read_client(ws: web.WebSocketResponse, connection: Connection) -> tuple[int, str]:
    """Deliver the client's frames to the instance; return the close code and reason."""
    while True:
        message = await ws.receive()
        if message.type is WSMsgType.TEXT:
            try:
                payload = parse_json(message.data, "message")
            except InvalidJSONError as exc:
                reason = str(exc)
                await ws.close(code=CLOSE_BAD_MESSAGE, message=_reason(reason))
                return CLOSE_BAD_MESSAGE, reason
            try:
                await connection.send(payload)
            except (ConnectionClosedError, LifecycleError):
                return connection.close_code or CLOSE_NORMAL, connection.close_reason
        elif message.type is WSMsgType.BINARY:
            reason = "binary frames are not accepted; send JSON text frames"
            await ws.close(code=CLOSE_BAD_MESSAGE, message=_reason(reason))
            return CLOSE_BAD_MESSAGE, reason
        elif message.type is WSMsgType.CLOSE:
            return int(message.data), str(message.extra or "")
        else:
            # CLOSING, CLOSED or ERROR: the client went away, possibly without a close frame.
            return ws.close_code or 1006, "client connection lost"
