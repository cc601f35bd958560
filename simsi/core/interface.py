"""The user-facing base class and the contexts handed to its handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from simsi.core.alarms import Alarm

if TYPE_CHECKING:
    from simsi.core.connection import Connection, IncomingConnection
    from simsi.core.instance import LiveInstance


class InstanceContext:
    """The handler's access to its identity, the host clock and the instance's alarms.

    The same context works on the production runtime and in the simulator, so an
    interface class that sleeps and reads time only through it runs unchanged in both.
    """

    __slots__ = ("_live",)

    def __init__(self, live: LiveInstance) -> None:
        self._live = live

    @property
    def instance_id(self) -> str:
        """The instance id callers use."""
        return self._live.instance_id

    @property
    def internal_id(self) -> str:
        """The 52-character internal id that alarms are stored under."""
        return self._live.internal_id

    @property
    def shard(self) -> int:
        """The instance's shard."""
        return self._live.shard

    @property
    def host_id(self) -> str:
        """The id of the host running the instance."""
        return self._live.manager.host_id

    def now(self) -> float:
        """Return the host clock's time in seconds since the Unix epoch."""
        return self._live.manager.runtime.now()

    async def sleep(self, seconds: float) -> None:
        """Suspend the handler for ``seconds`` of the host clock."""
        await self._live.manager.runtime.sleep(seconds)

    def random(self) -> float:
        """Return a float in ``[0, 1)`` from the runtime's random source."""
        return self._live.manager.runtime.random()

    async def set_alarm(self, alarm_id: str, at: float, meta: Any = None) -> None:
        """Create or replace the alarm ``alarm_id`` of this instance, due at epoch seconds ``at``.

        Raises:
            InvalidAlarmMetaError: ``meta`` is not JSON-serialisable or too large.
            ConfigError: ``alarm_id`` is empty or ``at`` is not a finite number.
            LifecycleError: the manager has no alarm store.
            StoreError: the store write failed; the alarm may or may not be stored.
        """
        await self._live.manager._set_alarm(self._live, alarm_id, at, meta)

    async def cancel_alarm(self, alarm_id: str) -> bool:
        """Remove the alarm ``alarm_id``; return whether it existed."""
        return await self._live.manager._cancel_alarm(self._live, alarm_id)

    async def list_alarms(self) -> list[Alarm]:
        """Return this instance's pending alarms in ``(fires_at, alarm_id)`` order."""
        return await self._live.manager._list_alarms(self._live)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} instance_id={self.instance_id!r} host={self.host_id!r}>"


class AlarmContext(InstanceContext):
    """The context of an ``on_alarm`` call, which also carries the attempt number."""

    __slots__ = ("_alarm", "_attempt")

    def __init__(self, live: LiveInstance, alarm: Alarm) -> None:
        super().__init__(live)
        self._alarm = alarm
        self._attempt = alarm.attempt + 1

    @property
    def attempt(self) -> int:
        """This delivery's attempt number, starting at 1; persisted across restarts."""
        return self._attempt

    @property
    def alarm(self) -> Alarm:
        """The alarm being delivered."""
        return self._alarm


class StableInterface:
    """Base class of user interface classes: one live object per instance id in the cluster.

    The manager creates an instance with ``factory(instance_id)``, so a subclass
    whose ``__init__`` takes the instance id (like this one) is its own factory.
    Override the handlers you need. By default an instance takes turns: requests,
    alarms and connection messages run one at a time in arrival order. Set
    ``reentrant = True`` on the class to let them interleave.
    """

    reentrant: ClassVar[bool] = False

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id

    async def on_activate(self, ctx: InstanceContext) -> None:
        """Run once before the instance's first handler (load state here)."""

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        """Handle a request and return its response."""
        raise NotImplementedError(f"{type(self).__name__} does not handle requests")

    async def on_connect(self, ctx: InstanceContext, connection: IncomingConnection) -> None:
        """Accept or reject an incoming connection; leaving it pending rejects it."""

    async def on_message(self, ctx: InstanceContext, connection: Connection, message: Any) -> None:
        """Handle a message on an accepted connection that has no handler of its own."""

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        """Handle a due alarm; raising makes the manager retry it with backoff."""
        raise NotImplementedError(f"{type(self).__name__} does not handle alarms")

    async def on_shutdown(self, ctx: InstanceContext) -> None:
        """Run once after the last handler finished, before the instance is dropped."""
