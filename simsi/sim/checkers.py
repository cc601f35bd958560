"""Checkers: properties of a finished run, computed from its trace alone.

**Single instance.** An incarnation *holds* instance ``i`` from its ``activate``
event until its ``deactivate`` event, its ``host_crash`` or ``host_stop``, or the
end of the run. The property holds when no two different incarnations hold the
same instance over true-time intervals that overlap by more than zero. The
first counterexample is the overlap that starts earliest.

**Alarm delivery.** An alarm is one ``alarm_set`` event, identified by instance,
alarm id and revision. Setting the same alarm id again *replaces* the earlier
revision, which then needs no delivery. By the end of the run every alarm must be
done: removed as ``succeeded``, ``cancelled`` or ``attempts_exhausted``. An alarm
not done is *lost* if its due time plus ``grace_s`` is not after the end of the
run, and *pending* otherwise. *Duplicates* count handler successes beyond the
first for one alarm (at-least-once delivery made visible). An alarm's *due time*
is the true time at which the clock of the incarnation that set it reads its
``fires_at``, assuming that clock keeps the offset and drift it had at the set.
A retry sets a new due time in the same way, with the retrying host's clock. A
fire is *early* if it happens more than :data:`EARLY_TOLERANCE_US` before the
due time, which catches hosts whose clocks run ahead of the setter's; *lag* is
the fire's true time minus the due time, for first attempts.

**Routing.** A request is *misrouted* if a host served it successfully
although the authoritative configuration names another owner. Requests that a
host rejected with ``NotOwnerError`` (the client's view disagreed) are counted
as routing failures but do not break the property.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from simsi.sim.trace import MICROS, TraceEvent

EARLY_TOLERANCE_US = 10
"""Microseconds a fire may precede its due time without counting as early.

Host readings are epoch seconds near 1.7e9, where a float resolves about 0.24 µs,
so converting between host and true time can be off by a few microseconds.
"""


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


@dataclass
class _AlarmRecord:
    instance_id: str
    alarm_id: str
    rev: int
    set_us: int
    due_us: int
    inc: str
    fires: int = 0
    handled: int = 0
    done: str | None = None
    replaced: bool = False


@dataclass(frozen=True)
class LostAlarm:
    """An alarm that was due but never done."""

    instance_id: str
    alarm_id: str
    set_by: str
    set_us: int
    due_us: int
    fires: int


@dataclass(frozen=True)
class AlarmResult:
    """The alarm delivery check.

    Attributes:
        set: alarms set (revisions written to the store).
        fired: handler runs started, retries included.
        done: alarms removed after a successful handler.
        cancelled: alarms cancelled.
        exhausted: alarms dropped after their attempts ran out.
        replaced: alarms replaced by a later set of the same id.
        lost: alarms due at least ``grace_s`` before the end and never done.
        pending: alarms not done whose due time was too close to the end to judge.
        duplicates: successful handler runs beyond the first, over all alarms.
        early_fires: fires more than the tolerance before the due time.
        max_early_s: the largest amount by which a fire was early, in seconds.
        lags_s: true seconds from due time to first fire, one per alarm that fired, sorted.
    """

    set: int
    fired: int
    done: int
    cancelled: int
    exhausted: int
    replaced: int
    lost: tuple[LostAlarm, ...]
    pending: int
    duplicates: int
    early_fires: int
    max_early_s: float
    lags_s: tuple[float, ...] = field(repr=False)

    @property
    def holds(self) -> bool:
        """Whether no alarm was lost."""
        return not self.lost

    def lag_quantile(self, q: float) -> float | None:
        """Return the ``q`` quantile (0 to 1, nearest rank) of the lags, or ``None`` without fires."""
        if not self.lags_s:
            return None
        rank = min(len(self.lags_s) - 1, max(0, int(q * len(self.lags_s) + 0.999999) - 1))
        return self.lags_s[rank]


def check_alarms(events: Sequence[TraceEvent], end_us: int, grace_s: float) -> AlarmResult:
    """Check alarm delivery over a finished run's trace."""
    records: dict[tuple[str, str, int], _AlarmRecord] = {}
    current: dict[tuple[str, str], _AlarmRecord] = {}
    fired = early = 0
    max_early_us = 0
    lags: list[float] = []

    for event in events:
        kind = event.kind
        if not kind.startswith("alarm_"):
            continue
        ident = (event["inst"], event["alarm"])
        if kind == "alarm_set":
            old = current.get(ident)
            if old is not None and old.done is None:
                old.replaced = True
            record = _AlarmRecord(*ident, event["rev"], event.t_us, event["due_us"], event["inc"])
            records[(*ident, record.rev)] = record
            current[ident] = record
            continue

        if kind == "alarm_done" and event["rev"] == 0:
            found = current.get(ident)
        else:
            found = records.get((*ident, event["rev"]))
        if found is None:
            continue

        if kind == "alarm_fire":
            fired += 1
            found.fires += 1
            ahead = found.due_us - event.t_us
            if ahead > EARLY_TOLERANCE_US:
                early += 1
                max_early_us = max(max_early_us, ahead)
            if found.fires == 1:
                lags.append((event.t_us - found.due_us) / MICROS)
        elif kind == "alarm_handled":
            found.handled += 1
        elif kind == "alarm_retry":
            found.due_us = event["due_us"]
        elif kind == "alarm_done" and found.done is None:
            found.done = event["reason"]

    grace_us = round(grace_s * MICROS)
    lost: list[LostAlarm] = []
    pending = 0
    reasons = {"succeeded": 0, "cancelled": 0, "attempts_exhausted": 0}
    for record in records.values():
        if record.done is not None:
            reasons[record.done] = reasons.get(record.done, 0) + 1
        elif not record.replaced:
            if record.due_us + grace_us <= end_us:
                lost.append(
                    LostAlarm(
                        record.instance_id,
                        record.alarm_id,
                        record.inc,
                        record.set_us,
                        record.due_us,
                        record.fires,
                    )
                )
            else:
                pending += 1

    return AlarmResult(
        set=len(records),
        fired=fired,
        done=reasons["succeeded"],
        cancelled=reasons["cancelled"],
        exhausted=reasons["attempts_exhausted"],
        replaced=sum(1 for record in records.values() if record.replaced),
        lost=tuple(lost),
        pending=pending,
        duplicates=sum(max(0, record.handled - 1) for record in records.values()),
        early_fires=early,
        max_early_s=max_early_us / MICROS,
        lags_s=tuple(sorted(lags)),
    )


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
class CheckResults:
    """Every checker's result for one run."""

    single_instance: SingleInstanceResult
    alarms: AlarmResult
    routing: RoutingResult


def check_all(events: Sequence[TraceEvent], end_us: int, grace_s: float) -> CheckResults:
    """Run every checker over a finished run's events."""
    return CheckResults(
        single_instance=check_single_instance(events, end_us),
        alarms=check_alarms(events, end_us, grace_s),
        routing=check_routing(events),
    )
