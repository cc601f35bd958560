"""Bulk alarm writes: the optional ``set_alarms`` store method and a fallback helper.

Loading a store with many alarms one ``set_alarm`` call at a time costs a round
trip (and on SQLite a commit) per alarm. Stores that can write a batch in fewer
round trips implement :class:`BulkAlarmStore`. Every store that ships with simsi
does:

- ``MemoryAlarmStore``: one atomic call.
- ``SQLiteAlarmStore``: ``executemany`` in one atomic transaction.
- ``PostgresAlarmStore``: ``executemany`` (pipelined) in one atomic transaction.
- ``RedisAlarmStore``: the ``set_alarm`` Lua script, pipelined in ``MULTI``/``EXEC``
  blocks of 1,000 alarms. No other client's command runs inside a block, but a
  failed block leaves the blocks before it written.
- ``FoundationDBAlarmStore``: transactions of at most 200 alarms and 1 MB of keys
  and values, far below FoundationDB's 10 MB and 5-second limits. Each
  transaction is atomic, but a failed one leaves the ones before it written.

Code that writes in bulk calls :func:`set_alarms`, which uses the store's method
when it has one and falls back to one ``set_alarm`` per alarm otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from simsi.core.alarms import Alarm, AlarmStore
from simsi.stores._common import check_alarm, check_shard


@runtime_checkable
class BulkAlarmStore(Protocol):
    """An alarm store that writes many alarms of one shard per call.

    ``set_alarms(shard, alarms)`` has the effect of ``set_alarm(shard, alarm)``
    without ``if_revision`` for each alarm in list order, so a later alarm with the
    same ``(internal_id, alarm_id)`` replaces an earlier one. It validates every
    alarm before it writes any, raising what ``set_alarm`` raises for an invalid
    alarm. An empty list writes nothing.
    """

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard``."""


async def set_alarms(store: AlarmStore, shard: int, alarms: Sequence[Alarm]) -> None:
    """Create or replace ``alarms`` in ``shard`` of ``store``, in bulk when it can.

    Stores without ``set_alarms`` get one ``set_alarm`` call per alarm, in order,
    after every alarm has passed validation, so invalid input writes nothing there
    either.

    Raises:
        ValueError: ``shard`` is not a non-negative integer.
        AlarmError: an alarm has a field no store accepts.
        InvalidAlarmMetaError: an alarm's meta is not JSON-serialisable or too large.
    """
    if isinstance(store, BulkAlarmStore):
        await store.set_alarms(shard, list(alarms))
        return
    check_shard(shard)
    for alarm in alarms:
        check_alarm(shard, alarm)
    for alarm in alarms:
        await store.set_alarm(shard, alarm)
