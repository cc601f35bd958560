"""The Redis alarm store: sorted sets for order, hashes for bodies, Lua for atomicity.

Durability: Redis acknowledges a write before it reaches disk unless the server
runs with append-only files and fsync on every write (``appendonly yes`` and
``appendfsync always``). With ``appendfsync everysec``, about the last second of
acknowledged alarms can be lost in a crash, and RDB snapshots alone lose
everything written since the last snapshot. Replication is asynchronous, so a
failover can lose acknowledged writes too. Pass ``require_fsync=True`` to make
the store check the server's settings before its first call.

Ordering: every member of a shard's ``order`` set has score 0, and the member
starts with ``fires_at_us`` as 16 lowercase hex digits, followed by
``internal_id``, NUL and ``alarm_id``. Redis orders members with equal scores
byte by byte. The fixed-width hex sorts like the number, UTF-8 sorts like code
points, and NUL sorts below every character an id may contain, because ids never
contain NUL. So the set is ordered by ``(fires_at_us, internal_id, alarm_id)``,
and a page is one ``ZRANGEBYLEX`` from just after the ``after`` member, exact for
any 64-bit time. A float score of ``fires_at_us`` would be exact only up to
2**53 and would still need the member order for ties.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio
import redis.exceptions

from simsi.core.alarms import Alarm, AlarmKey, DoneReason
from simsi.core.errors import (
    ConfigError,
    CorruptStoreDataError,
    StoreError,
    StoreUnavailableError,
)
from simsi.stores import redis_scripts
from simsi.stores._common import (
    Lifecycle,
    check_alarm,
    check_done_args,
    check_id,
    check_page_args,
    check_revision,
    check_shard,
    corrupt,
    decode_alarm,
    describe_row,
)

_MAX_POSITION_TIME = 16**16 - 1

#: Alarms per ``MULTI``/``EXEC`` block of :meth:`RedisAlarmStore.set_alarms`.
BULK_BLOCK = 1000


class RedisAlarmStore:
    """An :class:`~simsi.core.alarms.AlarmStore` in Redis; see the module docstring.

    Keys of shard ``s`` start with ``{prefix}:{s}:`` (the braces around ``s`` are a
    Redis Cluster hash tag): ``order`` and ``ids`` sorted sets and one ``alarm:``
    hash per alarm. Every change runs as one Lua script, so it is atomic.

    Args:
        url: a ``redis://``, ``rediss://`` or ``unix://`` URL.
        prefix: the start of every key; deployments sharing a server use different ones.
        timeout: seconds to wait for a connection or a reply before a call raises
            :class:`~simsi.core.errors.StoreUnavailableError`.
        max_connections: the maximum number of connections; more concurrent calls wait.
        require_fsync: check before the first call that the server runs with
            ``appendonly yes`` and ``appendfsync always``, and raise
            :class:`~simsi.core.errors.ConfigError` otherwise.

    Raises:
        ConfigError: the prefix, the timeout or ``max_connections`` is invalid.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "simsi",
        timeout: float = 10.0,
        max_connections: int = 20,
        require_fsync: bool = False,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(
                f"Redis key prefix must be a non-empty string without '{{' or '}}', "
                f"which would change the cluster hash tag; got {prefix!r}"
            )
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._prefix = prefix
        self._where = f"Redis {redis_location(url)} prefix {prefix!r}"
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigError(f"max_connections must be an integer, got {max_connections!r}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, got {max_connections!r}")
        # A blocking pool makes calls wait for a free connection (up to ``timeout``)
        # instead of failing when many tasks call at once.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._client = redis.asyncio.Redis.from_pool(pool)
        self._set_script = self._client.register_script(redis_scripts.SET_ALARM)
        self._done_script = self._client.register_script(redis_scripts.MARK_DONE)
        self._page_script = self._client.register_script(redis_scripts.GET_PAGE)
        self._instance_script = self._client.register_script(redis_scripts.GET_INSTANCE)
        self._fsync_checked = not require_fsync
        self._lifecycle = Lifecycle(f"RedisAlarmStore(prefix={prefix!r})")

    @property
    def prefix(self) -> str:
        """The start of every key of this store."""
        return self._prefix

    async def get_next_alarms(
        self, shard: int, after: AlarmKey | None = None, limit: int = 100
    ) -> list[Alarm]:
        """Return up to ``limit`` alarms of ``shard`` ordered by key, strictly after ``after``."""
        check_page_args(shard, after, limit)
        if after is None or after[0] < 0:
            minimum = b"-"
        elif after[0] > _MAX_POSITION_TIME:
            return []
        else:
            minimum = b"(" + _position(*after)
        keys = [self._key(shard, "order")]
        args = [minimum, limit, self._key(shard, "alarm:")]
        reply = await self._call(self._page_script, keys, args)
        return self._decode_reply(shard, reply, id_offset=16)

    async def get_alarms(self, shard: int, internal_id: str) -> list[Alarm]:
        """Return every alarm of one instance, ordered by key."""
        check_shard(shard)
        check_id("internal_id", internal_id)
        owner = internal_id.encode()
        keys = [self._key(shard, "ids")]
        args = [b"[" + owner + b"\x00", b"(" + owner + b"\x01", self._key(shard, "alarm:")]
        reply = await self._call(self._instance_script, keys, args)
        alarms = self._decode_reply(shard, reply, id_offset=0)
        alarms.sort(key=lambda alarm: alarm.key)
        return alarms

    async def set_alarm(self, shard: int, alarm: Alarm, *, if_revision: int | None = None) -> bool:
        """Create or replace an alarm; return whether it was written.

        With ``if_revision``, write only if the stored alarm with the same
        ``(internal_id, alarm_id)`` exists and has that revision.
        """
        meta = check_alarm(shard, alarm)
        if if_revision is not None:
            check_revision("if_revision", if_revision)
        ident = _ident(alarm.internal_id, alarm.alarm_id)
        args = [
            ident,
            _position(*alarm.key),
            alarm.instance_id,
            alarm.fires_at_us,
            meta,
            alarm.attempt,
            alarm.revision,
            "" if if_revision is None else str(if_revision),
        ]
        reply = await self._call(self._set_script, self._alarm_keys(shard, ident), args)
        return bool(reply)

    async def set_alarms(self, shard: int, alarms: list[Alarm]) -> None:
        """Create or replace every alarm of ``alarms`` in ``shard``.

        Runs the ``set_alarm`` script once per alarm, pipelined in ``MULTI``/``EXEC``
        blocks of :data:`BULK_BLOCK` alarms, so no other client's command runs inside
        a block. If a block fails, the blocks before it stay written. Alarms are
        written in list order, so a later alarm with the same ids wins. Every alarm
        is validated before any is written.
        """
        check_shard(shard)
        calls: list[tuple[list[bytes], list[Any]]] = []
        for alarm in alarms:
            meta = check_alarm(shard, alarm)
            ident = _ident(alarm.internal_id, alarm.alarm_id)
            args: list[Any] = [
                ident,
                _position(*alarm.key),
                alarm.instance_id,
                alarm.fires_at_us,
                meta,
                alarm.attempt,
                alarm.revision,
                "",
            ]
            calls.append((self._alarm_keys(shard, ident), args))
        self._lifecycle.check_open()
        for start in range(0, len(calls), BULK_BLOCK):
            block = calls[start : start + BULK_BLOCK]
            try:
                if not self._fsync_checked:
                    await self._check_fsync()
                async with self._client.pipeline(transaction=True) as pipe:
                    for keys, args in block:
                        await self._set_script(keys=keys, args=args, client=pipe)
                    await pipe.execute()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                raise StoreUnavailableError(
                    f"{self._where} is unreachable: {exc}; {start} of {len(calls)} alarms were "
                    "written; check that the server is running, then retry"
                ) from exc
            except redis.exceptions.ResponseError as exc:
                if redis_scripts.CORRUPT_MARKER in str(exc):
                    raise CorruptStoreDataError(
                        f"{self._where}: shard {shard}: {exc}; that alarm was not written, the "
                        "other alarms of its block were. Delete or repair the alarm hash that "
                        "lacks its pos field."
                    ) from exc
                raise StoreError(f"{self._where} failed: {exc}") from exc
            except redis.exceptions.RedisError as exc:
                raise StoreError(f"{self._where} failed: {type(exc).__name__}: {exc}") from exc

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
        ident = _ident(internal_id, alarm_id)
        args = [ident, "" if if_revision is None else str(if_revision)]
        reply = await self._call(self._done_script, self._alarm_keys(shard, ident), args)
        return bool(reply)

    async def close(self) -> None:
        """Close the client's connections; calling it again does nothing."""
        if self._lifecycle.close():
            await self._client.aclose()

    def _key(self, shard: int, name: str) -> bytes:
        return f"{self._prefix}:{{{shard}}}:{name}".encode()

    def _alarm_keys(self, shard: int, ident: bytes) -> list[bytes]:
        return [
            self._key(shard, "order"),
            self._key(shard, "ids"),
            self._key(shard, "alarm:") + ident,
        ]

    async def _call(self, script: Any, keys: list[bytes], args: list[Any]) -> Any:
        self._lifecycle.check_open()
        try:
            if not self._fsync_checked:
                await self._check_fsync()
            return await script(keys=keys, args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailableError(
                f"{self._where} is unreachable: {exc}; check that the server is running, then retry"
            ) from exc
        except redis.exceptions.ResponseError as exc:
            if redis_scripts.CORRUPT_MARKER in str(exc):
                raise CorruptStoreDataError(
                    f"{self._where}: key {keys[-1]!r}: {exc}; nothing was changed. "
                    "Delete or repair that key; simsi writes keys only through an AlarmStore."
                ) from exc
            raise StoreError(f"{self._where} failed: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"{self._where} failed: {type(exc).__name__}: {exc}") from exc

    async def _check_fsync(self) -> None:
        appendonly = await self._client.config_get("appendonly")
        appendfsync = await self._client.config_get("appendfsync")
        settings = {**appendonly, **appendfsync}
        values = {_text(k): _text(v) for k, v in settings.items()}
        if values.get("appendonly") != "yes" or values.get("appendfsync") != "always":
            raise ConfigError(
                f"{self._where} runs with appendonly={values.get('appendonly')!r} and "
                f"appendfsync={values.get('appendfsync')!r}, so acknowledged alarms can be lost; "
                "set 'appendonly yes' and 'appendfsync always', or pass require_fsync=False"
            )
        self._fsync_checked = True

    def _decode_reply(self, shard: int, reply: list[Any], id_offset: int) -> list[Alarm]:
        alarms = []
        for member, fields in zip(reply[::2], reply[1::2], strict=True):
            alarms.append(self._decode_alarm(shard, bytes(member)[id_offset:], fields))
        return alarms

    def _decode_alarm(self, shard: int, ident: bytes, fields: list[bytes]) -> Alarm:
        internal, _, alarm_id = ident.partition(b"\x00")
        row = describe_row(_text(internal), _text(alarm_id))
        if not fields:
            raise corrupt(shard, row, "the sorted sets list it but its alarm hash is missing")
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        try:
            text = {name: values[name.encode()].decode() for name in _FIELDS}
            alarm = decode_alarm(
                shard,
                row,
                instance_id=text["instance_id"],
                internal_id=internal.decode(),
                alarm_id=alarm_id.decode(),
                fires_at_us=int(text["fires_at_us"]),
                meta=text["meta"],
                attempt=int(text["attempt"]),
                revision=int(text["revision"]),
            )
        except KeyError as exc:
            raise corrupt(shard, row, f"alarm hash has no field {exc}") from exc
        except ValueError as exc:
            raise corrupt(shard, row, f"alarm hash has an invalid field: {exc}") from exc
        if values[b"pos"] != _position(*alarm.key):
            raise corrupt(shard, row, f"pos {values[b'pos']!r} does not match its fields")
        return alarm


_FIELDS = ("pos", "instance_id", "fires_at_us", "meta", "attempt", "revision")


def _ident(internal_id: str, alarm_id: str) -> bytes:
    return internal_id.encode() + b"\x00" + alarm_id.encode()


def _position(fires_at_us: int, internal_id: str, alarm_id: str) -> bytes:
    return b"%016x" % fires_at_us + _ident(internal_id, alarm_id)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def redis_location(url: str) -> str:
    """Return the host, port and database of a Redis URL, leaving out any password."""
    try:
        kwargs = redis.asyncio.connection.parse_url(url)
    except ValueError:
        return "(invalid URL)"
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
