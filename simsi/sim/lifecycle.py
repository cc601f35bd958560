"""Process and store faults of a :class:`~simsi.sim.world.World`: crash, stop, restart, replace.

:class:`LifecycleOps` is a mixin of the world. Its methods are what the fault
kinds of :mod:`simsi.sim.fault_kinds` call at a fault's true time. A fault that
finds its host in a state it cannot apply to is skipped and traced as
``fault_skipped`` with the reason.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from simsi.core.alarms import Alarm
from simsi.sim.clock import HostClock
from simsi.sim.host import HostServices, Incarnation, SimHost
from simsi.sim.store import SimAlarmStore
from simsi.sim.trace import Trace


class LifecycleOps:
    """Crash, stop, restart and replace host processes; clock and store faults."""

    env: simpy.Environment
    trace: Trace
    services: HostServices
    hosts: dict[str, SimHost]
    store: SimAlarmStore

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

    def crash_host(
        self, host_id: str, incarnation: str, restart_after_s: float | None = None
    ) -> None:
        """Kill the live incarnations of ``host_id`` chosen by ``incarnation`` (all/oldest/newest).

        With ``restart_after_s``, a new incarnation starts that many true seconds later.
        """
        chosen = self._pick(host_id, incarnation)
        for victim in chosen:
            victim.crash()
        if chosen and restart_after_s is not None:
            self.env.process(self._restart_after(host_id, [], restart_after_s))

    def stop_host(
        self,
        host_id: str,
        incarnation: str,
        drain_s: float | None = None,
        restart_after_s: float | None = None,
    ) -> None:
        """Gracefully stop the live incarnations of ``host_id`` chosen by ``incarnation``.

        Args:
            drain_s: true seconds each may drain before it is killed; ``None`` waits.
            restart_after_s: start a new incarnation this long after they exited.
        """
        chosen = self._pick(host_id, incarnation)
        for victim in chosen:
            victim.stop(drain_s)
        if chosen and restart_after_s is not None:
            self.env.process(self._restart_after(host_id, chosen, restart_after_s))

    def _restart_after(
        self, host_id: str, waiting: list[Incarnation], delay: float
    ) -> Generator[simpy.Event, Any, None]:
        for old in waiting:
            yield old.ended
        yield self.env.timeout(delay)
        self.start_host(host_id)

    def start_host(
        self, host_id: str, offset_s: float | None = None, drift_ppm: float | None = None
    ) -> None:
        """Start a new incarnation of ``host_id``.

        With ``offset_s`` or ``drift_ppm``, the host moves to another machine whose
        clock has that offset and drift, and later restarts stay on it.
        """
        host = self.hosts[host_id]
        if host.live():
            self._skip(f"restart of {host_id!r}: an incarnation is still running")
            return
        placement = host.placement or self.services.placement
        if host_id not in placement.hosts:
            self._skip(f"restart of {host_id!r}: the host is not in its configuration any more")
            return
        if offset_s is not None or drift_ppm is not None:
            host.clock = HostClock(offset=offset_s or 0.0, drift_ppm=drift_ppm or 0.0)
        Incarnation(self.services, host, host.clock).start()

    def replace_host(
        self,
        host_id: str,
        start_delay_s: float,
        drain_s: float | None = None,
        start_after: str = "exit",
    ) -> None:
        """Stop ``host_id`` gracefully and start its replacement.

        Args:
            start_delay_s: true seconds between the old process's exit (or the
                start of its stop, with ``start_after="stop"``) and the replacement.
            drain_s: true seconds the old process may drain before it is killed.
            start_after: ``"exit"`` waits for the old process to exit, as a
                StatefulSet does. ``"stop"`` does not wait, like a controller that
                replaces a terminating pod at once.
        """
        self.env.process(self._replace(host_id, start_delay_s, drain_s, start_after))

    def _replace(
        self,
        host_id: str,
        start_delay_s: float,
        drain_s: float | None = None,
        start_after: str = "exit",
    ) -> Generator[simpy.Event, Any, None]:
        host = self.hosts[host_id]
        old = host.live()
        for incarnation in old:
            incarnation.stop(drain_s)
        if start_after == "exit":
            for incarnation in old:
                yield incarnation.ended
        if start_delay_s > 0:
            yield self.env.timeout(start_delay_s)
        if start_after == "exit" and host.live():
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
        host_ids = [host_id for host_id, host in self.hosts.items() if host.live()]
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

    def store_latency(
        self, duration_s: float, factor: float, latency_ms: tuple[float, float] | None
    ) -> None:
        """Multiply (and first replace, if ``latency_ms`` is given) the store's latency for a while."""
        self.store.slow_down(duration_s, factor, latency_ms)

    def crash_after_alarm_handled(
        self, host_id: str, window_s: float, restart_after_s: float | None
    ) -> None:
        """Crash ``host_id`` right after its next successful alarm handler, before ``mark_alarm_done``.

        The crash happens at most once, within ``window_s`` true seconds. If no
        alarm of the host succeeds in that window, the fault is traced as skipped.
        With ``restart_after_s``, the host restarts that long after the crash.
        """
        host = self.hosts[host_id]
        deadline = self.env.now + window_s
        state = {"armed": True}

        def hook(incarnation: Incarnation, alarm: Alarm) -> None:
            if not state["armed"] or incarnation.host is not host or self.env.now > deadline:
                return
            state["armed"] = False
            self.trace.record(
                "fault_triggered",
                fault="crash_after_alarm_handled",
                host=host_id,
                inc=incarnation.label,
                inst=alarm.instance_id,
                alarm=alarm.alarm_id,
            )
            incarnation.crash(cause="after_alarm_handled")
            if restart_after_s is not None:
                self.env.process(self._restart_after(host_id, [], restart_after_s))

        def expire(_event: simpy.Event) -> None:
            self.services.alarm_handled_hooks.remove(hook)
            if state["armed"]:
                state["armed"] = False
                self._skip(
                    f"crash_after_alarm_handled of {host_id!r}: no alarm of it succeeded "
                    f"within {window_s:g} s"
                )

        self.services.alarm_handled_hooks.append(hook)
        timer = self.env.timeout(window_s)
        timer.callbacks.append(expire)
