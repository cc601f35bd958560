"""The simulated workload: a client sending Poisson-timed requests, and the built-in interface.

The client picks an instance id uniformly from ``inst-0 .. inst-{N-1}``, sends the
request to the host that owns it in the client's view of the cluster (a
:class:`~simsi.core.placement.Placement`), and waits for the response or gives
up after ``request_timeout_s``. When a second fleet runs, the client first
picks a fleet by the traffic split, then the owner in its view of that fleet.
Every request carries the alarms the instance should set, drawn by the client
from the workload's seeded random source, so the interface class needs no
randomness of its own::

    {"rid": 17, "alarms": [{"id": "r17-0", "delay_s": 3.2}]}

With ``handler_s`` or ``alarm_handler_s`` set, the payload also carries how long
the built-in handlers sleep: ``"handler_s"`` for the request and, per alarm,
``"handler_s"``, which the interface stores in the alarm's meta. A user
interface class (``"pkg.module:Class"``) receives the same payload.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import TYPE_CHECKING, Any

import simpy

from simsi.core.errors import ConfigError
from simsi.core.interface import AlarmContext, InstanceContext, StableInterface
from simsi.core.placement import Placement
from simsi.sim.trace import Trace

if TYPE_CHECKING:
    from simsi.sim.scenario import WorkloadSpec


class CounterInterface(StableInterface):
    """The built-in interface: counts requests and sets the alarms each request lists."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(instance_id)
        self.requests = 0
        self.alarms_handled = 0

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        """Count the request, set the alarms listed in ``payload``, sleep if asked; return the count."""
        self.requests += 1
        if not isinstance(payload, dict):
            return self.requests
        for alarm in payload.get("alarms", []):
            meta: dict[str, Any] = {"rid": payload.get("rid")}
            if "handler_s" in alarm:
                meta["handler_s"] = alarm["handler_s"]
            await ctx.set_alarm(alarm["id"], ctx.now() + alarm["delay_s"], meta)
        if payload.get("handler_s"):
            await ctx.sleep(payload["handler_s"])
        return self.requests

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        """Count the alarm, after sleeping for the meta's ``handler_s`` if it has one."""
        if isinstance(meta, dict) and meta.get("handler_s"):
            await ctx.sleep(meta["handler_s"])
        self.alarms_handled += 1


BUILTIN_INTERFACES: dict[str, type[StableInterface]] = {"counter": CounterInterface}
"""Interface classes that scenarios can name without a module path."""


def resolve_interface(spec: str) -> Callable[[str], StableInterface]:
    """Return the interface factory named by ``spec``: a built-in name or ``"pkg.module:Class"``.

    Raises:
        ConfigError: the name is unknown, the module cannot be imported, or the
            attribute is missing or not callable.
    """
    if spec in BUILTIN_INTERFACES:
        return BUILTIN_INTERFACES[spec]
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"unknown interface {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} of interface {spec!r}: {exc}"
        ) from exc
    except Exception as exc:
        # Importing runs the module's code, which may fail in any way.
        raise ConfigError(
            f"importing module {module_name!r} of interface {spec!r} raised "
            f"{type(exc).__name__}: {exc}; fix the module or name another one"
        ) from exc
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(factory):
        raise ConfigError(f"interface {spec!r} is not a class or callable")
    if isinstance(factory, type) and not issubclass(factory, StableInterface):
        raise ConfigError(
            f"interface {spec!r} is the class {factory.__name__}, which does not derive from "
            "simsi.StableInterface; name a StableInterface subclass or a factory function"
        )
    return factory


@dataclass(slots=True)
class PendingRequest:
    """A request the client sent and has no response or timeout for yet."""

    rid: int
    instance_id: str
    dst: str
    timer: simpy.Timeout


SendRequest = Callable[[int, str, str, dict[str, Any]], None]
"""Sends request ``rid`` for an instance to a host id with a payload."""


class Client:
    """The workload's client: Poisson arrivals, routing by its view, timeouts.

    Args:
        env: the SimPy environment.
        trace: receives ``request``, ``response`` and ``request_timeout`` events.
        spec: the workload parameters.
        rng: the workload's random source.
        view: the cluster as the client sees it.
        send: puts a request on the network.
        stop_at: true time at which the client stops sending.
    """

    def __init__(
        self,
        env: simpy.Environment,
        trace: Trace,
        spec: WorkloadSpec,
        rng: Random,
        view: Placement,
        send: SendRequest,
        stop_at: float,
    ) -> None:
        self._env = env
        self._trace = trace
        self._spec = spec
        self._rng = rng
        self._send = send
        self._stop_at = stop_at
        self.view = view
        # Other fleets: their view and their share of requests, in the order they were split.
        self.fleet_views: dict[str, Placement] = {}
        self.fleet_weights: dict[str, float] = {}
        self._next_rid = 0
        self._pending: dict[int, PendingRequest] = {}
        self.outcomes: dict[str, int] = {}

    def start(self) -> None:
        """Start sending requests as a SimPy process."""
        self._env.process(self._arrivals())

    def _arrivals(self) -> Any:
        env = self._env
        rate = self._spec.request_rate
        while True:
            gap = self._rng.expovariate(rate)
            if env.now + gap >= self._stop_at:
                return
            yield env.timeout(gap)
            self._issue()

    def _issue(self) -> None:
        spec = self._spec
        rng = self._rng
        self._next_rid += 1
        rid = self._next_rid
        instance_id = f"inst-{rng.randrange(spec.instances)}"
        low, high = spec.alarm_delay_s
        alarms: list[dict[str, Any]] = []
        for index in range(spec.alarms_per_request):
            alarm: dict[str, Any] = {
                "id": f"r{rid}-{index}",
                "delay_s": round(rng.uniform(low, high), 6),
            }
            if spec.alarm_handler_s[1] > 0:
                alarm["handler_s"] = round(rng.uniform(*spec.alarm_handler_s), 6)
            alarms.append(alarm)
        payload: dict[str, Any] = {"rid": rid, "alarms": alarms}
        if spec.handler_s[1] > 0:
            payload["handler_s"] = round(rng.uniform(*spec.handler_s), 6)
        dst = self._route(instance_id)
        timer = self._env.timeout(spec.request_timeout_s)
        timer.callbacks.append(lambda _event: self._time_out(rid))
        self._pending[rid] = PendingRequest(rid, instance_id, dst, timer)
        self._trace.record("request", rid=rid, inst=instance_id, dst=dst)
        self._send(rid, instance_id, dst, payload)

    def _route(self, instance_id: str) -> str:
        """Return the host key the request goes to: ``"host-1"``, or ``"green:host-1"``."""
        if not self.fleet_weights:
            return self.view.owner(instance_id)
        draw = self._rng.random()
        for fleet, weight in self.fleet_weights.items():
            if draw < weight:
                return f"{fleet}:{self.fleet_views[fleet].owner(instance_id)}"
            draw -= weight
        return self.view.owner(instance_id)

    def split(self, fleet: str, view: Placement, weight: float) -> None:
        """Send the fraction ``weight`` of requests to ``fleet``, routed by ``view``.

        The main fleet gets what the other fleets leave; weights above 1 in total
        are cut in split order.
        """
        self.fleet_views[fleet] = view
        self.fleet_weights[fleet] = weight
        total = 0.0
        for name in list(self.fleet_weights):
            share = min(self.fleet_weights[name], max(0.0, 1.0 - total))
            self.fleet_weights[name] = share
            total += share

    def receive(self, rid: int, outcome: str) -> None:
        """Take the response to request ``rid``; late responses are ignored."""
        pending = self._pending.pop(rid, None)
        if pending is None:
            return
        pending.timer.callbacks.clear()
        self._count(outcome)
        self._trace.record("response", rid=rid, inst=pending.instance_id, outcome=outcome)

    def _time_out(self, rid: int) -> None:
        pending = self._pending.pop(rid, None)
        if pending is None:
            return
        self._count("timeout")
        self._trace.record("request_timeout", rid=rid, inst=pending.instance_id)

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    @property
    def sent(self) -> int:
        """Requests sent so far."""
        return self._next_rid

    @property
    def in_flight(self) -> int:
        """Requests with neither a response nor a timeout yet."""
        return len(self._pending)
