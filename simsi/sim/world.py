"""The simulated world: hosts, network, store, client and faults on one SimPy clock.

:func:`run_scenario` builds a :class:`World` from a scenario and runs it::

    result = run_scenario(load_scenario("scenarios/quickstart.toml"), seed=3)
    print(result.checks.single_instance.holds, result.digest)

Every host in the pattern starts at true time 0, the client sends requests until
``duration_s``, and the run ends at ``duration_s + drain_s``. Faults apply at
their ``at`` times in schedule order. All randomness comes from the seed, split
per component (``network``, ``store``, ``workload`` and one source per
incarnation runtime), so the same scenario and seed give the same trace.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import simpy

from simsi.core.errors import LifecycleError
from simsi.core.placement import Placement
from simsi.sim.checkers import CheckResults, check_all
from simsi.sim.clock import HostClock
from simsi.sim.faults import Fault, apply_fault, fault_params
from simsi.sim.host import HostServices, Incarnation, IncarnationState, SimHost
from simsi.sim.network import Message, Network
from simsi.sim.rng import component_random
from simsi.sim.scenario import Scenario, validate_scenario
from simsi.sim.store import SimAlarmStore
from simsi.sim.trace import MICROS, Trace
from simsi.sim.workload import Client, resolve_interface

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStats:
    """Counters of one run.

    Attributes:
        events: SimPy events processed.
        sim_s: simulated true seconds.
        wall_s: wall-clock seconds the run took (not part of the trace or digest).
        trace_events: events in the trace.
        messages_sent: network messages sent.
        messages_dropped: messages lost or unreachable.
        store_calls: calls that reached the simulated store.
        store_failures: store calls failed by an outage.
        stored_alarms_left: alarms still in the store when the run ended.
    """

    events: int
    sim_s: float
    wall_s: float
    trace_events: int
    messages_sent: int
    messages_dropped: int
    store_calls: int
    store_failures: int
    stored_alarms_left: int

    @property
    def sim_per_wall(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.sim_s / self.wall_s if self.wall_s > 0 else math.inf


@dataclass(frozen=True)
class SimResult:
    """The outcome of one run: the trace, its digest, the checks and counters."""

    scenario: Scenario
    seed: int
    trace: Trace
    digest: str
    checks: CheckResults
    stats: RunStats


class World:
    """One simulated cluster built from a scenario.

    Args:
        scenario: the scenario; it is checked with :func:`validate_scenario`.
        seed: overrides ``scenario.run.seed``.

    Raises:
        ScenarioError: the scenario is invalid.
    """

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        scenario = validate_scenario(scenario)
        if seed is not None:
            scenario = scenario.with_seed(seed)
        self.scenario = scenario
        self.seed = scenario.run.seed

        self.env = simpy.Environment()
        self.trace = Trace(lambda: self.env.now)
        cluster = scenario.cluster
        self.placement = Placement(cluster.hosts, cluster.shards)
        self.store = SimAlarmStore(
            self.env, self.trace, self._random("store"), scenario.store.latency_ms
        )

        self.network = Network(
            self.env,
            self.trace,
            self._random("network"),
            scenario.network.latency_ms,
            scenario.network.loss,
        )
        self.services = HostServices(
            env=self.env,
            trace=self.trace,
            store=self.store,
            seed=self.seed,
            placement=self.placement,
            factory=resolve_interface(cluster.interface),
            true_owner=self.placement.owner,
            respond=self._respond,
        )

        self.hosts = {host_id: SimHost(host_id, HostClock()) for host_id in self.placement.hosts}
        self.client = Client(
            self.env,
            self.trace,
            scenario.workload,
            self._random("workload"),
            self.placement,
            self._send_request,
            scenario.run.duration_s,
        )
        self.events_processed = 0
        self._ran = False

    def _random(self, component: str) -> Any:
        return component_random(self.seed, component)

    # -- running ---------------------------------------------------------------------------

    def run(self) -> SimResult:
        """Run the scenario to its end and check the trace.

        Raises:
            LifecycleError: the world has already run; build a new one to run again.
        """
        if self._ran:
            raise LifecycleError(
                f"world of scenario {self.scenario.name!r} has already run; "
                "build a new World (or call run_scenario) for another run"
            )
        self._ran = True
        started = time.perf_counter()
        end = self.scenario.run.end_s
        for host in self.hosts.values():
            Incarnation(self.services, host, host.clock).start()
        self.client.start()
        self.env.process(self._fault_schedule(self.scenario.faults))

        env = self.env
        events = 0
        while env.peek() <= end:
            env.step()
            events += 1
        env.run(until=end)
        self.events_processed = events
        wall = time.perf_counter() - started

        end_us = round(end * MICROS)
        expect = self.scenario.expect
        checks = check_all(self.trace.events, end_us, expect.alarm_grace_s)
        stats = RunStats(
            events=events,
            sim_s=end,
            wall_s=wall,
            trace_events=len(self.trace),
            messages_sent=self.network.sent,
            messages_dropped=self.network.dropped,
            store_calls=self.store.calls,
            store_failures=self.store.failures,
            stored_alarms_left=len(self.store.all_alarms(self.placement.shards)),
        )

        logger.debug(
            "run of %r seed %d: %d events in %.3f s", self.scenario.name, self.seed, events, wall
        )
        return SimResult(self.scenario, self.seed, self.trace, self.trace.digest(), checks, stats)

    def _fault_schedule(self, faults: Iterable[Fault]) -> Generator[simpy.Event, Any, None]:
        indexed = sorted(enumerate(faults), key=lambda item: (item[1].at, item[0]))
        for _index, fault in indexed:
            if fault.at > self.env.now:
                yield self.env.timeout(fault.at - self.env.now)
            params = fault_params(fault)
            self.trace.record("fault", fault=fault.kind, host=fault.host, params=params)
            apply_fault(self, fault)

    def now(self) -> float:
        """Return the current true time in seconds."""
        return self.env.now

    # -- messages --------------------------------------------------------------------------

    def _send_request(self, rid: int, instance_id: str, dst: str, payload: Any) -> None:
        body = {"inst": instance_id, "payload": payload}
        self.network.send(Message("request", rid, "client", dst, body), self._find_host)

    def _find_host(self, message: Message) -> Callable[[], None] | None:
        host = self.hosts.get(message.dst)
        if host is None:
            return None
        receivers = host.receivers()
        if not receivers:
            return None
        incarnation: Incarnation = self.network.choose(receivers)
        return lambda: incarnation.serve(message)

    def _respond(self, incarnation: Incarnation, rid: int, outcome: str) -> None:
        incarnation.runtime.check_alive(f"network send of the response to request {rid}")
        message = Message("response", rid, incarnation.label, "client", outcome)
        self.network.send(message, self._find_client)

    def _find_client(self, message: Message) -> Callable[[], None]:
        return lambda: self.client.receive(message.rid, message.body)

    # -- fault targets ---------------------------------------------------------------------

    def _skip(self, reason: str) -> None:
        self.trace.record("fault_skipped", reason=reason)

    def _pick(self, host_id: str, incarnation: str) -> list[Incarnation]:
        live = self.hosts[host_id].live()
        if not live:
            self._skip(f"no live incarnation of {host_id!r}")
            return []
        if incarnation == "oldest":
            return live[:1]
        if incarnation == "newest":
            return live[-1:]
        return live

    def crash_host(self, host_id: str, incarnation: str) -> None:
        """Kill the live incarnations of ``host_id`` chosen by ``incarnation`` (all/oldest/newest)."""
        for chosen in self._pick(host_id, incarnation):
            chosen.crash()

    def stop_host(self, host_id: str, incarnation: str) -> None:
        """Gracefully stop the live incarnations of ``host_id`` chosen by ``incarnation``."""
        for chosen in self._pick(host_id, incarnation):
            chosen.stop()

    def start_host(self, host_id: str) -> None:
        """Start a new incarnation of ``host_id`` on its machine's clock."""
        host = self.hosts[host_id]
        if host.live():
            self._skip(f"restart of {host_id!r}: an incarnation is still running")
            return
        Incarnation(self.services, host, host.clock).start()

    def replace_host(self, host_id: str, start_delay_s: float) -> None:
        """Stop ``host_id`` gracefully and start its replacement once it stopped."""
        self.env.process(self._replace(host_id, start_delay_s))

    def _replace(self, host_id: str, start_delay_s: float) -> Generator[simpy.Event, Any, None]:
        host = self.hosts[host_id]
        old = host.live()
        for incarnation in old:
            incarnation.stop()
        for incarnation in old:
            yield incarnation.ended
        if start_delay_s > 0:
            yield self.env.timeout(start_delay_s)
        if host.live():
            self._skip(f"replacement of {host_id!r}: an incarnation is already running")
            return
        replacement = Incarnation(self.services, host, host.clock)
        replacement.start()
        yield replacement.ready | replacement.ended

    def rolling_update(self, start_delay_s: float, min_ready_s: float, order: str) -> None:
        """Replace every host one at a time, as a StatefulSet ``RollingUpdate`` does.

        Each host is stopped gracefully; its replacement starts ``start_delay_s``
        after it exited, and the next host is replaced ``min_ready_s`` after the
        replacement became ready. ``order="descending"`` goes from the highest
        ordinal down, as Kubernetes does.
        """
        host_ids = list(self.placement.hosts)
        if order == "descending":
            host_ids.reverse()
        self.env.process(self._rolling_update(host_ids, start_delay_s, min_ready_s))

    def _rolling_update(
        self, host_ids: list[str], start_delay_s: float, min_ready_s: float
    ) -> Generator[simpy.Event, Any, None]:
        for host_id in host_ids:
            self.trace.record("rollout_step", host=host_id)
            yield from self._replace(host_id, start_delay_s)
            if min_ready_s > 0:
                yield self.env.timeout(min_ready_s)
        self.trace.record("rollout_done")

    def host_clock(self, host_id: str) -> HostClock:
        """Return the clock of ``host_id``'s machine."""
        return self.hosts[host_id].clock

    def duplicate_host(self, host_id: str, offset_s: float, drift_ppm: float) -> None:
        """Start a second process claiming ``host_id`` on another machine with its own clock."""
        host = self.hosts[host_id]
        clock = HostClock(offset=offset_s, drift_ppm=drift_ppm)
        Incarnation(self.services, host, clock).start()

    def store_outage(self, duration_s: float) -> None:
        """Make the alarm store unavailable for ``duration_s`` true seconds."""
        self.store.outage(duration_s)

    def live_incarnations(self) -> list[Incarnation]:
        """Return every live incarnation, by host id then age."""
        return [inc for host_id in sorted(self.hosts) for inc in self.hosts[host_id].live()]

    def incarnation(self, label: str) -> Incarnation:
        """Return the incarnation named ``label``, like ``"host-1#0"``.

        Raises:
            KeyError: no such incarnation exists.
        """
        host_id, _, number = label.rpartition("#")
        host = self.hosts.get(host_id)
        if host is None or not number.isdigit() or int(number) >= len(host.incarnations):
            raise KeyError(f"no incarnation {label!r}; labels look like 'host-0#0'")
        return host.incarnations[int(number)]


def run_scenario(scenario: Scenario, seed: int | None = None) -> SimResult:
    """Build a :class:`World` for ``scenario`` and run it.

    Args:
        scenario: the scenario to run.
        seed: overrides the scenario's seed.

    Raises:
        ScenarioError: the scenario is invalid.
    """
    return World(scenario, seed=seed).run()


__all__ = ["IncarnationState", "RunStats", "SimResult", "World", "run_scenario"]
