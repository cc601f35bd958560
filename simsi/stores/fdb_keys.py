"""Key and value layout of the FoundationDB alarm store, in ``fdb.tuple`` encoding.

Under a subspace prefix ``p`` (a string), each alarm has two keys:

- ``(p, "a", shard, fires_at_us, internal_id, alarm_id)`` contains the record
  ``(1, instance_id, meta_json, attempt, revision)``. The tuple encoding sorts
  integers numerically and strings by code point, so a range read of
  ``(p, "a", shard)`` returns a shard's alarms in ``(fires_at_us, internal_id,
  alarm_id)`` order;
- ``(p, "i", shard, internal_id, alarm_id)`` contains ``(fires_at_us,)``, the index
  that finds an alarm by id and lists the alarms of one instance.

The leading 1 of a record is its format version.
"""

from __future__ import annotations

import struct
from typing import Any

import fdb.tuple

from simsi.core.alarms import Alarm
from simsi.core.errors import ConfigError
from simsi.stores._common import corrupt, decode_alarm, describe_row

RECORD_FORMAT = 1

# Exceptions fdb.tuple.unpack raises on bytes it cannot decode.
_DECODE_ERRORS = (ValueError, IndexError, KeyError, TypeError, struct.error)


class AlarmKeyspace:
    """Encodes and decodes the keys and values of one subspace prefix.

    Args:
        prefix: the first element of every key; separate deployments sharing a
            cluster use different prefixes.

    Raises:
        ConfigError: ``prefix`` is not a non-empty string.
    """

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"FoundationDB key prefix must be a non-empty string, got {prefix!r}")
        self.prefix = prefix

    def subspace_range(self) -> tuple[bytes, bytes]:
        """Return the key range holding everything under the prefix."""
        return self._range((self.prefix,))

    def shard_range(self, shard: int) -> tuple[bytes, bytes]:
        """Return the key range of a shard's alarm records."""
        return self._range((self.prefix, "a", shard))

    def instance_range(self, shard: int, internal_id: str) -> tuple[bytes, bytes]:
        """Return the key range of one instance's index entries."""
        return self._range((self.prefix, "i", shard, internal_id))

    def alarm_key(self, shard: int, fires_at_us: int, internal_id: str, alarm_id: str) -> bytes:
        """Return the key of an alarm record."""
        return fdb.tuple.pack((self.prefix, "a", shard, fires_at_us, internal_id, alarm_id))

    def index_key(self, shard: int, internal_id: str, alarm_id: str) -> bytes:
        """Return the key of an alarm's index entry."""
        return fdb.tuple.pack((self.prefix, "i", shard, internal_id, alarm_id))

    @staticmethod
    def encode_record(alarm: Alarm, meta_text: str) -> bytes:
        """Return the record value of ``alarm`` with its meta already encoded."""
        return fdb.tuple.pack(
            (RECORD_FORMAT, alarm.instance_id, meta_text, alarm.attempt, alarm.revision)
        )

    @staticmethod
    def encode_index(fires_at_us: int) -> bytes:
        """Return the index value of an alarm due at ``fires_at_us``."""
        return fdb.tuple.pack((fires_at_us,))

    def decode_alarm(self, shard: int, key: bytes, value: bytes) -> Alarm:
        """Decode an alarm record read from ``shard``.

        Raises:
            CorruptStoreDataError: the key or the value is not in the layout above.
        """
        parts = self._unpack(shard, f"key {key!r}", key)
        if len(parts) != 6 or parts[:3] != (self.prefix, "a", shard):
            raise corrupt(shard, f"key {key!r}", "is not an alarm key of this shard")
        _, _, _, fires_at_us, internal_id, alarm_id = parts
        row = describe_row(internal_id, alarm_id)
        record = self._unpack(shard, row, value)
        if len(record) != 5 or record[0] != RECORD_FORMAT:
            raise corrupt(shard, row, f"record {value[:80]!r} is not in format {RECORD_FORMAT}")
        _, instance_id, meta, attempt, revision = record
        return decode_alarm(
            shard,
            row,
            instance_id=instance_id,
            internal_id=internal_id,
            alarm_id=alarm_id,
            fires_at_us=fires_at_us,
            meta=meta,
            attempt=attempt,
            revision=revision,
        )

    def decode_index(self, shard: int, key: bytes, value: bytes) -> tuple[str, str, int]:
        """Decode an index entry into ``(internal_id, alarm_id, fires_at_us)``.

        Raises:
            CorruptStoreDataError: the key or the value is not in the layout above.
        """
        parts = self._unpack(shard, f"index key {key!r}", key)
        if (
            len(parts) != 5
            or parts[:3] != (self.prefix, "i", shard)
            or not isinstance(parts[3], str)
            or not isinstance(parts[4], str)
        ):
            raise corrupt(shard, f"index key {key!r}", "is not an index key of this shard")
        row = describe_row(parts[3], parts[4])
        fires = self._unpack(shard, row, value)
        if len(fires) != 1 or isinstance(fires[0], bool) or not isinstance(fires[0], int):
            raise corrupt(shard, row, f"index value {value!r} is not (fires_at_us,)")
        return parts[3], parts[4], fires[0]

    @staticmethod
    def _unpack(shard: int, row: str, data: bytes) -> tuple[Any, ...]:
        try:
            return tuple(fdb.tuple.unpack(data))
        except _DECODE_ERRORS as exc:
            raise corrupt(shard, row, f"cannot decode {data[:80]!r}: {exc}") from exc

    @staticmethod
    def _range(prefix: tuple[Any, ...]) -> tuple[bytes, bytes]:
        packed = fdb.tuple.pack(prefix)
        return packed + b"\x00", packed + b"\xff"
