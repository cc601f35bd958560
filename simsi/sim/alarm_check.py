"""The alarm delivery check: lost, duplicate, phantom, early and late alarms, from a trace.

An alarm is one ``alarm_set`` event, identified by instance, alarm id and
revision. Setting the same alarm id again *replaces* the earlier revision, which
then needs no delivery. By the end of the run every alarm must be done: removed
as ``succeeded``, ``cancelled`` or ``attempts_exhausted``. An alarm not done is
*lost* if its due time plus ``grace_s`` is not after the end of the run, and
*pending* otherwise. *Duplicates* count handler successes beyond the first for
one alarm (at-least-once delivery made visible).

A *phantom* is a fire of an alarm revision that no ``alarm_set`` event created,
or a fire that comes after the revision was done (succeeded, cancelled or
exhausted). A fire of a revision that was replaced but not done is not a phantom.

An alarm's *due time* is the true time at which the clock of the incarnation
that set it reads its ``fires_at``, assuming that clock keeps the offset and
drift it had at the set. A retry sets a new due time in the same way, with the
retrying host's clock. A fire is *early* if it happens more than
:data:`EARLY_TOLERANCE_US` before the due time, which catches hosts whose clocks
run ahead of the setter's; *lag* is the fire's true time minus the due time, for
first attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simsi.sim.trace import MICROS, TraceEvent

EARLY_TOLERANCE_US = 10
"""Microseconds a fire may precede its due time without counting as early.

Host readings are epoch seconds near 1.7e9, where a float resolves about 0.24 µs,
so converting between host and true time can be off by a few microseconds.
"""

DETAILS_KEPT = 100
"""Early fires and phantoms listed in a result; the counts cover all of them."""


@dataclass
class _AlarmRecord:
    instance_id: str
    alarm_id: str
    rev: int
    set_us: int
    due_us: int
    inc: str
    due_inc: str = ""
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
class EarlyFire:
    """A fire before its alarm's due true time.

    Attributes:
        instance_id: the alarm's instance.
        alarm_id: the alarm's id.
        set_by: the incarnation whose clock defined the due time (the setter or the
            last retrying host).
        fired_by: the incarnation that fired it.
        fire_us: the true time of the fire.
        early_s: seconds between the fire and the due time.
    """

    instance_id: str
    alarm_id: str
    set_by: str
    fired_by: str
    fire_us: int
    early_s: float


@dataclass(frozen=True)
class PhantomFire:
    """A fire of an alarm that was never set, or that was done before the fire.

    Attributes:
        reason: ``"never set"`` or ``"after done (<reason>)"``.
    """

    instance_id: str
    alarm_id: str
    rev: int
    fired_by: str
    fire_us: int
    reason: str


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
        phantoms: fires of alarms never set or already done.
        early: the earliest fires, largest first, at most :data:`DETAILS_KEPT`.
        phantom_fires: the phantoms in trace order, at most :data:`DETAILS_KEPT`.
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
    phantoms: int = 0
    early: tuple[EarlyFire, ...] = field(default=(), repr=False)
    phantom_fires: tuple[PhantomFire, ...] = field(default=(), repr=False)

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

    @property
    def max_lag_s(self) -> float | None:
        """The largest lag of a first fire, or ``None`` without fires."""
        return self.lags_s[-1] if self.lags_s else None


class _Scan:
    """The state of one pass over the trace."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, int], _AlarmRecord] = {}
        self.current: dict[tuple[str, str], _AlarmRecord] = {}
        self.fired = 0
        self.early: list[EarlyFire] = []
        self.lags: list[float] = []
        self.phantoms: list[PhantomFire] = []
        self.phantom_count = 0

    def alarm_set(self, event: TraceEvent, ident: tuple[str, str]) -> None:
        old = self.current.get(ident)
        if old is not None and old.done is None:
            old.replaced = True
        inc = event["inc"]
        record = _AlarmRecord(*ident, event["rev"], event.t_us, event["due_us"], inc, inc)
        self.records[(*ident, record.rev)] = record
        self.current[ident] = record

    def fire(self, event: TraceEvent, found: _AlarmRecord | None) -> None:
        self.fired += 1
        if found is None or found.done is not None:
            reason = "never set" if found is None else f"after done ({found.done})"
            self.phantom_count += 1
            if len(self.phantoms) < DETAILS_KEPT:
                self.phantoms.append(
                    PhantomFire(
                        event["inst"],
                        event["alarm"],
                        event["rev"],
                        event["inc"],
                        event.t_us,
                        reason,
                    )
                )
            if found is None:
                return
        found.fires += 1
        ahead = found.due_us - event.t_us
        if ahead > EARLY_TOLERANCE_US:
            self.early.append(
                EarlyFire(
                    found.instance_id,
                    found.alarm_id,
                    found.due_inc,
                    event["inc"],
                    event.t_us,
                    ahead / MICROS,
                )
            )
        if found.fires == 1:
            self.lags.append((event.t_us - found.due_us) / MICROS)


def check_alarms(events: Sequence[TraceEvent], end_us: int, grace_s: float) -> AlarmResult:
    """Check alarm delivery over a finished run's trace."""
    scan = _Scan()
    for event in events:
        kind = event.kind
        if not kind.startswith("alarm_"):
            continue
        ident = (event["inst"], event["alarm"])
        if kind == "alarm_set":
            scan.alarm_set(event, ident)
            continue

        if kind == "alarm_done" and event["rev"] == 0:
            found = scan.current.get(ident)
        else:
            found = scan.records.get((*ident, event["rev"]))

        if kind == "alarm_fire":
            scan.fire(event, found)
        elif found is None:
            continue
        elif kind == "alarm_handled":
            found.handled += 1
        elif kind == "alarm_retry":
            found.due_us = event["due_us"]
            found.due_inc = event["inc"]
        elif kind == "alarm_done" and found.done is None:
            found.done = event["reason"]

    records = scan.records
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

    early = sorted(scan.early, key=lambda fire: (-fire.early_s, fire.fire_us))
    return AlarmResult(
        set=len(records),
        fired=scan.fired,
        done=reasons["succeeded"],
        cancelled=reasons["cancelled"],
        exhausted=reasons["attempts_exhausted"],
        replaced=sum(1 for record in records.values() if record.replaced),
        lost=tuple(lost),
        pending=pending,
        duplicates=sum(max(0, record.handled - 1) for record in records.values()),
        early_fires=len(scan.early),
        max_early_s=early[0].early_s if early else 0.0,
        lags_s=tuple(sorted(scan.lags)),
        phantoms=scan.phantom_count,
        early=tuple(early[:DETAILS_KEPT]),
        phantom_fires=tuple(scan.phantoms),
    )
