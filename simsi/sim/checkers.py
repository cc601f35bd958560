"""Checkers: properties of a finished run, computed from its trace alone.

**Single instance.** An incarnation *holds* instance ``i`` from its ``activate``
event until its ``deactivate`` event, its ``host_crash`` or ``host_stop``, or the
end of the run. The property holds when no two different incarnations hold the
same instance over true-time intervals that overlap by more than zero. The
first counterexample is the overlap that starts earliest.

**Alarm delivery.** Lost, pending, duplicate, phantom, early and late alarms;
see :mod:`simsi.sim.alarm_check` for the definitions.

**Routing.** A request is *misrouted* if a host served it successfully
although the authoritative configuration names another owner. Requests that a
host rejected with ``NotOwnerError`` (the client's view disagreed) are counted
as routing failures but do not break the property. *Availability* is the
fraction of sent requests that got an ``ok`` response.

**Store.** The peak number of store reads in flight at once, and the store's
call and failure counts, from the ``store_stats`` event the world records at
the end of a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from simsi.sim.alarm_check import (
    EARLY_TOLERANCE_US,
    AlarmResult,
    EarlyFire,
    LostAlarm,
    PhantomFire,
    check_alarms,
)
from simsi.sim.trace import MICROS, TraceEvent


@dataclass(frozen=True)
class Holding:
    """An incarnation holding an instance over ``[start_us, end_us)`` of true time."""

    instance_id: str
    host: str
    inc: str
    start_us: int
    end_us: int


@dataclass(frozen=True)
class Overlap:
    """Two incarnations holding the same instance at the same true time."""

    instance_id: str
    first: Holding
    second: Holding
    start_us: int
    end_us: int

    def describe(self) -> str:
        """Return one sentence naming the instance, both incarnations and the overlap."""
        return (
            f"instance {self.instance_id!r} was live on {self.first.inc} "
            f"(from {self.first.start_us / MICROS:.6f} s) and on {self.second.inc} "
            f"(from {self.second.start_us / MICROS:.6f} s) at the same time, from "
            f"{self.start_us / MICROS:.6f} s to {self.end_us / MICROS:.6f} s of true time"
        )


@dataclass(frozen=True)
class SingleInstanceResult:
    """The single-instance check: ``holds``, the first overlap and how many instances overlap."""

    holds: bool
    holdings: int
    instances_violated: int
    first: Overlap | None = None


def holdings(events: Iterable[TraceEvent], end_us: int) -> list[Holding]:
    """Return every interval in which an incarnation held an instance, for checks and timelines."""
    open_at: dict[tuple[str, str], tuple[str, int]] = {}
    by_inc: dict[str, list[str]] = {}
    result: list[Holding] = []

    def close(instance_id: str, inc: str, t_us: int) -> None:
        host, start = open_at.pop((instance_id, inc))
        result.append(Holding(instance_id, host, inc, start, t_us))

    for event in events:
        kind = event.kind
        if kind == "activate":
            key = (event["inst"], event["inc"])
            if key not in open_at:
                open_at[key] = (event["host"], event.t_us)
                by_inc.setdefault(event["inc"], []).append(event["inst"])
        elif kind == "deactivate":
            if (event["inst"], event["inc"]) in open_at:
                close(event["inst"], event["inc"], event.t_us)
        elif kind in ("host_crash", "host_stop"):
            for instance_id in by_inc.pop(event["inc"], []):
                if (instance_id, event["inc"]) in open_at:
                    close(instance_id, event["inc"], event.t_us)
    for instance_id, inc in list(open_at):
        close(instance_id, inc, end_us)
    return result


def check_single_instance(events: Sequence[TraceEvent], end_us: int) -> SingleInstanceResult:
    """Check that no two incarnations held one instance at overlapping true times."""
    spans_found = holdings(events, end_us)
    by_instance: dict[str, list[Holding]] = {}
    for holding in spans_found:
        by_instance.setdefault(holding.instance_id, []).append(holding)
    first: Overlap | None = None
    violated = 0
    for instance_id in sorted(by_instance):
        spans = sorted(by_instance[instance_id], key=lambda h: (h.start_us, h.inc))
        found: Overlap | None = None
        for index, earlier in enumerate(spans):
            for later in spans[index + 1 :]:
                if later.start_us >= earlier.end_us:
                    break
                if later.inc == earlier.inc:
                    continue
                start, end = later.start_us, min(earlier.end_us, later.end_us)
                if end > start and (found is None or start < found.start_us):
                    found = Overlap(instance_id, earlier, later, start, end)
        if found is not None:
            violated += 1
            if first is None or (found.start_us, found.instance_id) < (
                first.start_us,
                first.instance_id,
            ):
                first = found
    return SingleInstanceResult(first is None, len(spans_found), violated, first)


@dataclass(frozen=True)
class RoutingResult:
    """The routing check and the request outcomes.

    Attributes:
        holds: whether no request was served by a host other than its true owner.
        misrouted: requests served by a non-owner.
        first_misrouted: ``(request id, instance id, serving incarnation, owner)`` of the first.
        not_owner: requests a host rejected because it does not own the instance.
        served: requests served successfully by a host.
        sent: requests the client sent.
        client_outcomes: what the client saw per outcome (``ok``, ``not_owner``,
            ``handler_error``, ``closed``, ``timeout``).
    """

    holds: bool
    misrouted: int
    first_misrouted: tuple[int, str, str, str] | None
    not_owner: int
    served: int
    sent: int
    client_outcomes: dict[str, int]

    @property
    def availability(self) -> float | None:
        """The fraction of sent requests that got an ``ok`` response, or ``None`` if none were sent."""
        if not self.sent:
            return None
        return self.client_outcomes.get("ok", 0) / self.sent


def check_routing(events: Sequence[TraceEvent]) -> RoutingResult:
    """Check that every served request was served by its owner."""
    misrouted = not_owner = served = sent = 0
    first: tuple[int, str, str, str] | None = None
    outcomes: dict[str, int] = {}
    for event in events:
        kind = event.kind
        if kind == "request":
            sent += 1
        elif kind == "request_served":
            outcome = event["outcome"]
            if outcome == "not_owner":
                not_owner += 1
            elif outcome == "ok":
                served += 1
                if event["host"] != event["owner"]:
                    misrouted += 1
                    if first is None:
                        first = (event["rid"], event["inst"], event["inc"], event["owner"])
        elif kind == "response":
            outcomes[event["outcome"]] = outcomes.get(event["outcome"], 0) + 1
        elif kind == "request_timeout":
            outcomes["timeout"] = outcomes.get("timeout", 0) + 1
    ordered = {key: outcomes[key] for key in sorted(outcomes)}
    return RoutingResult(misrouted == 0, misrouted, first, not_owner, served, sent, ordered)


@dataclass(frozen=True)
class StoreResult:
    """What the store saw: the peak of concurrent reads, calls and failed calls.

    All are 0 for a trace without a ``store_stats`` event. The commit counters
    are those of the FoundationDB store's SimKV, and 0 for the in-memory store.

    Attributes:
        peak_concurrent_reads: the maximum number of reads in flight at once.
        calls: calls that reached the store.
        failures: calls failed by an outage, a partition or the store.
        commits: SimKV commits applied.
        conflicts: SimKV commits that failed with ``not_committed``.
        unknown_results: SimKV commits that raised ``commit_unknown_result``.
    """

    peak_concurrent_reads: int = 0
    calls: int = 0
    failures: int = 0
    commits: int = 0
    conflicts: int = 0
    unknown_results: int = 0


def check_store(events: Sequence[TraceEvent]) -> StoreResult:
    """Return the store counters of the last ``store_stats`` event."""
    for event in reversed(events):
        if event.kind == "store_stats":
            return StoreResult(
                event["peak_reads"],
                event["calls"],
                event["failures"],
                event.get("commits", 0),
                event.get("conflicts", 0),
                event.get("unknown_results", 0),
            )
    return StoreResult()


@dataclass(frozen=True)
class CheckResults:
    """Every checker's result for one run."""

    single_instance: SingleInstanceResult
    alarms: AlarmResult
    routing: RoutingResult
    store: StoreResult = field(default_factory=StoreResult)


def check_all(events: Sequence[TraceEvent], end_us: int, grace_s: float) -> CheckResults:
    """Run every checker over a finished run's events."""
    return CheckResults(
        single_instance=check_single_instance(events, end_us),
        alarms=check_alarms(events, end_us, grace_s),
        routing=check_routing(events),
        store=check_store(events),
    )


__all__ = [
    "EARLY_TOLERANCE_US",
    "AlarmResult",
    "CheckResults",
    "EarlyFire",
    "Holding",
    "LostAlarm",
    "Overlap",
    "PhantomFire",
    "RoutingResult",
    "SingleInstanceResult",
    "StoreResult",
    "check_alarms",
    "check_all",
    "check_routing",
    "check_single_instance",
    "check_store",
    "holdings",
]
