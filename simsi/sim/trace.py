"""The simulation trace: events in true-time order, JSON lines and a SHA-256 digest.

Each event has a true time ``t_us`` (integer microseconds since the start of the
simulation), a sequence number ``seq`` (its position in the trace), a ``kind``
and kind-specific fields. Hosts are named by ``host`` (the host id) and ``inc``
(the incarnation, ``"host-1#2"`` for the third process that ran as ``host-1``).

============== ===============================================================
kind           fields
============== ===============================================================
fault          fault, host, params
host_start     host, inc
host_ready     host, inc, alarms
host_stopping  host, inc (a graceful stop began)
host_stop      host, inc (the graceful stop finished)
host_crash     host, inc
activate       inst, host, inc, shard
deactivate     inst, host, inc, shard
request        rid, inst, dst (the host the client sent it to)
message        msg (request/response), rid, src, dst, action
               (send/deliver/lost/unreachable)
request_served rid, inst, host, inc, owner (true owner), outcome
response       rid, inst, outcome (as the client saw it)
request_timeout rid, inst
alarm_set      inst, alarm, rev, host, inc, fires_at_us, due_us
alarm_fire     inst, alarm, rev, host, inc, attempt, fires_at_us, lag
alarm_handled  inst, alarm, rev, host, inc
alarm_retry    inst, alarm, rev, host, inc, attempt, fires_at_us, due_us, error
alarm_done     inst, alarm, rev, host, inc, reason (rev 0 on cancel: any revision)
store_failed   host, inc, op, shard, error
handler_failed host, inc, inst, handler, error
error          host, inc, where, error (an error swallowed by a host)
effect_rejected inc, effect (a killed incarnation tried to write to the store)
store_outage   until_us (true time at which the outage ends)
fault_skipped  reason (a fault found the host in a state it cannot apply to)
rollout_step   host (a rolling update starts replacing this host)
rollout_done   (a rolling update replaced its last host)
============== ===============================================================

``fires_at_us`` is a host-clock reading in epoch microseconds. ``due_us`` is the
true time at which the setting host's clock reads ``fires_at_us``, assuming that
clock keeps the offset and drift it had when the alarm was set.

The canonical encoding of an event is JSON with sorted keys, no spaces, ASCII
only and floats rounded to 6 decimals. The digest is SHA-256 over the canonical
lines, each followed by a newline. Nothing in it depends on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

MICROS = 1_000_000


def _canonical(value: Any) -> Any:
    """Return ``value`` with floats rounded and containers copied, ready for JSON."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return round(value, 6)
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


# Field values of these types are canonical as they are, so record() skips them.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})

# One encoder for every line: json.dumps builds a new encoder per call when given options.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def _zero_time() -> float:
    return 0.0


class TraceEvent:
    """One trace event: true time in microseconds, sequence number, kind and fields."""

    __slots__ = ("fields", "kind", "seq", "t_us")

    def __getstate__(self) -> tuple[int, int, str, dict[str, Any]]:
        return (self.t_us, self.seq, self.kind, self.fields)

    def __setstate__(self, state: tuple[int, int, str, dict[str, Any]]) -> None:
        self.t_us, self.seq, self.kind, self.fields = state

    def __init__(self, t_us: int, seq: int, kind: str, fields: dict[str, Any]) -> None:
        self.t_us = t_us
        self.seq = seq
        self.kind = kind
        self.fields = fields

    @property
    def t(self) -> float:
        """True time in seconds since the start of the simulation."""
        return self.t_us / MICROS

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        """Return field ``name``, or ``default`` when the event has no such field."""
        return self.fields.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as one flat JSON object."""
        return {"t_us": self.t_us, "seq": self.seq, "kind": self.kind, **self.fields}

    def to_json(self) -> str:
        """Return the canonical JSON line of the event, without the newline."""
        return _ENCODER.encode(self.to_dict())

    def __repr__(self) -> str:
        return f"TraceEvent({self.to_json()})"


class Trace:
    """An append-only list of :class:`TraceEvent` in true-time order.

    :meth:`record` appends the time, kind and field dict of an event to a flat
    list, and :attr:`events` turns the entries recorded since its last call into
    :class:`TraceEvent` objects. CPython's cyclic garbage collector does not
    track a dict of strings and numbers, so a long run's trace does not slow
    every collection down, as a list of TraceEvent objects would.

    Args:
        now: returns the current true time in seconds (``env.now``).
    """

    def __init__(self, now: Callable[[], float] | None = None) -> None:
        self._now = now or _zero_time
        self._events: list[TraceEvent] = []
        # Events recorded after self._events, three entries each: t_us, kind, fields.
        self._pending: list[Any] = []

    def __getstate__(self) -> dict[str, Any]:
        # The clock function is a closure over the SimPy environment, which does not
        # pickle. A trace sent to another process (a sweep worker's result) drops it.
        return {"_events": self.events}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._events = state["_events"]
        self._pending = []
        self._now = _zero_time

    def record(self, kind: str, **fields: Any) -> None:
        """Append an event of ``kind`` at the current true time."""
        t_us = round(self._now() * MICROS)
        plain = _PLAIN_TYPES
        # ``fields`` is a fresh dict, so its values can be replaced in place.
        if not plain.issuperset(map(type, fields.values())):
            for name, value in fields.items():
                if value.__class__ not in plain:
                    fields[name] = _canonical(value)
        pending = self._pending
        pending.append(t_us)
        pending.append(kind)
        pending.append(fields)

    def record_fields(self, kind: str, fields: dict[str, Any]) -> None:
        """Append an event of ``kind`` with ``fields`` at the current true time.

        Field names must be strings. The trace keeps ``fields`` and may change its
        values to their canonical form, so pass a dict that the caller does not use
        afterwards. This saves the copy that passing the dict as ``**fields`` to
        :meth:`record` makes.
        """
        t_us = round(self._now() * MICROS)
        plain = _PLAIN_TYPES
        if not plain.issuperset(map(type, fields.values())):
            for name, value in fields.items():
                if value.__class__ not in plain:
                    fields[name] = _canonical(value)
        pending = self._pending
        pending.append(t_us)
        pending.append(kind)
        pending.append(fields)

    @property
    def events(self) -> list[TraceEvent]:
        """The events in order; do not modify."""
        pending = self._pending
        if pending:
            events = self._events
            seq = len(events)
            for index in range(0, len(pending), 3):
                events.append(
                    TraceEvent(pending[index], seq, pending[index + 1], pending[index + 2])
                )
                seq += 1
            pending.clear()
        return self._events

    def __len__(self) -> int:
        return len(self._events) + len(self._pending) // 3

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def of_kind(self, *kinds: str) -> list[TraceEvent]:
        """Return the events whose kind is one of ``kinds``, in order."""
        wanted = frozenset(kinds)
        return [event for event in self.events if event.kind in wanted]

    def lines(self) -> Iterator[str]:
        """Yield the canonical JSON line of every event, without newlines."""
        for event in self.events:
            yield event.to_json()

    def digest(self) -> str:
        """Return the hex SHA-256 of the canonical JSON lines, each ending in a newline."""
        sha = hashlib.sha256()
        for line in self.lines():
            sha.update(line.encode("ascii"))
            sha.update(b"\n")
        return sha.hexdigest()

    def write_jsonl(self, path: str | Path) -> None:
        """Write the trace as JSON lines to ``path``."""
        with open(path, "w", encoding="ascii") as out:
            for line in self.lines():
                out.write(line)
                out.write("\n")

    @classmethod
    def from_events(cls, events: Iterable[dict[str, Any]]) -> Trace:
        """Build a trace from flat event dicts like those :meth:`write_jsonl` writes.

        Events are kept in the given order and renumbered; ``t_us`` is required.
        Used to run checkers over saved traces and over traces written by hand in tests.
        """
        trace = cls()
        for raw in events:
            fields = dict(raw)
            t_us = int(fields.pop("t_us"))
            kind = str(fields.pop("kind"))
            fields.pop("seq", None)
            trace._events.append(TraceEvent(t_us, len(trace._events), kind, _canonical(fields)))
        return trace

    @classmethod
    def read_jsonl(cls, path: str | Path) -> Trace:
        """Read a trace written by :meth:`write_jsonl`."""
        with open(path, encoding="ascii") as source:
            return cls.from_events(json.loads(line) for line in source if line.strip())
