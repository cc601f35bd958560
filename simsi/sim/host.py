"""Simulated hosts and their incarnations.

A :class:`SimHost` is a host id in one fleet, with a machine clock and the
cluster configuration its next process starts with. Each process that runs as
that host is an :class:`Incarnation` with its own
:class:`~simsi.sim.runtime.SimRuntime`, store handle and
:class:`~simsi.core.manager.InterfaceManager`. A restart makes a new incarnation.
A duplicate host identity is a second incarnation of the same host id running
at the same time, on another machine with its own clock. A host of a second
fleet (blue/green) is another :class:`SimHost` with the same host id; its
processes are named ``"green:host-1#0"``.

Only a *ready* incarnation (started, first alarm pages loaded, not stopping)
receives messages, as a Kubernetes Service routes only to ready pods.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.alarms import Alarm, DoneReason
from simsi.core.errors import HandlerError, LifecycleError, NotOwnerError
from simsi.core.manager import InterfaceFactory, InterfaceManager
from simsi.core.observer import ManagerObserver
from simsi.core.placement import Placement
from simsi.sim.clock import HostClock
from simsi.sim.network import Message
from simsi.sim.rng import component_random
from simsi.sim.runtime import SimRuntime
from simsi.sim.store import SimAlarmStore
from simsi.sim.trace import MICROS, Trace


class IncarnationState(enum.Enum):
    """Lifecycle of one host process."""

    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"


@dataclass
class HostServices:
    """The world's parts every incarnation shares: clock, trace, store and configuration.

    Attributes:
        env: the SimPy environment.
        trace: the simulation trace.
        store: the shared durable alarm store.
        seed: the scenario seed; each incarnation's random source is derived from it.
        placement: the cluster configuration hosts start with.
        factory: creates interface objects.
        true_owner: returns the host that owns an instance id in the authoritative config.
        respond: sends a response from an incarnation to the client.
        alarm_options: alarm delivery tuning for every manager.
        alarm_handled_hooks: called inside ``ManagerObserver.alarm_handled``, after the
            handler succeeded and before ``mark_alarm_done``; a fault can kill the
            runtime there.
    """

    env: simpy.Environment
    trace: Trace
    store: SimAlarmStore
    seed: int
    placement: Placement
    factory: InterfaceFactory
    true_owner: Callable[[str], str]
    respond: Callable[[Incarnation, int, str], None]
    alarm_options: AlarmOptions = field(default_factory=AlarmOptions)
    alarm_handled_hooks: list[Callable[[Incarnation, Alarm], None]] = field(default_factory=list)


MAIN_FLEET = "main"
"""The fleet of the hosts that start at true time 0; its process labels have no fleet prefix."""


class SimHost:
    """One host id in one fleet, its machine clock and every incarnation that ran as it.

    Args:
        host_id: the host id, like ``"host-1"``.
        clock: the clock of the machine its processes run on.
        fleet: the fleet's name; :data:`MAIN_FLEET` for the hosts that start at time 0.
        placement: the configuration its next process routes by, or ``None`` for the
            world's starting configuration.
    """

    def __init__(
        self,
        host_id: str,
        clock: HostClock,
        fleet: str = MAIN_FLEET,
        placement: Placement | None = None,
    ) -> None:
        self.host_id = host_id
        self.clock = clock
        self.fleet = fleet
        self.placement = placement
        self.incarnations: list[Incarnation] = []

    @property
    def key(self) -> str:
        """The name messages address: the host id, prefixed ``"fleet:"`` outside the main fleet."""
        return self.host_id if self.fleet == MAIN_FLEET else f"{self.fleet}:{self.host_id}"

    def live(self) -> list[Incarnation]:
        """Return the incarnations that have neither stopped nor crashed, oldest first."""
        ended = (IncarnationState.STOPPED, IncarnationState.CRASHED)
        return [inc for inc in self.incarnations if inc.state not in ended]

    def receivers(self) -> list[Incarnation]:
        """Return the incarnations that receive messages now, oldest first."""
        return [inc for inc in self.incarnations if inc.state is IncarnationState.READY]

    def __repr__(self) -> str:
        return f"<SimHost {self.host_id!r} incarnations={len(self.incarnations)}>"


class Incarnation:
    """One process running as a host: runtime, store handle, manager and state.

    Args:
        services: what the world shares with every incarnation.
        host: the host this process claims to be.
        clock: the clock of the machine it runs on.
        placement: the cluster configuration this process routes by; defaults to
            the host's placement, or else ``services.placement``.
    """

    def __init__(
        self,
        services: HostServices,
        host: SimHost,
        clock: HostClock,
        placement: Placement | None = None,
    ) -> None:
        self.services = services
        self.host = host
        self.number = len(host.incarnations)
        self.label = f"{host.key}#{self.number}"
        self.clock = clock
        env = services.env
        self.runtime = SimRuntime(
            env, clock, component_random(services.seed, f"runtime:{self.label}"), self.label
        )
        self.observer = TraceObserver(self)
        self.store = services.store.handle(self.runtime, self.label)
        placement = placement or host.placement or services.placement
        self.placement = placement
        self.manager = InterfaceManager(
            host.host_id,
            list(placement.hosts),
            placement.shards,
            services.factory,
            runtime=self.runtime,
            store=self.store,
            alarm_options=services.alarm_options,
            observer=self.observer,
        )
        self.state = IncarnationState.STARTING
        self.ready = env.event()
        self.ended = env.event()
        host.incarnations.append(self)

    @property
    def host_id(self) -> str:
        """The host id this process claims."""
        return self.host.host_id

    def record(self, kind: str, **fields: Any) -> None:
        """Record a trace event naming this incarnation."""
        self.services.trace.record(kind, host=self.host_id, inc=self.label, **fields)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the manager; the incarnation takes messages once its alarms are loaded."""
        self.record("host_start")
        self.runtime.spawn(self._boot(), name=f"boot:{self.label}")

    async def _boot(self) -> None:
        await self.manager.start()
        await self.manager.wait_ready()
        if self.state is IncarnationState.STARTING:
            self.state = IncarnationState.READY
            self.ready.succeed()

    def crash(self, cause: str | None = None) -> None:
        """Kill the process: pending coroutines are dropped and later effects rejected.

        Args:
            cause: why, when it is not a plain crash fault, like ``"drain_timeout"``;
                recorded in the ``host_crash`` event.
        """
        if self.state in (IncarnationState.STOPPED, IncarnationState.CRASHED):
            return
        self.state = IncarnationState.CRASHED
        if cause is None:
            self.record("host_crash")
        else:
            self.record("host_crash", cause=cause)
        self.runtime.kill()
        self._end()

    def stop(self, drain_s: float | None = None) -> None:
        """Stop gracefully: stop taking messages, close the manager, then exit.

        Args:
            drain_s: true seconds the process may drain; if the manager has not
                closed by then, the process is killed, as Kubernetes sends SIGKILL
                after ``terminationGracePeriodSeconds``. ``None`` waits without limit.
        """
        if self.state not in (IncarnationState.STARTING, IncarnationState.READY):
            return
        self.state = IncarnationState.STOPPING
        if drain_s is None:
            self.record("host_stopping")
        else:
            self.record("host_stopping", drain_s=drain_s)
            timer = self.services.env.timeout(drain_s)
            timer.callbacks.append(lambda _event: self._drain_expired())
        self.runtime.spawn(self._close(), name=f"close:{self.label}")

    def _drain_expired(self) -> None:
        if self.state is IncarnationState.STOPPING:
            self.crash(cause="drain_timeout")

    async def _close(self) -> None:
        await self.manager.close()
        if self.state is not IncarnationState.STOPPING:
            return
        self.state = IncarnationState.STOPPED
        self.record("host_stop")
        # The process exits: anything still scheduled on its runtime dies with it.
        self.runtime.kill()
        self._end()

    def _end(self) -> None:
        if not self.ended.triggered:
            self.ended.succeed()

    # -- requests ------------------------------------------------------------------------

    def serve(self, message: Message) -> None:
        """Handle an arrived request message and respond to the client."""
        self.runtime.spawn(self._serve(message), name=f"request:{message.rid}")

    async def _serve(self, message: Message) -> None:
        body = message.body
        instance_id = body["inst"]
        outcome = "ok"
        error = None
        try:
            await self.manager.request(instance_id, body["payload"])
        except NotOwnerError:
            outcome = "not_owner"
        except HandlerError as exc:
            outcome = "handler_error"
            error = type(exc.__cause__).__name__
        except LifecycleError as exc:
            outcome = "closed"
            error = type(exc).__name__
        fields: dict[str, Any] = {"rid": message.rid, "inst": instance_id, "outcome": outcome}
        if error is not None:
            fields["error"] = error
        self.record("request_served", owner=self.services.true_owner(instance_id), **fields)
        self.services.respond(self, message.rid, outcome)

    def __repr__(self) -> str:
        return f"<Incarnation {self.label} {self.state.value}>"


class TraceObserver(ManagerObserver):
    """Turns one incarnation's manager events into trace events.

    Events of a killed incarnation are dropped: they come from coroutines closed
    by the kill, which cannot affect the world.
    """

    def __init__(self, incarnation: Incarnation) -> None:
        self._inc = incarnation
        self._env = incarnation.services.env

    def _live(self) -> bool:
        return self._inc.runtime.alive

    def _due_us(self, fires_at: float) -> int:
        due = self._inc.clock.true_time_at(fires_at, self._env.now)
        return round(due * MICROS)

    def _alarm(self, kind: str, alarm: Alarm, **fields: Any) -> None:
        self._inc.record(
            kind, inst=alarm.instance_id, alarm=alarm.alarm_id, rev=alarm.revision, **fields
        )

    def ready(self, host_id: str, alarms_loaded: int) -> None:
        """Record ``host_ready``."""
        if self._live():
            self._inc.record("host_ready", alarms=alarms_loaded)

    def activated(self, instance_id: str, internal_id: str, shard: int) -> None:
        """Record ``activate``."""
        if self._live():
            self._inc.record("activate", inst=instance_id, shard=shard)

    def deactivated(self, instance_id: str, internal_id: str, shard: int) -> None:
        """Record ``deactivate``."""
        if self._live():
            self._inc.record("deactivate", inst=instance_id, shard=shard)

    def handler_failed(self, instance_id: str, handler: str, error: BaseException) -> None:
        """Record ``handler_failed``."""
        if self._live():
            self._inc.record(
                "handler_failed", inst=instance_id, handler=handler, error=type(error).__name__
            )

    def alarm_set(self, shard: int, alarm: Alarm) -> None:
        """Record ``alarm_set`` with the true time the setter's clock reads the due time."""
        if self._live():
            self._alarm(
                "alarm_set",
                alarm,
                fires_at_us=alarm.fires_at_us,
                due_us=self._due_us(alarm.fires_at),
            )

    def alarm_fired(self, shard: int, alarm: Alarm, lag: float) -> None:
        """Record ``alarm_fire``."""
        if self._live():
            self._alarm(
                "alarm_fire",
                alarm,
                attempt=alarm.attempt + 1,
                fires_at_us=alarm.fires_at_us,
                lag=lag,
            )

    def alarm_handled(self, shard: int, alarm: Alarm) -> None:
        """Record ``alarm_handled`` and run the world's hooks for this point."""
        if not self._live():
            return
        self._alarm("alarm_handled", alarm)
        for hook in self._inc.services.alarm_handled_hooks:
            hook(self._inc, alarm)

    def alarm_retry(self, shard: int, alarm: Alarm, error: BaseException, next_at: float) -> None:
        """Record ``alarm_retry`` with the new due time."""
        if self._live():
            self._alarm(
                "alarm_retry",
                alarm,
                attempt=alarm.attempt,
                fires_at_us=alarm.fires_at_us,
                due_us=self._due_us(alarm.fires_at),
                error=type(error).__name__,
            )

    def alarm_done(self, shard: int, alarm: Alarm, reason: DoneReason) -> None:
        """Record ``alarm_done``."""
        if self._live():
            self._alarm("alarm_done", alarm, reason=reason.value)

    def store_failed(
        self, operation: str, shard: int, error: BaseException, *, detail: str = ""
    ) -> None:
        """Record ``store_failed``."""
        if self._live():
            self._inc.record("store_failed", op=operation, shard=shard, error=type(error).__name__)

    def error_swallowed(self, where: str, error: BaseException, *, detail: str = "") -> None:
        """Record ``error``."""
        if self._live():
            # Only the type: messages may hold object reprs that differ between runs.
            self._inc.record("error", where=where, error=type(error).__name__)
