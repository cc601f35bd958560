"""The per-host alarm schedule: a bounded in-memory window over the store.

The schedule holds, for each owned shard, a prefix of the shard's alarms in key
order: every alarm whose key is at most the shard's *frontier* (the last key
loaded from the store). Alarms past the frontier stay in the store until the
manager loads the next page. Because the window of each shard is a prefix, the
earliest alarm held for a shard is that shard's earliest alarm overall, so firing
from the window never skips an alarm of the same shard (and so of the same
instance).

A binary heap with lazy deletion gives the earliest alarm in O(log n); an index by
``(internal_id, alarm_id)`` detects stale heap entries.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from simsi.core.alarms import Alarm, AlarmKey

AlarmRef = tuple[str, str]
"""An alarm's identity: ``(internal_id, alarm_id)``."""


@dataclass(slots=True)
class ShardWindow:
    """The loaded prefix of one shard's alarms.

    Attributes:
        frontier: the largest key loaded from the store, or ``None`` before the first page.
        exhausted: whether the last page was short, so every stored alarm is in memory.
        held: how many alarms of this shard the schedule holds (not counting in-flight ones).
    """

    frontier: AlarmKey | None = None
    exhausted: bool = False
    held: int = 0

    def covers(self, key: AlarmKey) -> bool:
        """Return whether an alarm with ``key`` belongs inside the loaded prefix."""
        if self.exhausted:
            return True
        return self.frontier is not None and key <= self.frontier


class AlarmSchedule:
    """Alarms of the owned shards that are due soonest, ordered by key.

    Args:
        shards: the shards this host owns.
        page_size: the store page size; a shard holding more than twice this many
            alarms drops its latest ones and moves its frontier back.
    """

    def __init__(self, shards: list[int], page_size: int) -> None:
        self._windows = {shard: ShardWindow() for shard in shards}
        self._by_shard: dict[int, set[AlarmRef]] = {shard: set() for shard in shards}
        self._page_size = page_size
        self._heap: list[tuple[int, str, str, int]] = []
        self._held: dict[AlarmRef, tuple[int, int, Alarm]] = {}
        self._in_flight: dict[AlarmRef, tuple[int, Alarm]] = {}
        self._counter = 0

    @property
    def held(self) -> int:
        """Number of alarms held in memory, not counting in-flight ones."""
        return len(self._held)

    @property
    def in_flight(self) -> int:
        """Number of alarms popped for delivery and not yet completed."""
        return len(self._in_flight)

    @property
    def page_size(self) -> int:
        """The store page size the windows are sized by."""
        return self._page_size

    def window(self, shard: int) -> ShardWindow:
        """Return the window of an owned shard."""
        return self._windows[shard]

    def needs_page(self, shard: int) -> bool:
        """Return whether the shard's window is running low and more is stored."""
        window = self._windows[shard]
        return not window.exhausted and window.held <= self._page_size // 4

    def add_page(self, shard: int, page: list[Alarm], limit: int) -> int:
        """Add a page loaded after the shard's frontier; return how many alarms were added.

        A page shorter than ``limit`` marks the shard exhausted. Alarms already held
        or in flight keep their current version.
        """
        window = self._windows[shard]
        added = 0
        for alarm in page:
            ref = (alarm.internal_id, alarm.alarm_id)
            if ref in self._in_flight or ref in self._held:
                continue
            if window.frontier is not None and alarm.key <= window.frontier:
                continue
            self._insert(shard, alarm)
            added += 1
        if page and (window.frontier is None or page[-1].key > window.frontier):
            window.frontier = page[-1].key
        if len(page) < limit:
            window.exhausted = True
        return added

    def offer(self, shard: int, alarm: Alarm) -> bool:
        """Record a newly set alarm; return whether it is held in memory.

        An alarm past the shard's frontier stays only in the store until its page is
        loaded. A replaced alarm's old version is dropped either way.
        """
        ref = (alarm.internal_id, alarm.alarm_id)
        self._drop(ref)
        if not self._windows[shard].covers(alarm.key):
            return False
        self._insert(shard, alarm)
        if self._windows[shard].held > 2 * self._page_size:
            self._trim(shard)
        return ref in self._held

    def merge_page(self, shard: int, page: list[Alarm]) -> int:
        """Add alarms of a re-read page that the window lacks; return how many were added.

        The store's version replaces a held one with another revision. Alarms in
        flight and alarms past the frontier are left alone.
        """
        window = self._windows[shard]
        added = 0
        for alarm in page:
            ref = (alarm.internal_id, alarm.alarm_id)
            if ref in self._in_flight:
                continue
            held = self._held.get(ref)
            if held is not None:
                if held[2].revision != alarm.revision:
                    self.offer(shard, alarm)
                continue
            if window.covers(alarm.key):
                self._insert(shard, alarm)
                added += 1
        return added

    def discard_revision(self, alarm: Alarm) -> None:
        """Forget the held alarm with ``alarm``'s id only if it has ``alarm``'s revision."""
        ref = (alarm.internal_id, alarm.alarm_id)
        held = self._held.get(ref)
        if held is not None and held[2].revision == alarm.revision:
            self._drop(ref)

    def discard(self, internal_id: str, alarm_id: str) -> None:
        """Forget a held alarm (cancelled, or replaced by a version past the frontier)."""
        self._drop((internal_id, alarm_id))

    def peek(self) -> Alarm | None:
        """Return the earliest held alarm without removing it."""
        heap = self._heap
        held = self._held
        while heap:
            _fires_at_us, internal, alarm_id, counter = heap[0]
            entry = held.get((internal, alarm_id))
            if entry is not None and entry[0] == counter:
                return entry[2]
            heapq.heappop(heap)
        return None

    def pop_due(self, now_us: int) -> list[tuple[int, Alarm]]:
        """Remove and return ``(shard, alarm)`` for each held alarm due at ``now_us``, in key order.

        Returned alarms are in flight until :meth:`complete` or :meth:`requeue`.
        """
        due: list[tuple[int, Alarm]] = []
        while True:
            alarm = self.peek()
            if alarm is None or alarm.fires_at_us > now_us:
                return due
            heapq.heappop(self._heap)
            ref = (alarm.internal_id, alarm.alarm_id)
            _counter, shard, _alarm = self._held.pop(ref)
            self._by_shard[shard].discard(ref)
            self._windows[shard].held -= 1
            self._in_flight[ref] = (shard, alarm)
            due.append((shard, alarm))

    def complete(self, alarm: Alarm) -> None:
        """End the in-flight delivery of ``alarm`` (done, or handed back to the store)."""
        ref = (alarm.internal_id, alarm.alarm_id)
        current = self._in_flight.get(ref)
        if current is not None and current[1].revision == alarm.revision:
            del self._in_flight[ref]

    def requeue(self, shard: int, alarm: Alarm) -> bool:
        """End an in-flight delivery and hold the retry ``alarm``; return whether it is held.

        A version set while the alarm was in flight wins over the retry.
        """
        self.complete(alarm)
        ref = (alarm.internal_id, alarm.alarm_id)
        if ref in self._held or ref in self._in_flight:
            return False
        return self.offer(shard, alarm)

    def _insert(self, shard: int, alarm: Alarm) -> None:
        ref = (alarm.internal_id, alarm.alarm_id)
        self._drop(ref)
        self._counter += 1
        self._held[ref] = (self._counter, shard, alarm)
        self._by_shard[shard].add(ref)
        self._windows[shard].held += 1
        heapq.heappush(
            self._heap, (alarm.fires_at_us, alarm.internal_id, alarm.alarm_id, self._counter)
        )
        if len(self._heap) > 64 and len(self._heap) > 3 * len(self._held):
            self._compact()

    def _drop(self, ref: AlarmRef) -> None:
        entry = self._held.pop(ref, None)
        if entry is None:
            return
        shard = entry[1]
        self._by_shard[shard].discard(ref)
        self._windows[shard].held -= 1

    def _trim(self, shard: int) -> None:
        """Keep the shard's earliest ``page_size`` alarms and move its frontier back."""
        held = sorted(self._held[ref][2].key for ref in self._by_shard[shard])
        keep = held[: self._page_size]
        for _fires_at_us, internal, alarm_id in held[self._page_size :]:
            self._drop((internal, alarm_id))
        window = self._windows[shard]
        window.frontier = keep[-1]
        window.exhausted = False

    def _compact(self) -> None:
        held = self._held
        self._heap = [
            entry
            for entry in self._heap
            if (current := held.get((entry[1], entry[2]))) is not None and current[0] == entry[3]
        ]
        heapq.heapify(self._heap)
