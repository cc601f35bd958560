"""An interactive simulated cluster for tests and notebooks.

:class:`SimCluster` wraps the simulator's world so a test can act one step at a
time: send a request and get its response, let simulated time pass, crash or
restart a host, skew a clock, and check the invariants over the trace so far::

    cluster = SimCluster(MyInterface, hosts="host-{0..2}", shards=16, seed=1)
    assert cluster.request("cart-1", {"add": "apple"}).value == 1
    cluster.crash("host-1")
    cluster.advance(30)
    cluster.restart("host-1")
    cluster.check()          # raises InvariantViolation with the first counterexample

Requests go straight to the owning host's manager, skipping the simulated
network, so the test sees the handler's return value. Everything else (clocks,
the shared alarm store, alarm delivery, crashes) is the simulator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simsi.core.errors import HandlerError, LifecycleError, NotOwnerError, SimsiError
from simsi.core.interface import StableInterface
from simsi.sim.checkers import CheckResults, check_all
from simsi.sim.host import Incarnation, IncarnationState
from simsi.sim.scenario import Scenario, scenario_from_dict
from simsi.sim.trace import MICROS
from simsi.sim.world import World


class InvariantViolation(SimsiError, AssertionError):
    """A simulated run broke the single-instance, routing or alarm-delivery guarantee.

    Attributes:
        checks: the checker results, with the first counterexample of each failed check.
    """

    def __init__(self, message: str, checks: CheckResults) -> None:
        super().__init__(message)
        self.checks = checks


@dataclass(frozen=True)
class Response:
    """The outcome of :meth:`SimCluster.request`.

    Attributes:
        status: ``"ok"``, ``"handler_error"``, ``"unavailable"`` (no ready process
            owns the id), ``"closed"`` (the process was stopping) or ``"timeout"``.
        value: the handler's return value when ``status == "ok"``.
        error: the handler's exception (the ``HandlerError``'s cause) or the refusal.
        incarnation: the process that served it, like ``"host-1#0"``, if any.
    """

    status: str
    value: Any = None
    error: BaseException | None = None
    incarnation: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the handler returned normally."""
        return self.status == "ok"


class SimCluster:
    """A simulated cluster driven step by step.

    Args:
        interface: the interface class under test, or a ``"pkg.module:Class"`` path.
        hosts: the host pattern.
        shards: the number of shards.
        seed: the seed of every random choice in the simulation.
        store_latency_ms: ``(min, max)`` latency of each alarm store call.
        scenario: extra scenario tables (``alarms``, ``store``, ...) merged into the
            defaults; see :mod:`simsi.sim.scenario` for the keys.
    """

    def __init__(
        self,
        interface: type[StableInterface] | str,
        *,
        hosts: str = "host-{0..2}",
        shards: int = 16,
        seed: int = 0,
        store_latency_ms: tuple[float, float] = (1.0, 3.0),
        scenario: dict[str, Any] | None = None,
    ) -> None:
        path = interface if isinstance(interface, str) else "counter"
        tables: dict[str, Any] = {
            "name": "interactive",
            "cluster": {"hosts": hosts, "shards": shards, "interface": path},
            "store": {"latency_ms": list(store_latency_ms)},
            "run": {"seed": seed, "duration_s": 1, "drain_s": 0},
        }
        for key, value in (scenario or {}).items():
            if isinstance(value, dict) and isinstance(tables.get(key), dict):
                tables[key] = {**tables[key], **value}
            else:
                tables[key] = value
        self._scenario: Scenario = scenario_from_dict(tables)
        self._world = World(self._scenario)
        if not isinstance(interface, str):
            self._world.services.factory = interface
        for host in self._world.hosts.values():
            Incarnation(self._world.services, host, host.clock).start()
        self._request_count = 0
        self.settle()

    # -- read-only state ---------------------------------------------------------------------

    @property
    def world(self) -> World:
        """The underlying simulated world (hosts, store, network, trace)."""
        return self._world

    @property
    def now(self) -> float:
        """True simulated time in seconds since the start."""
        return float(self._world.env.now)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The host ids of the pattern."""
        return self._world.placement.hosts

    def owner(self, instance_id: str) -> str:
        """Return the host that owns ``instance_id``."""
        return self._world.placement.owner(instance_id)

    def stored_alarms(self) -> int:
        """Return how many alarms the shared store holds now."""
        return len(self._world.store.all_alarms(self._world.placement.shards))

    # -- acting ------------------------------------------------------------------------------

    def request(self, instance_id: str, payload: Any = None, *, timeout: float = 10.0) -> Response:
        """Send a request to the oldest ready process of the owning host and wait for it.

        Simulated time advances until the response arrives or ``timeout`` true seconds
        pass. A timed-out handler keeps running in the simulation.
        """
        host = self._world.hosts[self.owner(instance_id)]
        receivers = host.receivers()
        if not receivers:
            return Response(
                "unavailable", error=LookupError(f"no ready process of {host.host_id!r}")
            )
        incarnation = receivers[0]
        self._request_count += 1
        task = incarnation.runtime.spawn(
            incarnation.manager.request(instance_id, payload),
            name=f"test-request:{self._request_count}",
        )
        self._run_until(lambda: task.done(), self.now + timeout)
        label = incarnation.label
        if not task.done():
            return Response("timeout", incarnation=label)
        try:
            value = task.result()
        except HandlerError as exc:
            return Response("handler_error", error=exc.__cause__, incarnation=label)
        except (LifecycleError, NotOwnerError, SimsiError) as exc:
            return Response("closed", error=exc, incarnation=label)
        return Response("ok", value=value, incarnation=label)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of true simulated time pass."""
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative time, got {seconds!r} s")
        env = self._world.env
        target = env.now + seconds
        if target <= env.now:
            while env.peek() <= env.now:
                env.step()
            return
        env.run(until=target)

    def settle(self, limit_s: float = 60.0) -> None:
        """Advance until every live process is ready, or ``limit_s`` true seconds pass."""

        def settled() -> bool:
            return all(
                inc.state is not IncarnationState.STARTING
                for inc in self._world.live_incarnations()
            )

        self._run_until(settled, self.now + limit_s)

    def crash(self, host_id: str) -> None:
        """Kill every live process of ``host_id`` at once."""
        self._check_host(host_id)
        self._world.trace.record("fault", fault="crash", host=host_id, params={})
        self._world.crash_host(host_id, "all")

    def stop(self, host_id: str) -> None:
        """Stop every live process of ``host_id`` gracefully and wait for it to exit."""
        self._check_host(host_id)
        self._world.trace.record("fault", fault="stop", host=host_id, params={})
        self._world.stop_host(host_id, "all")
        self._run_until(lambda: not self._world.hosts[host_id].live(), self.now + 600)

    def restart(self, host_id: str) -> None:
        """Start a new process of ``host_id`` if none runs, and wait until it is ready."""
        self._check_host(host_id)
        self._world.trace.record("fault", fault="restart", host=host_id, params={})
        self._world.start_host(host_id)
        self.settle()

    def set_clock_offset(self, host_id: str, offset_s: float) -> None:
        """Set the offset of ``host_id``'s machine clock from true time, in seconds."""
        self._check_host(host_id)
        self._world.trace.record(
            "fault", fault="clock_offset", host=host_id, params={"offset_s": offset_s}
        )
        self._world.host_clock(host_id).set_offset(offset_s, at=self.now)

    def drain(self, seconds: float = 120.0) -> None:
        """Advance long enough for pending alarms and their retries to finish."""
        self.advance(seconds)

    # -- checking ----------------------------------------------------------------------------

    def results(self, grace_s: float | None = None) -> CheckResults:
        """Run the checkers over the trace so far.

        Args:
            grace_s: how long past its due time an alarm may still be pending before it
                counts as lost; defaults to the scenario's ``alarm_grace_s``.
        """
        grace = self._scenario.expect.alarm_grace_s if grace_s is None else grace_s
        return check_all(self._world.trace.events, round(self.now * MICROS), grace)

    def check(self, *, alarms: bool = True, grace_s: float | None = None) -> CheckResults:
        """Raise :class:`InvariantViolation` if a guarantee is broken so far; else return the results.

        Args:
            alarms: also require that no alarm is lost. Leave it off while alarms may
                legitimately wait for a crashed host to come back.
            grace_s: see :meth:`results`.
        """
        checks = self.results(grace_s)
        problems = []
        first_overlap = checks.single_instance.first
        if first_overlap is not None:
            problems.append(f"single instance violated: {first_overlap.describe()}")
        if checks.routing.first_misrouted is not None:
            rid, instance_id, inc, owner = checks.routing.first_misrouted
            problems.append(
                f"routing violated: request {rid} for {instance_id!r} served by {inc}, owner {owner}"
            )
        if alarms and checks.alarms.lost:
            lost = checks.alarms.lost
            problems.append(f"alarm delivery violated: {len(lost)} lost, first {lost[0]}")
        if problems:
            raise InvariantViolation("; ".join(problems), checks)
        return checks

    # -- helpers -----------------------------------------------------------------------------

    def _check_host(self, host_id: str) -> None:
        if host_id not in self._world.hosts:
            raise KeyError(f"unknown host {host_id!r}; hosts are {list(self.hosts)!r}")

    def _run_until(self, condition: Any, deadline: float) -> None:
        env = self._world.env
        while not condition() and env.peek() <= deadline:
            env.step()
        if not condition() and env.now < deadline:
            env.run(until=deadline)

    def __repr__(self) -> str:
        return f"<SimCluster hosts={list(self.hosts)!r} now={self.now:.3f}>"
