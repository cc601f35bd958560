"""The simulated world: hosts, network, store, client and faults on one SimPy clock.

:func:`run_scenario` builds a :class:`World` from a scenario and runs it::

    result = run_scenario(load_scenario("scenarios/quickstart.toml"), seed=3)
    print(result.checks.single_instance.holds, result.digest)

Every host in the pattern starts at true time 0, the client sends requests until
``duration_s``, and the run ends at ``duration_s + drain_s``. Faults apply at
their ``at`` times in schedule order; a ``[faults_random]`` budget adds faults
drawn from the seed. All randomness comes from the seed, split per component
(``network``, ``store``, ``kv``, ``workload``, ``faults``, ``preload`` and one
source per incarnation runtime), so the same scenario and seed give the same trace.

The process, clock and store faults are in :class:`~simsi.sim.lifecycle.LifecycleOps`,
the fleet and rollout faults in :class:`~simsi.sim.fleets.FleetOps`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import simpy

from simsi.core.alarms import Alarm, to_micros
from simsi.core.errors import LifecycleError
from simsi.core.placement import Placement, internal_id
from simsi.sim.checkers import CheckResults, check_all
from simsi.sim.clock import DEFAULT_EPOCH, HostClock
from simsi.sim.faults import Fault, apply_fault, fault_params
from simsi.sim.fleets import FleetOps
from simsi.sim.host import MAIN_FLEET, HostServices, Incarnation, IncarnationState, SimHost
from simsi.sim.kv import SimKV
from simsi.sim.lifecycle import LifecycleOps
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
        store_failures: store calls failed by an outage, a partition or the backend.
        stored_alarms_left: alarms still in the store when the run ended.
        peak_store_reads: the maximum number of store reads in flight at once.
        messages_duplicated: extra copies sent by duplication faults.
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
    peak_store_reads: int = 0
    messages_duplicated: int = 0

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


class World(LifecycleOps, FleetOps):
    """One simulated cluster built from a scenario.

    Args:
        scenario: the scenario; it is checked with :func:`validate_scenario`.
        seed: overrides ``scenario.run.seed``.

    Attributes:
        placement: the main fleet's starting configuration.
        authority: the configuration in force: ``placement`` until a rollout starts.
        hosts: the main fleet's hosts by host id.
        fleets: every fleet's hosts by fleet name, the main fleet included.
        faults: the fixed faults and those drawn from ``[faults_random]``, by time.

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
        self.authority = self.placement
        self.store = SimAlarmStore(
            self.env,
            self.trace,
            self._random("store"),
            scenario.store.latency_ms,
            kv=self._kv(),
        )
        self.network = Network(
            self.env,
            self.trace,
            self._random("network"),
            scenario.network.latency_ms,
            scenario.network.loss,
        )
        self.store.link = self.network.blocked
        self.services = HostServices(
            env=self.env,
            trace=self.trace,
            store=self.store,
            seed=self.seed,
            placement=self.placement,
            factory=resolve_interface(cluster.interface),
            true_owner=self._true_owner,
            respond=self._respond,
            alarm_options=scenario.alarms.options(),
        )

        self.hosts = {host_id: SimHost(host_id, HostClock()) for host_id in self.placement.hosts}
        self.fleets = {MAIN_FLEET: self.hosts}
        self.client = Client(
            self.env,
            self.trace,
            scenario.workload,
            self._random("workload"),
            self.placement,
            self._send_request,
            scenario.run.duration_s,
        )
        self.faults = self._schedule()
        self.events_processed = 0
        self._ran = False

    def _random(self, component: str) -> Any:
        return component_random(self.seed, component)

    def _kv(self) -> SimKV | None:
        spec = self.scenario.store
        if spec.kind != "foundationdb":
            return None
        return SimKV(
            clock=lambda: self.env.now,
            rng=self._random("kv"),
            conflict_probability=spec.conflict_probability,
            unknown_result_probability=spec.commit_unknown_probability,
            unknown_applied_probability=spec.unknown_applied_probability,
        )

    def _schedule(self) -> tuple[Fault, ...]:
        fixed = self.scenario.faults
        budget = self.scenario.faults_random
        if budget is None:
            return fixed
        drawn = budget.draw(self._random("faults"), fixed, hosts=self.placement.hosts)
        return (*fixed, *drawn)

    def _true_owner(self, instance_id: str) -> str:
        return self.authority.owner(instance_id)

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
        self._preload()
        for host in list(self.hosts.values()):
            Incarnation(self.services, host, host.clock).start()
        self.client.start()
        self.env.process(self._fault_schedule(self.faults))

        env = self.env
        events = 0
        while env.peek() <= end:
            env.step()
            events += 1
        if env.now < end:
            env.run(until=end)
        self.events_processed = events
        self._record_store_stats()
        wall = time.perf_counter() - started

        end_us = round(end * MICROS)
        checks = check_all(self.trace.events, end_us, self.scenario.expect.alarm_grace_s)
        stats = RunStats(
            events=events,
            sim_s=end,
            wall_s=wall,
            trace_events=len(self.trace),
            messages_sent=self.network.sent,
            messages_dropped=self.network.dropped,
            store_calls=self.store.calls,
            store_failures=self.store.failures,
            stored_alarms_left=len(self.store.all_alarms(self._max_shards())),
            peak_store_reads=self.store.peak_reads_in_flight,
            messages_duplicated=self.network.duplicated,
        )
        logger.debug(
            "run of %r seed %d: %d events in %.3f s", self.scenario.name, self.seed, events, wall
        )
        return SimResult(self.scenario, self.seed, self.trace, self.trace.digest(), checks, stats)

    def _max_shards(self) -> int:
        """Return the largest shard count any configuration of this run used."""
        placements = [self.placement, self.authority]
        for fleet in self.fleets.values():
            placements += [host.placement for host in fleet.values() if host.placement]
        return max(placement.shards for placement in placements)

    def _record_store_stats(self) -> None:
        store = self.store
        fields: dict[str, Any] = {
            "peak_reads": store.peak_reads_in_flight,
            "calls": store.calls,
            "failures": store.failures,
        }
        if store.kv is not None:
            stats = store.kv.stats
            fields.update(
                commits=stats.commits,
                conflicts=stats.conflicts,
                unknown_results=stats.unknown_results,
            )
        self.trace.record("store_stats", **fields)

    def _preload(self) -> None:
        """Write ``[store] preload_alarms`` alarms before the hosts start, and trace them as set."""
        spec = self.scenario.store
        if spec.preload_alarms == 0:
            return
        rng = self._random("preload")
        instances = self.scenario.workload.instances
        low, high = spec.preload_due_s
        by_shard: dict[int, list[Alarm]] = {}
        for index in range(spec.preload_alarms):
            instance_id = f"inst-{index % instances}"
            due = rng.uniform(low, high)
            alarm = Alarm(
                instance_id=instance_id,
                internal_id=internal_id(instance_id),
                alarm_id=f"pre-{index}",
                fires_at_us=to_micros(DEFAULT_EPOCH + due),
                meta={"preload": index},
                revision=rng.randrange(1, 1 << 31),
            )
            by_shard.setdefault(self.placement.shard_of(instance_id), []).append(alarm)
            self.trace.record(
                "alarm_set",
                inst=instance_id,
                alarm=alarm.alarm_id,
                rev=alarm.revision,
                host="preload",
                inc="preload",
                fires_at_us=alarm.fires_at_us,
                due_us=alarm.fires_at_us - round(DEFAULT_EPOCH * MICROS),
            )
        for shard in sorted(by_shard):
            self.store.preload(shard, by_shard[shard])

    def _fault_schedule(self, faults: Iterable[Fault]) -> Generator[simpy.Event, Any, None]:
        indexed = sorted(enumerate(faults), key=lambda item: (item[1].at, item[0]))
        first_drawn = len(self.scenario.faults)
        for index, fault in indexed:
            if fault.at > self.env.now:
                yield self.env.timeout(fault.at - self.env.now)
            params = fault_params(fault)
            if index >= first_drawn:
                self.trace.record(
                    "fault", fault=fault.kind, host=fault.host, params=params, drawn=True
                )
            else:
                self.trace.record("fault", fault=fault.kind, host=fault.host, params=params)
            apply_fault(self, fault)

    def now(self) -> float:
        """Return the current true time in seconds."""
        return self.env.now

    # -- messages --------------------------------------------------------------------------

    def _send_request(self, rid: int, instance_id: str, dst: str, payload: Any) -> None:
        body = {"inst": instance_id, "payload": payload}
        self.network.send(Message("request", rid, "client", dst, body), self._find_host)

    def _find_host(self, message: Message) -> Callable[[], None] | str | None:
        host = self.host_by_key(message.dst)
        if host is None:
            return None
        receivers = host.receivers()
        if not receivers:
            return None
        network = self.network
        reachable = [inc for inc in receivers if network.blocked(message.src, inc.label) is None]
        if not reachable:
            return network.blocked(message.src, receivers[0].label)
        incarnation: Incarnation = network.choose(reachable)
        return lambda: incarnation.serve(message)

    def _respond(self, incarnation: Incarnation, rid: int, outcome: str) -> None:
        incarnation.runtime.check_alive(f"network send of the response to request {rid}")
        message = Message("response", rid, incarnation.label, "client", outcome)
        self.network.send(message, self._find_client)

    def _find_client(self, message: Message) -> Callable[[], None]:
        return lambda: self.client.receive(message.rid, message.body)

    # -- inspection ------------------------------------------------------------------------

    def live_incarnations(self) -> list[Incarnation]:
        """Return every live incarnation of every fleet, by fleet, host id, then age."""
        return [
            inc
            for fleet in self.fleets.values()
            for host_id in sorted(fleet)
            for inc in fleet[host_id].live()
        ]

    def incarnation(self, label: str) -> Incarnation:
        """Return the incarnation named ``label``, like ``"host-1#0"`` or ``"green:host-1#0"``.

        Raises:
            KeyError: no such incarnation exists.
        """
        key, _, number = label.rpartition("#")
        host = self.host_by_key(key)
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
