"""The InterfaceManager: one host's view of the cluster and its live instances."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from simsi.core.alarm_engine import AlarmEngine, AlarmOptions, require_store
from simsi.core.alarms import Alarm, AlarmStore
from simsi.core.connection import (
    Connection,
    IncomingConnection,
    IncomingState,
    MessageHandler,
    connect_pair,
)
from simsi.core.errors import (
    ConfigError,
    ConnectionRejectedError,
    HandlerError,
    LifecycleError,
    ManagerClosedError,
    NotOwnerError,
)
from simsi.core.instance import InstanceState, LiveInstance
from simsi.core.interface import InstanceContext, StableInterface
from simsi.core.observer import ManagerObserver
from simsi.core.placement import Placement, internal_id, route_of
from simsi.core.runtime import Runtime, Task
from simsi.core.sync import WorkCounter

InterfaceFactory = Callable[[str], StableInterface]


class ManagerState(enum.Enum):
    """Lifecycle of an :class:`InterfaceManager`."""

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class InterfaceManager:
    """Routes requests, connections and alarms to the live instances this host owns.

    Args:
        host_id: this host's id; must be one of the pattern's hosts.
        hosts: a host pattern like ``"host-{0..2}"`` or a list of host ids.
        shards: the number of shards (at least the number of hosts).
        factory: called with an instance id to create its interface object; a
            :class:`~simsi.core.interface.StableInterface` subclass works as is.
        runtime: the clock and scheduler (``AsyncioRuntime`` or ``SimRuntime``).
        store: the alarm store, or ``None`` when the interface uses no alarms.
        alarm_options: alarm delivery tuning.
        observer: receives every lifecycle, request and alarm event.
        request_timeout: seconds a request or connect handler may take, or ``None``.
        idle_timeout: shut an instance down after this many seconds (host clock)
            without running work or open connections, or ``None`` to keep instances
            until shutdown. A due alarm or a request re-activates it.

    Raises:
        ConfigError: the pattern, shard count, host id or idle timeout is invalid.
    """

    def __init__(
        self,
        host_id: str,
        hosts: str | Sequence[str],
        shards: int,
        factory: InterfaceFactory,
        *,
        runtime: Runtime,
        store: AlarmStore | None = None,
        alarm_options: AlarmOptions | None = None,
        observer: ManagerObserver | None = None,
        request_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        if idle_timeout is not None and not idle_timeout > 0:
            raise ConfigError(
                f"idle_timeout must be a positive number of seconds or None, got {idle_timeout!r}"
            )
        self._placement = Placement(hosts, shards)
        self._placement.check_host(host_id)
        self._host_id = host_id
        self._hosts = self._placement.hosts
        self._shard_count = self._placement.shards
        self._owned = tuple(self._placement.shards_of(host_id))
        self._factory = factory
        self._runtime = runtime
        self._store = store
        self._observer = observer or ManagerObserver()
        self._request_timeout = request_timeout
        self._state = ManagerState.NEW
        self._instances: dict[str, LiveInstance] = {}
        self._connection_counter = 0
        self._idle_timeout = idle_timeout
        self._reaper: Task[None] | None = None
        self._background = WorkCounter(runtime)
        self._closed = runtime.event()
        self._alarms: AlarmEngine | None = None
        if store is not None:
            self._alarms = AlarmEngine(self, store, alarm_options or AlarmOptions())

    # -- read-only state -------------------------------------------------------------------

    @property
    def host_id(self) -> str:
        """This host's id."""
        return self._host_id

    @property
    def placement(self) -> Placement:
        """The shard-to-host map this manager routes by."""
        return self._placement

    @property
    def owned_shards(self) -> tuple[int, ...]:
        """The shards this host owns, ascending."""
        return self._owned

    @property
    def runtime(self) -> Runtime:
        """The runtime this manager runs on."""
        return self._runtime

    @property
    def observer(self) -> ManagerObserver:
        """The observer receiving this manager's events."""
        return self._observer

    @property
    def state(self) -> ManagerState:
        """The manager's lifecycle state."""
        return self._state

    @property
    def live_instances(self) -> int:
        """How many instances are live (shutting-down ones included)."""
        return len(self._instances)

    @property
    def ready(self) -> bool:
        """Whether the manager runs and has loaded the first alarm page of every owned shard."""
        if self._state is not ManagerState.RUNNING:
            return False
        return self._alarms is None or self._alarms.ready

    @property
    def alarms(self) -> AlarmEngine | None:
        """The alarm engine, or ``None`` without a store."""
        return self._alarms

    def owner(self, instance_id: str) -> str:
        """Return the host id that owns ``instance_id``."""
        return self._placement.owner(instance_id)

    def is_live(self, instance_id: str) -> bool:
        """Return whether ``instance_id`` has a live instance on this host."""
        return internal_id(instance_id) in self._instances

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving and begin loading the owned shards' alarms.

        Requests are served at once; use :meth:`wait_ready` to wait for the alarms.

        Raises:
            LifecycleError: the manager was already started.
        """
        if self._state is not ManagerState.NEW:
            raise LifecycleError(
                f"manager of {self._host_id!r} is {self._state.value}; start() runs once"
            )
        self._state = ManagerState.RUNNING
        self._observer.started(self._host_id, len(self._owned))
        if self._alarms is not None:
            self._alarms.start()
        else:
            self._observer.ready(self._host_id, 0)
        if self._idle_timeout is not None:
            self._reaper = self._runtime.spawn(
                self._reap_idle(self._idle_timeout), name="idle-reaper"
            )

    async def wait_ready(self) -> None:
        """Wait until the owned shards' first alarm pages are loaded."""
        if self._alarms is not None:
            await self._alarms.wait_ready()

    async def close(self) -> None:
        """Stop the alarm loop, shut every instance down and wait for all running work."""
        if self._state is ManagerState.NEW:
            self._state = ManagerState.CLOSED
            self._closed.set()
            return
        if self._state is not ManagerState.RUNNING:
            await self._closed.wait()
            return
        self._state = ManagerState.CLOSING
        if self._reaper is not None:
            self._reaper.cancel()
        if self._alarms is not None:
            await self._alarms.close()
        for live in list(self._instances.values()):
            await self._shutdown(live)
        await self._background.wait_idle()
        self._state = ManagerState.CLOSED
        self._closed.set()
        self._observer.stopped(self._host_id)

    async def __aenter__(self) -> InterfaceManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- routing and activation -------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state is ManagerState.NEW:
            raise LifecycleError(f"manager of {self._host_id!r} is not started; call start() first")
        if self._state is not ManagerState.RUNNING:
            raise ManagerClosedError(f"manager of {self._host_id!r} is {self._state.value}")

    def _check_owner(self, instance_id: str) -> tuple[str, int]:
        if not isinstance(instance_id, str) or not instance_id:
            raise ConfigError(f"instance id must be a non-empty string, got {instance_id!r}")
        internal, hashed = route_of(instance_id)
        shard = hashed % self._shard_count
        owner = self._hosts[shard % len(self._hosts)]
        if owner != self._host_id:
            raise NotOwnerError(instance_id, shard, owner, self._host_id)
        return internal, shard

    def _admit_now(self, instance_id: str) -> LiveInstance:
        """Return the live instance for ``instance_id``, creating it if none is live.

        An active instance is returned with one unit of work admitted; one that is
        shutting down is returned as it is, for the caller to wait on. Check and
        insert happen without an ``await`` in between, so concurrent first calls
        create exactly one instance.
        """
        self._check_running()
        internal, shard = self._check_owner(instance_id)
        live = self._instances.get(internal)
        if live is None:
            obj = self._factory(instance_id)
            live = LiveInstance(self, instance_id, internal, shard, obj)
            self._instances[internal] = live
            self._observer.activated(instance_id, internal, shard)
        if live.state is InstanceState.ACTIVE:
            live.admit()
        return live

    async def _admit(self, instance_id: str) -> LiveInstance:
        """Return the live instance for ``instance_id`` with one unit of work admitted.

        Waits while an earlier instance of the id shuts down, then creates a new one.
        """
        live = self._admit_now(instance_id)
        while live.state is not InstanceState.ACTIVE:
            await live.stopped.wait()
            live = self._admit_now(instance_id)
        return live

    async def _run(self, live: LiveInstance, handler: str, call: Any) -> Any:
        try:
            return await live.run(handler, call, self._request_timeout)
        except HandlerError:
            if live.activation_failed and live.state is InstanceState.ACTIVE:
                await self._shutdown(live)
            raise

    async def _reap_idle(self, timeout: float) -> None:
        """Shut down instances idle for ``timeout`` seconds, checking every half timeout."""
        self._background.enter()
        try:
            while self._state is ManagerState.RUNNING:
                await self._runtime.sleep(timeout / 2)
                cutoff = self._runtime.now() - timeout
                idle = [
                    live
                    for live in self._instances.values()
                    if live.state is InstanceState.ACTIVE
                    and live.work_in_progress == 0
                    and not live.connections
                    and live.last_used <= cutoff
                ]
                for live in idle:
                    # Work may have arrived while an earlier instance shut down.
                    if live.work_in_progress == 0 and live.state is InstanceState.ACTIVE:
                        await self._shutdown(live)
        finally:
            self._background.leave()

    # -- requests and connections -----------------------------------------------------------

    async def request(self, instance_id: str, payload: Any = None) -> Any:
        """Run ``on_request`` of the instance and return its response.

        Raises:
            NotOwnerError: another host owns the instance's shard (``.owner`` names it).
            HandlerError: the handler raised or timed out; the original is ``__cause__``.
            ManagerClosedError: the manager is closing.
        """
        live = self._admit_now(instance_id)
        if live.state is not InstanceState.ACTIVE:
            live = await self._admit(instance_id)
        started = self._runtime.now()
        ctx = InstanceContext(live)
        error: BaseException | None = None
        try:
            # The body of _run, inlined because every request passes here.
            return await live.run(
                "on_request", lambda: live.obj.on_request(ctx, payload), self._request_timeout
            )
        except BaseException as exc:
            error = exc
            if (
                isinstance(exc, HandlerError)
                and live.activation_failed
                and live.state is InstanceState.ACTIVE
            ):
                try:
                    await self._shutdown(live)
                except BaseException as failure:
                    error = failure
                    raise
            raise
        finally:
            self._observer.request_finished(instance_id, self._runtime.now() - started, error)

    async def connect(
        self,
        instance_id: str,
        meta: dict[str, Any] | None = None,
        on_message: MessageHandler | None = None,
    ) -> Connection:
        """Open a duplex connection to the instance and return the caller's end.

        Args:
            instance_id: the instance to connect to.
            meta: passed to ``on_connect`` as ``connection.meta``.
            on_message: called with each message the instance sends; without it, use
                ``receive()`` or ``async for`` on the returned connection.

        Raises:
            NotOwnerError: another host owns the instance's shard.
            ConnectionRejectedError: ``on_connect`` rejected the connection or left it pending.
            HandlerError: ``on_connect`` raised.
        """
        live = await self._admit(instance_id)
        self._connection_counter += 1
        connection_id = f"{self._host_id}:{self._connection_counter}"
        incoming = IncomingConnection(connection_id, instance_id, dict(meta or {}))
        caller_end: list[Connection] = []

        def accept(handler: MessageHandler | None) -> Connection:
            caller, instance_end = connect_pair(
                connection_id,
                instance_id,
                incoming.meta,
                self._runtime.event(),
                self._runtime.event(),
            )
            caller._handler = on_message
            instance_end._handler = lambda message: live.handle_message(
                instance_end, message, handler
            )
            swallow = self._observer.error_swallowed
            caller._swallow = swallow
            instance_end._swallow = swallow
            live.connections.add(instance_end)
            instance_end.on_close(lambda _code, _reason: live.connections.discard(instance_end))
            caller_end.append(caller)
            return instance_end

        incoming._accept_hook = accept
        ctx = InstanceContext(live)
        await self._run(live, "on_connect", lambda: live.obj.on_connect(ctx, incoming))
        if incoming.state is IncomingState.ACCEPTED:
            return caller_end[0]
        if incoming.state is IncomingState.REJECTED:
            raise ConnectionRejectedError(instance_id, incoming.reject_reason)
        raise ConnectionRejectedError(
            instance_id, "on_connect neither accepted nor rejected it", unhandled=True
        )

    # -- shutdown ---------------------------------------------------------------------------

    async def shutdown_instance(self, instance_id: str) -> bool:
        """Shut the instance down if it is live here; return whether it was.

        Stops new work, closes its connections, waits for running handlers, runs
        ``on_shutdown`` and drops it. A later request or due alarm re-activates it.
        """
        live = self._instances.get(internal_id(instance_id))
        if live is None:
            return False
        if live.state is not InstanceState.ACTIVE:
            await live.stopped.wait()
            return False
        await self._shutdown(live)
        return True

    async def _shutdown(self, live: LiveInstance) -> None:
        if live.state is not InstanceState.ACTIVE:
            await live.stopped.wait()
            return
        try:
            await live.shutdown()
        finally:
            if self._instances.get(live.internal_id) is live:
                del self._instances[live.internal_id]
            if not live.stopped.is_set():
                live.state = InstanceState.STOPPED
                live.stopped.set()
            self._observer.deactivated(live.instance_id, live.internal_id, live.shard)

    # -- alarms, called by the instance context ----------------------------------------------

    def _alarm_engine(self) -> AlarmEngine:
        require_store(self._store, self._host_id)
        assert self._alarms is not None
        return self._alarms

    async def _set_alarm(self, live: LiveInstance, alarm_id: str, at: float, meta: Any) -> None:
        await self._alarm_engine().set_alarm(live, alarm_id, at, meta)

    async def _cancel_alarm(self, live: LiveInstance, alarm_id: str) -> bool:
        return await self._alarm_engine().cancel_alarm(live, alarm_id)

    async def _list_alarms(self, live: LiveInstance) -> list[Alarm]:
        return await self._alarm_engine().list_alarms(live)

    def __repr__(self) -> str:
        return (
            f"<InterfaceManager host={self._host_id!r} shards={len(self._owned)}/"
            f"{self._placement.shards} state={self._state.value} live={len(self._instances)}>"
        )
