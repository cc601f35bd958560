"""Argument checks, row decoding and lifecycle helpers shared by every alarm store.

Every store accepts the same values, so an alarm that one store takes can be moved
to any other store. The limits come from the strictest backend:

- ids are UTF-8 text without NUL characters, because PostgreSQL ``text`` rejects NUL
  and the Redis store separates ids with NUL;
- ids are at most :data:`MAX_ID_BYTES` bytes each, which keeps a FoundationDB key
  well under its 10,000-byte limit and a PostgreSQL index entry under its size limit;
- ``fires_at_us``, ``attempt`` and ``revision`` fit a signed 64-bit integer
  (PostgreSQL ``bigint``, SQLite ``INTEGER``); ``fires_at_us`` and ``attempt`` are not
  negative.
"""

from __future__ import annotations

from typing import Any

from simsi.core.alarms import Alarm, DoneReason, decode_meta, encode_meta
from simsi.core.errors import AlarmError, CorruptStoreDataError, LifecycleError

#: Maximum UTF-8 size of ``instance_id``, ``internal_id`` and ``alarm_id``.
MAX_ID_BYTES = 1000

#: Largest value of a signed 64-bit integer column.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

#: Largest ``limit`` one ``get_next_alarms`` call accepts.
MAX_PAGE_LIMIT = 100_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_shard(shard: object) -> int:
    """Return ``shard`` if it is a non-negative int.

    Raises:
        ValueError: ``shard`` is not an int or is negative.
    """
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard <= INT64_MAX:
        raise ValueError(f"shard must be a non-negative integer, got {shard!r}")
    return shard


def check_page_args(shard: object, after: object, limit: object) -> None:
    """Validate the arguments of ``get_next_alarms``.

    Raises:
        ValueError: the shard, the ``after`` key or the limit is invalid.
    """
    check_shard(shard)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {limit!r}")
    if after is None:
        return
    if (
        not isinstance(after, tuple)
        or len(after) != 3
        or not _is_int(after[0])
        or not isinstance(after[1], str)
        or not isinstance(after[2], str)
    ):
        raise ValueError(
            "after must be None or an alarm key (fires_at_us: int, internal_id: str, "
            f"alarm_id: str), such as Alarm.key of the last alarm of the previous page; got {after!r}"
        )
    for name, value in (("internal_id", after[1]), ("alarm_id", after[2])):
        if "\x00" in value or not _is_utf8(value):
            raise ValueError(
                f"after's {name} must be text without NUL characters or lone surrogates, "
                f"like every stored id; got {value!r}"
            )


def check_id(name: str, value: object) -> str:
    """Return ``value`` if it is a storable id.

    Raises:
        AlarmError: ``value`` is not a string, is empty, contains NUL, is not valid
            UTF-8 text or is longer than :data:`MAX_ID_BYTES` bytes.
    """
    if not isinstance(value, str) or not value:
        raise AlarmError(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise AlarmError(f"{name} must not contain NUL characters, got {value!r}")
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        raise AlarmError(
            f"{name} must be valid Unicode text without lone surrogates, got {value!r}"
        ) from exc
    if size > MAX_ID_BYTES:
        raise AlarmError(
            f"{name} is {size} bytes as UTF-8, above the limit of {MAX_ID_BYTES}; "
            f"use a shorter id (starts {value[:40]!r})"
        )
    return value


def check_revision(name: str, value: object) -> int:
    """Return ``value`` if it fits a signed 64-bit integer.

    Raises:
        AlarmError: ``value`` is not an int or is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
        raise AlarmError(f"{name} must be an integer from -2**63 to 2**63-1, got {value!r}")
    return value


def check_alarm(shard: object, alarm: object) -> str:
    """Validate an alarm for ``set_alarm`` and return its meta as JSON text.

    Raises:
        ValueError: ``shard`` is invalid.
        AlarmError: a field of the alarm cannot be stored.
        InvalidAlarmMetaError: the meta is not JSON-serialisable or too large.
    """
    check_shard(shard)
    if not isinstance(alarm, Alarm):
        raise AlarmError(f"set_alarm takes a simsi.core.alarms.Alarm, got {type(alarm).__name__}")
    check_id("instance_id", alarm.instance_id)
    check_id("internal_id", alarm.internal_id)
    check_id("alarm_id", alarm.alarm_id)
    if not _is_int(alarm.fires_at_us) or not 0 <= alarm.fires_at_us <= INT64_MAX:
        raise AlarmError(
            "fires_at_us must be an integer number of microseconds from 0 to 2**63-1, "
            f"got {alarm.fires_at_us!r}; convert seconds with simsi.core.alarms.to_micros"
        )
    if not _is_int(alarm.attempt) or not 0 <= alarm.attempt <= INT64_MAX:
        raise AlarmError(f"attempt must be a non-negative integer, got {alarm.attempt!r}")
    check_revision("revision", alarm.revision)
    return encode_meta(alarm.meta)


def check_done_args(shard: object, internal_id: object, alarm_id: object, reason: object) -> None:
    """Validate the arguments of ``mark_alarm_done``.

    Raises:
        ValueError: the shard or the reason is invalid.
        AlarmError: an id is invalid.
    """
    check_shard(shard)
    check_id("internal_id", internal_id)
    check_id("alarm_id", alarm_id)
    if not isinstance(reason, DoneReason):
        raise ValueError(
            f"reason must be a simsi.core.alarms.DoneReason, got {reason!r}; "
            "use DoneReason.SUCCEEDED, CANCELLED, ATTEMPTS_EXHAUSTED or MOVED"
        )


def corrupt(shard: int, row: str, problem: str) -> CorruptStoreDataError:
    """Return the error for a stored row that cannot be decoded."""
    return CorruptStoreDataError(
        f"shard {shard}: {row}: {problem}; nothing was changed. "
        "Delete or repair that row; simsi writes rows only through an AlarmStore."
    )


def decode_alarm(
    shard: int,
    row: str,
    *,
    instance_id: Any,
    internal_id: Any,
    alarm_id: Any,
    fires_at_us: Any,
    meta: Any,
    attempt: Any,
    revision: Any,
) -> Alarm:
    """Build an :class:`Alarm` from stored column values.

    Args:
        shard: the shard the row was read from, named in errors.
        row: a description of the row (its key), named in errors.

    Raises:
        CorruptStoreDataError: a value has the wrong type or the meta is not JSON.
    """
    for name, value in (
        ("instance_id", instance_id),
        ("internal_id", internal_id),
        ("alarm_id", alarm_id),
        ("meta", meta),
    ):
        if not isinstance(value, str):
            raise corrupt(shard, row, f"{name} is {value!r}, expected text")
        if not value and name != "meta":
            raise corrupt(shard, row, f"{name} is empty, expected a non-empty id")
    for name, value in (("fires_at_us", fires_at_us), ("attempt", attempt), ("revision", revision)):
        if not _is_int(value):
            raise corrupt(shard, row, f"{name} is {value!r}, expected an integer")
    for name, value in (("fires_at_us", fires_at_us), ("attempt", attempt)):
        if value < 0:
            raise corrupt(shard, row, f"{name} is {value!r}, expected an integer >= 0")
    try:
        meta_value = decode_meta(meta)
    except ValueError as exc:
        raise corrupt(shard, row, f"meta is not valid JSON ({exc}): {meta[:80]!r}") from exc
    return Alarm(
        instance_id=instance_id,
        internal_id=internal_id,
        alarm_id=alarm_id,
        fires_at_us=fires_at_us,
        meta=meta_value,
        attempt=attempt,
        revision=revision,
    )


def describe_row(internal_id: object, alarm_id: object) -> str:
    """Return the row description used in :class:`CorruptStoreDataError` messages."""
    return f"alarm (internal_id={internal_id!r}, alarm_id={alarm_id!r})"


class Lifecycle:
    """Tracks whether a store was closed, so later calls raise a clear error."""

    __slots__ = ("_closed", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> bool:
        """Mark the store closed; return whether it was open before."""
        was_open = not self._closed
        self._closed = True
        return was_open

    def check_open(self) -> None:
        """Raise :class:`LifecycleError` if the store was closed."""
        if self._closed:
            raise LifecycleError(f"{self._name} is closed; open a new store to use it again")
