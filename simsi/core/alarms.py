"""Alarm records, the AlarmStore protocol and time/meta encoding shared by every store.

Times are seconds since the Unix epoch (floats) in the public API. Stores and the
scheduler keep integer microseconds, rounded up so no alarm fires before the time
it was given. Alarms of a shard are ordered by ``(fires_at_us, internal_id, alarm_id)``.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from simsi.core.errors import InvalidAlarmMetaError

MICROS_PER_SECOND = 1_000_000

#: Largest encoded meta (UTF-8 JSON bytes) a store must accept. FoundationDB's
#: value limit is 100 kB, so 64 KiB leaves room for the rest of the record.
MAX_META_BYTES = 64 * 1024

#: An alarm's position in its shard's order: ``(fires_at_us, internal_id, alarm_id)``.
AlarmKey = tuple[int, str, str]


class DoneReason(enum.Enum):
    """The reason an alarm left the store."""

    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    #: The alarm was copied to another shard by a reshard; it was not delivered here.
    MOVED = "moved"


def to_micros(seconds: float) -> int:
    """Convert epoch seconds to the smallest integer microsecond not before ``seconds``.

    Raises:
        ValueError: ``seconds`` is NaN or infinite.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"alarm time must be a finite number of seconds, got {seconds!r}")
    micros = round(seconds * MICROS_PER_SECOND)
    if micros / MICROS_PER_SECOND < seconds:
        micros += 1
    return micros


def from_micros(micros: int) -> float:
    """Convert integer microseconds since the epoch to float seconds."""
    return micros / MICROS_PER_SECOND


# One encoder for every call: json.dumps builds a new encoder per call when given options.
_META_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)

# The string encoder _META_ENCODER uses (ensure_ascii is on), the C one where available.
_encode_string = json.encoder.encode_basestring_ascii

_SCALAR_TEXT = {None: "null", True: "true", False: "false"}

# Larger ints take the general path, whose errors (such as Python's limit on the
# digits of an int converted to text) become InvalidAlarmMetaError.
_LARGE_INT = 2**64


def _encode_flat(meta: dict[Any, Any]) -> str | None:
    """Return the canonical JSON text of a flat dict, or ``None`` for any other dict.

    A flat dict has ``str`` keys and ``str``, ``int`` (below 2**64 in magnitude),
    ``bool`` or ``None`` values of exactly those types. The text equals what ``_META_ENCODER`` returns, at a
    fraction of the cost for the small dicts alarms usually carry.
    """
    items: list[tuple[str, str]] = []
    for key, value in meta.items():
        if key.__class__ is not str:
            return None
        kind = value.__class__
        if kind is str:
            items.append((key, _encode_string(value)))
        elif kind is int and -_LARGE_INT < value < _LARGE_INT:
            items.append((key, int.__repr__(value)))
        elif value is None or kind is bool:
            items.append((key, _SCALAR_TEXT[value]))
        else:
            return None
    items.sort()
    return "{" + ",".join([f"{_encode_string(key)}:{text}" for key, text in items]) + "}"


def _check_size(text: str) -> None:
    size = len(text.encode())
    if size > MAX_META_BYTES:
        raise InvalidAlarmMetaError(
            f"alarm meta is {size} bytes as JSON, above the limit of {MAX_META_BYTES}; "
            "store large data elsewhere and put its key in the meta"
        )


def encode_meta(meta: Any) -> str:
    """Serialise alarm meta to canonical JSON text.

    Raises:
        InvalidAlarmMetaError: ``meta`` is not JSON-serialisable (NaN and infinity
            included) or its encoding exceeds :data:`MAX_META_BYTES`.
    """
    text = _encode_flat(meta) if meta.__class__ is dict else None
    if text is None:
        try:
            text = _META_ENCODER.encode(meta)
        except (TypeError, ValueError) as exc:
            raise InvalidAlarmMetaError(
                f"alarm meta must be JSON-serialisable (dict with str keys, list, str, int, "
                f"float, bool, None), got {type(meta).__name__}: {exc}"
            ) from exc
        except RecursionError as exc:
            raise InvalidAlarmMetaError(
                "alarm meta is nested too deeply to encode as JSON; flatten it or store it "
                "elsewhere and put its key in the meta"
            ) from exc
    _check_size(text)
    return text


def decode_meta(text: str) -> Any:
    """Parse meta JSON written by :func:`encode_meta`."""
    return json.loads(text)


def canonical_meta(meta: Any) -> Any:
    """Return ``meta`` as a store gives it back: ``decode_meta(encode_meta(meta))``.

    Raises:
        InvalidAlarmMetaError: as :func:`encode_meta`.
    """
    if meta is None:
        return None
    if meta.__class__ is dict:
        text = _encode_flat(meta)
        if text is not None:
            _check_size(text)
            # JSON text of a flat dict decodes to an equal dict with keys in sorted order.
            return {key: meta[key] for key in sorted(meta)}
    return decode_meta(encode_meta(meta))


@dataclass(frozen=True, slots=True)
class Alarm:
    """One durable alarm of one instance.

    Attributes:
        instance_id: the user-facing instance id, used to re-activate the instance.
        internal_id: the instance's internal id (see :func:`simsi.core.placement.internal_id`).
        alarm_id: the alarm's id, unique within its instance.
        fires_at_us: when the alarm is due, integer microseconds since the epoch.
        meta: JSON-serialisable data handed to ``on_alarm``.
        attempt: how many delivery attempts have failed so far (persisted).
        revision: an id the caller assigns on every set and the store keeps verbatim;
            conditional updates compare it so a retry or completion never overwrites an
            alarm that was replaced meanwhile.

    Stores accept ``fires_at_us`` and ``attempt`` from 0 to 2**63 - 1, ``revision`` as
    a signed 64-bit integer, and ids of at most 1,000 UTF-8 bytes without NUL.
    """

    instance_id: str
    internal_id: str
    alarm_id: str
    fires_at_us: int
    meta: Any = None
    attempt: int = 0
    revision: int = field(default=0)

    @property
    def fires_at(self) -> float:
        """When the alarm is due, in seconds since the epoch."""
        return from_micros(self.fires_at_us)

    @property
    def key(self) -> AlarmKey:
        """The alarm's position in its shard's order."""
        return (self.fires_at_us, self.internal_id, self.alarm_id)

    def with_changes(self, **changes: Any) -> Alarm:
        """Return a copy with the given fields replaced.

        Raises:
            TypeError: a keyword is not a field of :class:`Alarm`.
        """
        # Builds the copy directly: dataclasses.replace costs about twice as much.
        if not changes.keys() <= _ALARM_FIELDS:
            unknown = ", ".join(sorted(changes.keys() - _ALARM_FIELDS))
            raise TypeError(
                f"invalid Alarm field {unknown}; valid fields: {', '.join(_FIELD_ORDER)}"
            )
        get = changes.get
        return Alarm(
            get("instance_id", self.instance_id),
            get("internal_id", self.internal_id),
            get("alarm_id", self.alarm_id),
            get("fires_at_us", self.fires_at_us),
            get("meta", self.meta),
            get("attempt", self.attempt),
            get("revision", self.revision),
        )


_FIELD_ORDER = tuple(item.name for item in fields(Alarm))
_ALARM_FIELDS = frozenset(_FIELD_ORDER)


@runtime_checkable
class AlarmStore(Protocol):
    """Durable alarm storage, partitioned by shard.

    Every implementation passes ``simsi.testing.conformance``. Methods may raise
    :class:`~simsi.core.errors.StoreUnavailableError` for transient failures and
    :class:`~simsi.core.errors.CorruptStoreDataError` for rows they cannot decode.
    ``limit`` must be from 1 to 100,000 (``ValueError`` otherwise). Calls after
    :meth:`close` raise :class:`~simsi.core.errors.LifecycleError`; closing twice is
    allowed.
    """

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``."""

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        With ``if_revision``, write only if the stored alarm with the same
        ``(internal_id, alarm_id)`` exists and has that revision.
        """

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

        Unknown ids remove nothing and are not an error, so the call is idempotent.
        With ``if_revision``, remove only an alarm that still has that revision.
        """

    async def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""
