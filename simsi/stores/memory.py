"""An in-process alarm store for tests, notebooks and single-process experiments."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from simsi.core.alarms import Alarm, AlarmKey, DoneReason, decode_meta
from simsi.stores._common import (
    Lifecycle,
    check_alarm,
    check_done_args,
    check_id,
    check_page_args,
    check_revision,
    check_shard,
)


@dataclass(slots=True)
class _Row:
    alarm: Alarm
    meta_text: str


@dataclass(slots=True)
class _Shard:
    rows: dict[tuple[str, str], _Row] = field(default_factory=dict)
    order: list[AlarmKey] = field(default_factory=list)


class MemoryAlarmStore:
    """An :class:`~simsi.core.alarms.AlarmStore` that keeps alarms in memory.

    Nothing survives the process. Each shard keeps a sorted list of alarm keys, so
    a page is found by binary search. Meta is stored as encoded JSON text and
    decoded on every read, so callers never share mutable meta with the store.
    """

    def __init__(self) -> None:
        self._shards: dict[int, _Shard] = {}
        self._lifecycle = Lifecycle("MemoryAlarmStore")

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``."""
        check_page_args(shard, after, limit)
        self._lifecycle.check_open()
        data = self._shards.get(shard)
        if data is None:
            return []
        start = 0 if after is None else bisect.bisect_right(data.order, after)
        keys = data.order[start : start + limit]
        return [self._read(data.rows[(key[1], key[2])]) for key in keys]

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        check_shard(shard)
        check_id("internal_id", internal_id)
        self._lifecycle.check_open()
        data = self._shards.get(shard)
        if data is None:
            return []
        rows = [row for (owner, _), row in data.rows.items() if owner == internal_id]
        rows.sort(key=lambda row: row.alarm.key)
        return [self._read(row) for row in rows]

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        With ``if_revision``, write only if the stored alarm with the same
        ``(internal_id, alarm_id)`` exists and has that revision.
        """
        meta_text = check_alarm(shard, alarm)
        if if_revision is not None:
            check_revision("if_revision", if_revision)
        self._lifecycle.check_open()
        data = self._shards.setdefault(shard, _Shard())
        ident = (alarm.internal_id, alarm.alarm_id)
        old = data.rows.get(ident)
        if if_revision is not None and (old is None or old.alarm.revision != if_revision):
            return False
        if old is not None:
            del data.order[bisect.bisect_left(data.order, old.alarm.key)]
        bisect.insort(data.order, alarm.key)
        data.rows[ident] = _Row(alarm.with_changes(meta=None), meta_text)
        return True

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard``, atomically.

        Alarms are written in list order, so a later alarm with the same ids wins.
        Every alarm is validated before any is written.
        """
        check_shard(shard)
        meta_texts = [check_alarm(shard, alarm) for alarm in alarms]
        self._lifecycle.check_open()
        if not alarms:
            return
        data = self._shards.setdefault(shard, _Shard())
        # A small batch is inserted by binary search; a large one re-sorts the
        # shard's keys once, which costs less than one insort per alarm.
        small = len(alarms) * 8 < len(data.order)
        for alarm, meta_text in zip(alarms, meta_texts, strict=True):
            ident = (alarm.internal_id, alarm.alarm_id)
            old = data.rows.get(ident)
            if small:
                if old is not None:
                    del data.order[bisect.bisect_left(data.order, old.alarm.key)]
                bisect.insort(data.order, alarm.key)
            data.rows[ident] = _Row(alarm.with_changes(meta=None), meta_text)
        if not small:
            data.order = sorted(row.alarm.key for row in data.rows.values())

    async def mark_alarm_done(
        self,
        shard: int,
        internal_id: str,
        alarm_id: str,
        reason: DoneReason,
        *,
        if_revision: int | None = None,
    ) -> bool:
        """Remove an alarm; return whether one was removed.

        Unknown ids remove nothing and are not an error. With ``if_revision``,
        remove only an alarm that still has that revision.
        """
        check_done_args(shard, internal_id, alarm_id, reason)
        if if_revision is not None:
            check_revision("if_revision", if_revision)
        self._lifecycle.check_open()
        data = self._shards.get(shard)
        if data is None:
            return False
        old = data.rows.get((internal_id, alarm_id))
        if old is None or (if_revision is not None and old.alarm.revision != if_revision):
            return False
        del data.order[bisect.bisect_left(data.order, old.alarm.key)]
        del data.rows[(internal_id, alarm_id)]
        if not data.rows:
            del self._shards[shard]
        return True

    async def close(self) -> None:
        """Drop every alarm; later calls raise :class:`~simsi.core.errors.LifecycleError`."""
        self._lifecycle.close()
        self._shards.clear()

    @staticmethod
    def _read(row: _Row) -> Alarm:
        return row.alarm.with_changes(meta=decode_meta(row.meta_text))
