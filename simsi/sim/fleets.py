"""Fleet and configuration faults of a :class:`~simsi.sim.world.World`: blue/green and rollouts.

:class:`FleetOps` is a mixin of the world; the fault kinds of
:mod:`simsi.sim.fault_kinds_fleet` call its methods. The world keeps one host
table per fleet in ``fleets``; the main fleet's table is ``hosts``.

The world's *authority* is the configuration the operator declared: the
starting one, or the last rollout's from the moment it starts. The routing
check compares each served request with the owner in the authority.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from simsi.core.placement import Placement
from simsi.sim.clock import HostClock
from simsi.sim.host import MAIN_FLEET, HostServices, Incarnation, SimHost
from simsi.sim.trace import Trace
from simsi.sim.workload import Client


class FleetOps:
    """Start, split traffic to and stop fleets; roll out a new configuration."""

    env: simpy.Environment
    trace: Trace
    services: HostServices
    hosts: dict[str, SimHost]
    fleets: dict[str, dict[str, SimHost]]
    authority: Placement
    client: Client

    def _skip(self, reason: str) -> None:
        self.trace.record("fault_skipped", reason=reason)

    if TYPE_CHECKING:
        # Provided by LifecycleOps, the world's other mixin.
        def _replace(
            self,
            host_id: str,
            start_delay_s: float,
            drain_s: float | None = None,
            start_after: str = "exit",
        ) -> Generator[simpy.Event, Any, None]: ...

    def host_by_key(self, key: str) -> SimHost | None:
        """Return the host that messages to ``key`` (``"host-1"``, ``"green:host-1"``) reach."""
        fleet, _, host_id = key.rpartition(":")
        return self.fleets.get(fleet or MAIN_FLEET, {}).get(host_id)

    # -- fleets ------------------------------------------------------------------------------

    def fleet_start(self, fleet: str, hosts: str | None, shards: int | None) -> None:
        """Start every host of ``fleet``: the pattern ``hosts`` (default: the authority's hosts).

        Each host runs on its own machine with an accurate clock and routes by
        the fleet's configuration; all share the alarm store.
        """
        if fleet in self.fleets:
            self._skip(f"fleet_start of {fleet!r}: the fleet is already running")
            return
        placement = Placement(
            hosts if hosts is not None else list(self.authority.hosts),
            shards if shards is not None else self.authority.shards,
        )
        members = {h: SimHost(h, HostClock(), fleet, placement) for h in placement.hosts}
        self.fleets[fleet] = members
        for host in members.values():
            Incarnation(self.services, host, host.clock).start()

    def fleet_stop(self, fleet: str, drain_s: float | None) -> None:
        """Gracefully stop every live process of ``fleet``; each may drain ``drain_s`` seconds."""
        members = self.fleets.get(fleet)
        if members is None:
            self._skip(f"fleet_stop of {fleet!r}: no such fleet is running")
            return
        for host in members.values():
            for incarnation in host.live():
                incarnation.stop(drain_s)

    def traffic_split(self, fleet: str, weight: float) -> None:
        """Send the fraction ``weight`` of the client's requests to ``fleet``."""
        members = self.fleets.get(fleet)
        if members is None or fleet == MAIN_FLEET:
            self._skip(f"traffic_split to {fleet!r}: no such second fleet is running")
            return
        view = next(iter(members.values())).placement or self.authority
        self.client.split(fleet, view, weight)
        self.trace.record("traffic_split", fleet=fleet, weight=weight)

    # -- config rollout ----------------------------------------------------------------------

    def config_rollout(
        self,
        hosts: str | None,
        shards: int | None,
        start_delay_s: float,
        min_ready_s: float,
        order: str,
        client_switch: str,
    ) -> None:
        """Roll the main fleet out to a new hosts pattern and/or shard count.

        Hosts the new pattern drops are stopped first, highest ordinal first. Hosts
        it adds start next, each once the previous one is ready. Then the remaining
        hosts are replaced one at a time in ``order``, and each replacement starts
        ``start_delay_s`` after the old process exited. Each step waits
        ``min_ready_s`` after the new process became ready. The client switches to
        the new configuration at the start, at the end, or never (``client_switch``).
        """
        old = self.authority
        new = Placement(
            hosts if hosts is not None else list(old.hosts),
            shards if shards is not None else old.shards,
        )
        self.authority = new
        if client_switch == "start":
            self._switch_client(new)
        self.env.process(self._rollout(old, new, start_delay_s, min_ready_s, order, client_switch))

    def _switch_client(self, view: Placement) -> None:
        self.client.view = view
        self.trace.record("client_view", hosts=len(view.hosts), shards=view.shards)

    def _rollout(
        self,
        old: Placement,
        new: Placement,
        start_delay_s: float,
        min_ready_s: float,
        order: str,
        client_switch: str,
    ) -> Generator[simpy.Event, Any, None]:
        removed = [host_id for host_id in reversed(old.hosts) if host_id not in new.hosts]
        added = [host_id for host_id in new.hosts if host_id not in self.hosts]
        kept = [host_id for host_id in new.hosts if host_id in self.hosts]
        if order == "descending":
            kept.reverse()
        for host_id in removed:
            self.trace.record("rollout_step", host=host_id, action="remove")
            host = self.hosts[host_id]
            host.placement = new
            leaving = host.live()
            for incarnation in leaving:
                incarnation.stop()
            for incarnation in leaving:
                yield incarnation.ended
        for host_id in added:
            self.trace.record("rollout_step", host=host_id, action="add")
            host = SimHost(host_id, HostClock(), MAIN_FLEET, new)
            self.hosts[host_id] = host
            incarnation = Incarnation(self.services, host, host.clock)
            incarnation.start()
            yield incarnation.ready | incarnation.ended
            if min_ready_s > 0:
                yield self.env.timeout(min_ready_s)
        for host_id in kept:
            self.trace.record("rollout_step", host=host_id, action="replace")
            self.hosts[host_id].placement = new
            yield from self._replace(host_id, start_delay_s)
            if min_ready_s > 0:
                yield self.env.timeout(min_ready_s)
        self.trace.record("rollout_done")
        if client_switch == "end":
            self._switch_client(new)
