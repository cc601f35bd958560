"""Host patterns, hashing and the shard-to-host map.

Routing is identical to the Go library StableInterfaces: an instance id maps to
its internal id by SHA-256 and RFC 4648 base32 without padding, and to shard
``murmur2(internal_id) % shards`` with Kafka's murmur2; shard ``i`` belongs to
``hosts[i % len(hosts)]``.

Hashing an instance id costs a SHA-256, a base32 encoding and a murmur2 loop in
Python, and a host routes the same ids again and again, so the results for
recently seen ids are kept in a bounded least-recently-used cache. The cache
stores only results of pure functions, so it never changes a result.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

from simsi.core.errors import ConfigError

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_HOST_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_MAX_HOSTS = 100_000

_MURMUR_SEED = 0x9747B28C
_MURMUR_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF

#: Instance ids whose internal id and hash stay cached (about 200 bytes each).
ROUTE_CACHE_SIZE = 1 << 16


def expand_hosts(pattern: str) -> list[str]:
    """Expand a host pattern such as ``host-{0..2}`` into host ids.

    A pattern holds at most one ``{start..end}`` range with ``start <= end``;
    a pattern without a range is a single host. Host ids may contain letters,
    digits, ``.``, ``_`` and ``-``.

    Raises:
        ConfigError: the pattern is empty, malformed, reversed or too large.
    """
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(
            f"host pattern must be a non-empty string like 'host-{{0..2}}', got {pattern!r}"
        )
    ranges = list(_RANGE.finditer(pattern))
    if len(ranges) > 1:
        raise ConfigError(
            f"host pattern {pattern!r} has {len(ranges)} ranges; use exactly one, like 'host-{{0..2}}'"
        )
    if not ranges:
        _check_host_chars(pattern, pattern)
        return [pattern]
    match = ranges[0]
    prefix, suffix = pattern[: match.start()], pattern[match.end() :]
    for part in (prefix, suffix):
        if part:
            _check_host_chars(part, pattern)
    start, end = int(match.group(1)), int(match.group(2))
    if start > end:
        raise ConfigError(
            f"host pattern {pattern!r} has a reversed range {start}..{end}; write {{{end}..{start}}}"
        )
    if end - start + 1 > _MAX_HOSTS:
        raise ConfigError(f"host pattern {pattern!r} expands to more than {_MAX_HOSTS} hosts")
    return [f"{prefix}{i}{suffix}" for i in range(start, end + 1)]


def _check_host_chars(part: str, pattern: str) -> None:
    if _HOST_CHARS.fullmatch(part) is None:
        raise ConfigError(
            f"host pattern {pattern!r} is malformed near {part!r}: use letters, digits, '.', '_', '-' "
            "and at most one range written '{start..end}', like 'host-{0..2}'"
        )


def murmur2(data: bytes) -> int:
    """Return Kafka's murmur2 hash of ``data`` (seed ``0x9747b28c``) as an unsigned 32-bit int."""
    length = len(data)
    h = (_MURMUR_SEED ^ length) & _MASK32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _MURMUR_M) & _MASK32
        k ^= k >> 24
        k = (k * _MURMUR_M) & _MASK32
        h = (h * _MURMUR_M) & _MASK32
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _MURMUR_M) & _MASK32
    h ^= h >> 13
    h = (h * _MURMUR_M) & _MASK32
    h ^= h >> 15
    return h


def _compute_internal_id(instance_id: str) -> str:
    try:
        data = instance_id.encode()
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"instance id {instance_id!r} is not valid Unicode text (it holds a lone "
            f"surrogate at index {exc.start}); use ids that encode as UTF-8"
        ) from exc
    digest = hashlib.sha256(data).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=")


@lru_cache(maxsize=ROUTE_CACHE_SIZE)
def _cached_route(instance_id: str) -> tuple[str, int]:
    internal = _compute_internal_id(instance_id)
    return internal, murmur2(internal.encode())


def route_of(instance_id: str) -> tuple[str, int]:
    """Return the internal id of ``instance_id`` and the murmur2 hash of that internal id.

    The shard among ``shards`` shards is the hash modulo ``shards``. Results for
    recently used ids come from a cache of :data:`ROUTE_CACHE_SIZE` entries.
    """
    if type(instance_id) is str:
        return _cached_route(instance_id)
    internal = _compute_internal_id(instance_id)
    return internal, murmur2(internal.encode())


def internal_id(instance_id: str) -> str:
    """Return the 52-character internal id: SHA-256, base32 (RFC 4648), padding removed."""
    if type(instance_id) is str:
        return _cached_route(instance_id)[0]
    return _compute_internal_id(instance_id)


def shard_of_internal_id(internal: str, shards: int) -> int:
    """Return the shard of an internal id among ``shards`` shards."""
    return murmur2(internal.encode()) % shards


class Placement:
    """The shard-to-host map of one cluster configuration.

    Args:
        hosts: a host pattern such as ``"host-{0..2}"`` or an explicit list of host ids.
        shards: the number of shards; at least the number of hosts.

    Raises:
        ConfigError: the pattern is malformed, host ids repeat, or ``shards`` is too small.
    """

    __slots__ = ("_hosts", "_index", "_shards")

    def __init__(self, hosts: str | Sequence[str], shards: int) -> None:
        host_list = expand_hosts(hosts) if isinstance(hosts, str) else [str(h) for h in hosts]
        if not host_list:
            raise ConfigError("a placement needs at least one host")
        if len(set(host_list)) != len(host_list):
            raise ConfigError(f"host ids must be unique, got {host_list!r}")
        if isinstance(shards, bool) or not isinstance(shards, int):
            raise ConfigError(f"shards must be an integer, got {shards!r}")
        if shards < len(host_list):
            raise ConfigError(
                f"shards={shards} is fewer than the {len(host_list)} hosts; "
                f"use at least {len(host_list)} shards so every host owns one"
            )
        self._hosts = tuple(host_list)
        self._shards = shards
        self._index = {host: i for i, host in enumerate(self._hosts)}

    @property
    def hosts(self) -> tuple[str, ...]:
        """Host ids in pattern order."""
        return self._hosts

    @property
    def shards(self) -> int:
        """The number of shards."""
        return self._shards

    def check_host(self, host_id: str) -> None:
        """Raise :class:`ConfigError` unless ``host_id`` is one of the placement's hosts."""
        if host_id not in self._index:
            raise ConfigError(
                f"host id {host_id!r} is not in the hosts pattern {list(self._hosts)!r}; "
                "pass one of those ids or fix the pattern"
            )

    def shard_of(self, instance_id: str) -> int:
        """Return the shard of an instance id."""
        return route_of(instance_id)[1] % self._shards

    def owner_of_shard(self, shard: int) -> str:
        """Return the host id that owns ``shard``."""
        if not 0 <= shard < self._shards:
            raise ConfigError(f"shard {shard} is outside 0..{self._shards - 1}")
        return self._hosts[shard % len(self._hosts)]

    def owner(self, instance_id: str) -> str:
        """Return the host id that owns an instance id."""
        hosts = self._hosts
        return hosts[route_of(instance_id)[1] % self._shards % len(hosts)]

    def shards_of(self, host_id: str) -> list[int]:
        """Return the shards owned by ``host_id``, ascending.

        Raises:
            ConfigError: ``host_id`` is not one of the placement's hosts.
        """
        self.check_host(host_id)
        index = self._index[host_id]
        return list(range(index, self._shards, len(self._hosts)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Placement):
            return NotImplemented
        return self._hosts == other._hosts and self._shards == other._shards

    def __hash__(self) -> int:
        return hash((self._hosts, self._shards))

    def __repr__(self) -> str:
        return f"Placement(hosts={list(self._hosts)!r}, shards={self._shards})"
