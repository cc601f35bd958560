"""Forwarding requests and WebSocket connections to the host that owns the instance.

A forwarded request carries :data:`FORWARDED_HEADER` naming the sending host. A
host that receives such a request for a shard it does not own responds 421 (or
closes a WebSocket with 4421) instead of forwarding it again, so two hosts that
disagree on the hosts pattern can never bounce a request between them.

WebSocket connections to a non-owner are proxied: this host opens a WebSocket
to the owner and copies frames both ways, and a close on either side closes the
other with the same code and reason.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType, web
from yarl import URL

from simsi.host.config import HostConfig
from simsi.host.metrics import HostMetrics
from simsi.host.observer import RateLimiter
from simsi.host.responses import HOST_HEADER, JSON, error_response

log = logging.getLogger("simsi.host.forward")

#: Header set on forwarded requests, naming the host that forwarded them.
FORWARDED_HEADER = "X-Simsi-Forwarded-By"

#: Close code when the owner host could not be reached to proxy a WebSocket.
CLOSE_PEER_UNAVAILABLE = 4502

#: Most connections kept open to the other hosts together.
CONNECTION_LIMIT = 256


def instance_path(instance_id: str, action: str) -> str:
    """Return the URL path of an instance route, with the id percent-encoded."""
    return f"/v1/instances/{quote(instance_id, safe='')}/{action}"


class Forwarder:
    """Sends requests and proxies WebSocket connections to other hosts.

    Args:
        config: the host configuration (peer URL template, token, timeouts).
        metrics: counts forwarded requests and connections by outcome.
    """

    def __init__(self, config: HostConfig, metrics: HostMetrics) -> None:
        self._config = config
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        self._limiter = RateLimiter()
        headers = {FORWARDED_HEADER: config.host_id}
        if config.auth_token:
            headers["Authorization"] = f"Bearer {config.auth_token}"
        self._headers = headers

    async def start(self) -> None:
        """Open the client session used for every peer."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT),
            timeout=aiohttp.ClientTimeout(total=self._config.forward_timeout),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        """Close the client session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def owner_url(self, owner: str) -> str | None:
        """Return the base URL of ``owner``, or ``None`` without a peer URL template."""
        if self._config.peer_url is None:
            return None
        return self._config.peer_base(owner)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Forwarder.start() was not awaited before forwarding")
        return self._session

    def _log_failure(self, kind: str, owner: str, url: str, error: BaseException) -> None:
        suppressed = self._limiter.admit(f"{kind}:{owner}")
        if suppressed is None:
            return
        log.warning(
            "forwarding a %s to owner host %s at %s failed: %s: %s%s",
            kind,
            owner,
            url,
            type(error).__name__,
            error or "no detail",
            f" ({suppressed} more since the last report)" if suppressed else "",
        )

    async def forward_request(self, owner: str, instance_id: str, body: bytes) -> web.Response:
        """Send a request body to the owner host and return its response unchanged.

        Failures to reach the owner become 502 (unreachable) or 504 (no response
        within ``--forward-timeout``), naming the owner and its URL.
        """
        base = self._config.peer_base(owner)
        url = base + instance_path(instance_id, "request")
        headers = dict(self._headers)
        headers["Content-Type"] = JSON
        try:
            async with self._client().post(URL(url, encoded=True), data=body, headers=headers) as r:
                payload = await r.read()
                response_headers = {HOST_HEADER: r.headers.get(HOST_HEADER, owner)}
                self._metrics.forwarded.labels(kind="request", outcome="ok").inc()
                return web.Response(
                    body=payload,
                    status=r.status,
                    content_type=r.content_type or JSON,
                    headers=response_headers,
                )
        except TimeoutError as exc:
            self._metrics.forwarded.labels(kind="request", outcome="timeout").inc()
            self._log_failure("request", owner, url, exc)
            return error_response(
                504,
                f"owner host {owner!r} at {base} did not respond within "
                f"{self._config.forward_timeout:g} s; the request may or may not have run",
                type_name="PeerTimeout",
                owner=owner,
                owner_url=base,
            )
        except (aiohttp.ClientError, OSError) as exc:
            self._metrics.forwarded.labels(kind="request", outcome="unavailable").inc()
            self._log_failure("request", owner, url, exc)
            return error_response(
                502,
                f"owner host {owner!r} at {base} could not be reached ({type(exc).__name__}: "
                f"{exc}); it may be restarting, retry shortly",
                type_name="PeerUnavailable",
                owner=owner,
                owner_url=base,
            )

    async def proxy_websocket(
        self, client: web.WebSocketResponse, owner: str, instance_id: str, query: str
    ) -> None:
        """Connect to the owner's WebSocket route and copy frames both ways until one side closes."""
        base = self._config.peer_base(owner)
        url = "ws" + base[len("http") :] + instance_path(instance_id, "connect")
        if query:
            url += "?" + query
        try:
            upstream = await self._client().ws_connect(
                URL(url, encoded=True),
                headers=self._headers,
                max_msg_size=self._config.max_body_bytes,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                autoclose=False,
            )
        except aiohttp.WSServerHandshakeError as exc:
            self._metrics.forwarded.labels(kind="connection", outcome="unavailable").inc()
            self._log_failure("connection", owner, url, exc)
            code = 4000 + exc.status if 400 <= exc.status < 600 else CLOSE_PEER_UNAVAILABLE
            await client.close(code=code, message=_reason(f"owner {owner} responded {exc.status}"))
            return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._metrics.forwarded.labels(kind="connection", outcome="unavailable").inc()
            self._log_failure("connection", owner, url, exc)
            await client.close(
                code=CLOSE_PEER_UNAVAILABLE, message=_reason(f"owner {owner} unreachable")
            )
            return
        self._metrics.forwarded.labels(kind="connection", outcome="ok").inc()
        try:
            await _pump_both(client, upstream)
        finally:
            if not upstream.closed:
                await upstream.close()


def _reason(text: str) -> bytes:
    """Encode a close reason, cut to the 123 bytes a WebSocket close frame allows."""
    return text.encode()[:123]


async def _pump_both(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
) -> None:
    """Copy frames both ways; when one side closes, close the other with its code and reason."""
    to_upstream = asyncio.ensure_future(_copy(client, upstream))
    to_client = asyncio.ensure_future(_copy(upstream, client))
    try:
        done, _pending = await asyncio.wait(
            {to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED
        )
        first = done.pop()
        code, reason = first.result()
        other = upstream if first is to_upstream else client
        if not other.closed:
            await other.close(code=code, message=reason)
    finally:
        for task in (to_upstream, to_client):
            if not task.done():
                task.cancel()
        await asyncio.gather(to_upstream, to_client, return_exceptions=True)


async def _copy(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> tuple[int, bytes]:
    """Copy frames from ``source`` to ``target``; return the close code and reason that ended it."""
    while True:
        message = await source.receive()
        if message.type is WSMsgType.TEXT:
            await target.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await target.send_bytes(message.data)
        elif message.type is WSMsgType.CLOSE:
            if not source.closed:
                await source.close(code=message.data, message=(message.extra or "").encode())
            return int(message.data), (message.extra or "").encode()[:123]
        else:
            # CLOSING, CLOSED or ERROR: the other end went away without a close frame.
            return source.close_code or 1011, b"peer connection lost"
