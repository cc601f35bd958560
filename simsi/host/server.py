"""The production host: an aiohttp application around one InterfaceManager.

:class:`HostServer` builds the application (routes, the auth and drain
middleware, startup and cleanup), and :meth:`HostServer.serve` runs it until
SIGTERM or SIGINT, then drains. Tests can run :attr:`HostServer.app` under
``aiohttp.test_utils.TestServer`` instead.

Stopping (drain): the host stops taking new work (``/readyz`` and new requests
respond 503), waits for running HTTP requests, closes WebSocket connections with
1001, closes the manager (which waits for running handlers and alarm handlers),
and closes the store. All of it shares one grace period, ``--drain-seconds``;
whatever still runs when it ends is logged and abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from simsi.core.alarms import AlarmStore
from simsi.core.errors import ConfigError
from simsi.core.manager import InterfaceFactory, InterfaceManager
from simsi.host.app_loader import load_factory
from simsi.host.config import HostConfig
from simsi.host.forwarding import Forwarder
from simsi.host.metrics import HostMetrics
from simsi.host.middleware import host_middleware
from simsi.host.observer import LoggingMetricsObserver
from simsi.host.routes import (
    SERVER,
    handle_healthz,
    handle_metrics,
    handle_placement,
    handle_readyz,
    handle_request,
)
from simsi.host.runtime import AsyncioRuntime
from simsi.host.stores import open_host_store
from simsi.host.websocket import handle_connect

log = logging.getLogger("simsi.host")

#: Closes one WebSocket connection with a close code and reason.
Closer = Callable[[int, str], Awaitable[None]]


class HostServer:
    """One production host: HTTP and WebSocket routes over an InterfaceManager.

    Args:
        config: the validated host configuration.
        factory: the interface factory; loaded from ``config.app`` when omitted.
        store: an alarm store to use instead of opening ``config.store_url``. The
            server closes only stores it opened itself.
        metrics: the metrics to update (a fresh registry when omitted).
        runtime: the manager's runtime (a new ``AsyncioRuntime`` when omitted).

    Raises:
        ConfigError: ``config.app`` cannot be loaded or ``config.store_url`` is invalid.
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        factory: InterfaceFactory | None = None,
        store: AlarmStore | None = None,
        metrics: HostMetrics | None = None,
        runtime: AsyncioRuntime | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or HostMetrics(config.host_id)
        self.observer = LoggingMetricsObserver(self.metrics)
        self.forwarder = Forwarder(config, self.metrics)
        self._factory = factory or load_factory(config.app)
        # A store opened here from the URL is closed by drain(); a given one is the caller's.
        self._owns_store = store is None
        self._store: AlarmStore = store if store is not None else open_host_store(config.store_url)
        self._runtime = runtime or AsyncioRuntime()
        self._manager: InterfaceManager | None = None
        self._token = config.auth_token.encode() if config.auth_token else None
        self._draining = False
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._websockets: dict[web.WebSocketResponse, Closer] = {}
        self.app = self._build_app()

    # -- state read by the routes --------------------------------------------------------------

    @property
    def manager(self) -> InterfaceManager:
        """The interface manager; exists once the application started."""
        if self._manager is None:
            raise RuntimeError("the host's application has not started; start it with serve()")
        return self._manager

    @property
    def draining(self) -> bool:
        """Whether the host stopped taking new work."""
        return self._draining

    @property
    def in_flight(self) -> int:
        """HTTP requests being handled now (WebSocket connections not included)."""
        return self._in_flight

    def track_websocket(self, ws: web.WebSocketResponse, closer: Closer | None = None) -> None:
        """Record an open WebSocket so a drain can close it.

        Args:
            ws: the client's WebSocket.
            closer: closes the connection with a code and reason; by default the
                WebSocket is closed directly. Local connections pass the instance
                connection's ``close``, so the instance gets the drain's close code.
        """
        if ws not in self._websockets:
            self.metrics.live_connections.inc()
        self._websockets[ws] = closer or _closer_of(ws)

    def untrack_websocket(self, ws: web.WebSocketResponse) -> None:
        """Forget a closed WebSocket."""
        if self._websockets.pop(ws, None) is not None:
            self.metrics.live_connections.dec()

    def authorized(self, request: web.Request) -> bool:
        """Return whether the request carries the configured bearer token (or none is needed)."""
        if self._token is None:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._token)

    # -- the application -----------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[host_middleware]
        )
        app[SERVER] = self
        router = app.router
        router.add_post("/v1/instances/{id}/request", handle_request, name="request")
        router.add_get(
            "/v1/instances/{id}/connect", handle_connect, name="connect", allow_head=False
        )
        router.add_get("/v1/placement/{id}", handle_placement, name="placement")
        router.add_get("/healthz", handle_healthz, name="healthz")
        router.add_get("/readyz", handle_readyz, name="readyz")
        router.add_get("/metrics", handle_metrics, name="metrics")
        app.cleanup_ctx.append(self._lifespan)
        return app

    async def _lifespan(self, app: web.Application) -> AsyncIterator[None]:
        config = self.config
        self._manager = InterfaceManager(
            config.host_id,
            config.hosts,
            config.shards,
            self._factory,
            runtime=self._runtime,
            store=self._store,
            alarm_options=config.alarm_options,
            observer=self.observer,
            request_timeout=config.request_timeout,
            idle_timeout=config.idle_timeout,
        )
        manager = self._manager
        self.metrics.bind_live_instances(lambda: manager.live_instances)
        await self.forwarder.start()
        await manager.start()
        yield
        await self.drain()

    # -- draining ------------------------------------------------------------------------------

    def enter_request(self) -> None:
        """Count an HTTP request as running."""
        self._in_flight += 1
        self._idle.clear()

    def leave_request(self) -> None:
        """Count an HTTP request as finished."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def drain(self, force: asyncio.Event | None = None) -> bool:
        """Stop taking work, let running work finish within ``drain_seconds``, close everything.

        Args:
            force: when set (by a second stop signal), stop waiting at once.

        Returns:
            Whether everything finished within the grace period.
        """
        if self._closed:
            return True
        self._draining = True
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_seconds
        force = force or asyncio.Event()
        log.info(
            "host %s draining: taking no new work; %d HTTP requests and %d WebSocket "
            "connections open; grace period %g s",
            self.config.host_id,
            self._in_flight,
            len(self._websockets),
            self.config.drain_seconds,
        )
        finished = await _wait(self._idle.wait(), deadline, force)
        if not finished:
            log.warning(
                "host %s: %d HTTP requests still running at the end of the grace period",
                self.config.host_id,
                self._in_flight,
            )
        closes = [close(1001, "host shutting down") for close in list(self._websockets.values())]
        if closes:
            await _wait(asyncio.gather(*closes, return_exceptions=True), deadline, force)
        if self._manager is not None:
            closed = await _wait(self._manager.close(), deadline, force)
            if not closed:
                finished = False
                log.warning(
                    "host %s: %d instances still running at the end of the grace period; "
                    "stopping without waiting for them",
                    self.config.host_id,
                    self._manager.live_instances,
                )
        await self.forwarder.close()
        if self._owns_store:
            try:
                await self._store.close()
            except Exception as exc:
                self.observer.error_swallowed("closing the alarm store", exc)
        return finished

    # -- running -------------------------------------------------------------------------------

    async def serve(self, started: Callable[[int], Awaitable[None] | None] | None = None) -> bool:
        """Listen on the configured address until SIGTERM or SIGINT, then drain.

        Args:
            started: called with the bound port once the host listens.

        Returns:
            Whether the drain finished within the grace period.

        Raises:
            ConfigError: the address cannot be bound.
        """
        config = self.config
        stop = asyncio.Event()
        force = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, signum, stop, force)
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.listen_host, config.listen_port)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(
                    f"--listen / SIMSI_LISTEN {config.listen_host}:{config.listen_port} cannot "
                    f"be bound: {exc.strerror}; pick a free port or another address"
                ) from None
            port = _bound_port(site, config.listen_port)
            log.info(
                "host %s listening on %s:%d (store %s, forwarding %s, auth %s)",
                config.host_id,
                config.listen_host,
                port,
                _redact_url(config.store_url),
                "on" if config.forward else "off",
                "required" if self._token else "off",
            )
            if started is not None:
                result = started(port)
                if inspect.isawaitable(result):
                    await result
            await stop.wait()
            finished = await self.drain(force)
        finally:
            await runner.cleanup()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        log.info("host %s stopped%s", config.host_id, "" if finished else " (drain cut short)")
        return finished


def _closer_of(ws: web.WebSocketResponse) -> Closer:
    async def close(code: int, reason: str) -> None:
        await ws.close(code=code, message=reason.encode()[:123])

    return close


def _on_signal(signum: int, stop: asyncio.Event, force: asyncio.Event) -> None:
    name = signal.Signals(signum).name
    if stop.is_set():
        log.warning("received %s again: stopping now without waiting for running work", name)
        force.set()
        return
    log.info("received %s: draining", name)
    stop.set()


async def _wait(aw: Awaitable[Any], deadline: float, force: asyncio.Event) -> bool:
    """Await ``aw`` until ``deadline`` (loop time) or ``force``; return whether it finished."""
    task = asyncio.ensure_future(aw)
    forced = asyncio.ensure_future(force.wait())
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    try:
        await asyncio.wait({task, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return False


def _bound_port(site: web.TCPSite, configured: int) -> int:
    server = site._server  # NOTE: aiohttp has no public accessor for the bound socket.
    sockets = getattr(server, "sockets", None) or []
    for sock in sockets:
        return int(sock.getsockname()[1])
    return configured


def _redact_url(url: str) -> str:
    """Hide a password in a store URL such as ``postgresql://user:secret@db/simsi``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
