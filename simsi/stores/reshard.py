"""Move stored alarms to the shards of a new shard count: ``simsi reshard``.

An alarm belongs to shard ``murmur2(internal_id) % shards``, so changing the shard
count of a cluster strands every alarm whose shard changes: no host loads it.
Resharding reads each old shard page by page and, for every alarm whose new shard
differs, writes an identical copy (same revision) to the new shard and then
removes the old copy with ``mark_alarm_done(..., if_revision=revision)``.

Run it while no host serves the store: stop the hosts, reshard, then start them
with the new shard count. A host running meanwhile could fire or change an alarm
between the copy and the removal.

The run is resumable and idempotent. After each page it writes a checkpoint (the
current old shard and the last key done) atomically to a state file. A crash
between a copy and its removal leaves both copies, and the next run repeats the
page: the copy is written again unchanged and the old one is removed. A run that
starts from a finished state file scans every shard again, which moves nothing.

The old copy is removed with :data:`MOVED_REASON`, ``DoneReason.CANCELLED``: the
alarm was withdrawn from that shard without being delivered, which ``SUCCEEDED``
would claim, and it did not fail, which ``ATTEMPTS_EXHAUSTED`` would claim.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simsi.core.alarms import Alarm, AlarmKey, AlarmStore, DoneReason
from simsi.core.errors import ConfigError, StoreError
from simsi.core.placement import shard_of_internal_id
from simsi.stores._common import MAX_PAGE_LIMIT
from simsi.stores.bulk import set_alarms

logger = logging.getLogger("simsi.stores.reshard")

#: The reason given to ``mark_alarm_done`` for the old copy of a moved alarm.
MOVED_REASON = DoneReason.CANCELLED

#: Format version of the state file.
STATE_VERSION = 1

#: Maximum number of store calls of one page that run at once.
CONCURRENT_CALLS = 32


@dataclass(slots=True)
class ShardCounts:
    """What resharding did to one old shard.

    Attributes:
        scanned: alarms read from the shard (an alarm moved into a shard that is
            scanned later is read again there).
        moved: alarms copied to their new shard and removed from this one.
        conflicts: alarms copied whose old copy had changed or gone before its
            removal. Such an old copy is left as it is, and a second run moves it.
        finished: whether the shard's last page is done.
    """

    scanned: int = 0
    moved: int = 0
    conflicts: int = 0
    finished: bool = False


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """A progress report after one page: ``counts`` of ``shard`` so far."""

    shard: int
    from_shards: int
    counts: ShardCounts


@dataclass(slots=True)
class ReshardResult:
    """The outcome of :func:`reshard`, counted from the start of the pass over the shards.

    A run resumed from a state file includes the counts of the runs before it.
    """

    from_shards: int
    to_shards: int
    shards: dict[int, ShardCounts] = field(default_factory=dict)
    resumed_at: int | None = None
    seconds: float = 0.0

    @property
    def scanned(self) -> int:
        """Alarms read, summed over the old shards."""
        return sum(counts.scanned for counts in self.shards.values())

    @property
    def moved(self) -> int:
        """Alarms moved to a new shard."""
        return sum(counts.moved for counts in self.shards.values())

    @property
    def conflicts(self) -> int:
        """Alarms whose old copy changed during the move and was left in place."""
        return sum(counts.conflicts for counts in self.shards.values())

    def summary(self) -> str:
        """Return the one-line summary the command prints."""
        resumed = "" if self.resumed_at is None else f", resumed at shard {self.resumed_at}"
        return (
            f"resharded {self.from_shards} -> {self.to_shards} shards: scanned {self.scanned} "
            f"alarms, moved {self.moved}, conflicts {self.conflicts} in {self.seconds:.1f} s"
            f"{resumed}"
        )


@dataclass(slots=True)
class _State:
    shard: int = 0
    after: AlarmKey | None = None
    finished: bool = False
    counts: dict[int, ShardCounts] = field(default_factory=dict)


def check_arguments(from_shards: object, to_shards: object, batch: object) -> None:
    """Validate the shard counts and the page size of a reshard.

    Raises:
        ConfigError: a count is not an integer >= 1, or ``batch`` is outside 1..100,000.
    """
    for name, value, fix in (
        ("from_shards", from_shards, "pass the shard count the hosts ran with"),
        ("to_shards", to_shards, "pass the shard count the hosts will run with"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}; {fix}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_PAGE_LIMIT:
        raise ConfigError(
            f"batch must be an integer from 1 to {MAX_PAGE_LIMIT} alarms, got {batch!r}; "
            "leave it out for the default of 1000"
        )


async def reshard(
    store: AlarmStore,
    from_shards: int,
    to_shards: int,
    *,
    batch: int = 1000,
    state_path: str | os.PathLike[str] | None = None,
    progress: Callable[[ShardProgress], None] | None = None,
    store_label: str = "",
) -> ReshardResult:
    """Move every alarm of shards ``0..from_shards-1`` to its shard among ``to_shards``.

    Args:
        store: the alarm store; no host may serve it meanwhile.
        from_shards: the shard count the alarms were stored with.
        to_shards: the new shard count; larger, smaller or equal.
        batch: alarms read per page, and per checkpoint.
        state_path: the checkpoint file; ``None`` keeps progress in memory only, so
            a failed run starts over.
        progress: called after every page with the counts of the current shard.
        store_label: a description of the store kept in the state file, so a state
            file is not resumed against another store.

    Raises:
        ConfigError: an argument is invalid, or the state file is unreadable or
            belongs to another reshard.
        StoreError: a store call failed; run again with the same state file to resume.
    """
    check_arguments(from_shards, to_shards, batch)
    started = time.monotonic()
    path = None if state_path is None else Path(state_path)
    identity = {"from_shards": from_shards, "to_shards": to_shards, "store": store_label}
    state = _State() if path is None else _read_state(path, identity)
    result = ReshardResult(from_shards, to_shards)
    if state.finished:
        logger.info("state file %s shows a finished run; scanning every shard again", path)
        state = _State()
    elif state.shard or state.after is not None:
        result.resumed_at = state.shard
        logger.info("resuming at shard %d after key %s", state.shard, state.after)
    result.shards = state.counts
    for shard in range(state.shard, from_shards):
        counts = state.counts.setdefault(shard, ShardCounts())
        after = state.after if shard == state.shard else None
        while not counts.finished:
            try:
                page = await store.get_next_alarms(shard, after=after, limit=batch)
                await _move_page(store, shard, to_shards, page, counts)
            except StoreError:
                logger.error(
                    "reshard stopped at shard %d after key %s; run it again with the same "
                    "state file to resume",
                    shard,
                    after,
                )
                raise
            counts.scanned += len(page)
            if page:
                after = page[-1].key
            counts.finished = len(page) < batch
            state.shard, state.after = shard, after
            if counts.finished and shard + 1 < from_shards:
                state.shard, state.after = shard + 1, None
            state.finished = counts.finished and shard + 1 == from_shards
            if path is not None:
                _write_state(path, identity, state)
            if progress is not None:
                progress(ShardProgress(shard, from_shards, counts))
    result.seconds = time.monotonic() - started
    return result


async def _move_page(
    store: AlarmStore, shard: int, to_shards: int, page: list[Alarm], counts: ShardCounts
) -> None:
    moves: dict[int, list[Alarm]] = {}
    for alarm in page:
        target = shard_of_internal_id(alarm.internal_id, to_shards)
        if target != shard:
            moves.setdefault(target, []).append(alarm)
    if not moves:
        return
    # Every new copy of the page is written before any old copy is removed.
    writes = [partial(set_alarms, store, target, alarms) for target, alarms in moves.items()]
    await _run_bounded(writes)
    moved = [alarm for alarms in moves.values() for alarm in alarms]
    removals = [
        partial(
            store.mark_alarm_done,
            shard,
            alarm.internal_id,
            alarm.alarm_id,
            MOVED_REASON,
            if_revision=alarm.revision,
        )
        for alarm in moved
    ]
    for alarm, removed in zip(moved, await _run_bounded(removals), strict=True):
        if removed:
            counts.moved += 1
            continue
        counts.conflicts += 1
        logger.warning(
            "shard %d: alarm %r of instance %r changed or disappeared while it was moved; "
            "its copy in shard %d has revision %d. Stop every host and run reshard again.",
            shard,
            alarm.alarm_id,
            alarm.instance_id,
            shard_of_internal_id(alarm.internal_id, to_shards),
            alarm.revision,
        )


async def _run_bounded(calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``calls`` with at most :data:`CONCURRENT_CALLS` at once; raise the first failure."""
    semaphore = asyncio.Semaphore(CONCURRENT_CALLS)

    async def limited(call: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await call()

    tasks = [asyncio.ensure_future(limited(call)) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _read_state(path: Path, identity: dict[str, Any]) -> _State:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _State()
    except OSError as exc:
        raise ConfigError(
            f"failed to read reshard state file {str(path)!r}: {exc}; check its permissions "
            "or pass another state file"
        ) from exc
    try:
        data = json.loads(text)
        recorded = {name: data[name] for name in identity}
        if data["version"] != STATE_VERSION:
            raise ValueError(f"version {data['version']!r}, expected {STATE_VERSION}")
        after = data["after"]
        state = _State(
            shard=int(data["shard"]),
            after=None if after is None else (int(after[0]), str(after[1]), str(after[2])),
            finished=bool(data["finished"]),
            counts={int(shard): ShardCounts(*values) for shard, values in data["counts"].items()},
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ConfigError(
            f"reshard state file {str(path)!r} is invalid ({exc}); delete it to start over"
        ) from exc
    if recorded != identity:
        raise ConfigError(
            f"reshard state file {str(path)!r} records {recorded}, not {identity}; finish that "
            "reshard, or delete the file or pass another state file to start this one"
        )
    return state


def _write_state(path: Path, identity: dict[str, Any], state: _State) -> None:
    """Replace the state file atomically: write a temporary file, fsync it, rename it."""
    data = {
        "version": STATE_VERSION,
        **identity,
        "shard": state.shard,
        "after": None if state.after is None else list(state.after),
        "finished": state.finished,
        "counts": {
            str(shard): [counts.scanned, counts.moved, counts.conflicts, counts.finished]
            for shard, counts in state.counts.items()
        },
    }
    directory = path.parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory_handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_handle)
    finally:
        os.close(directory_handle)


# The command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``reshard`` flags."""
    parser.add_argument("--store", required=True, help="alarm store URL, like sqlite:///alarms.db")
    parser.add_argument(
        "--from-shards", type=int, required=True, help="shard count the alarms were stored with"
    )
    parser.add_argument(
        "--to-shards", type=int, required=True, help="shard count the hosts will run with"
    )
    parser.add_argument(
        "--batch", type=int, default=1000, help="alarms read per page and checkpoint (default 1000)"
    )
    parser.add_argument(
        "--state",
        help="checkpoint file (default: next to a SQLite file, else "
        "simsi-reshard-N-to-M.json in the current directory)",
    )


def default_state_path(url: str, from_shards: int, to_shards: int) -> Path:
    """Return the state file used when ``--state`` is not given."""
    name = f"reshard-{from_shards}-to-{to_shards}.json"
    head = url.split("?", 1)[0]
    if head.lower().startswith("sqlite:///"):
        return Path(f"{head[len('sqlite:///') :]}.{name}")
    return Path(f"simsi-{name}")


def describe_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***", 1)))


def run(args: argparse.Namespace) -> int:
    """Reshard the store named by ``--store``; print a summary line.

    Raises:
        ConfigError: a flag is invalid or the URL names no durable store.
    """
    check_arguments(args.from_shards, args.to_shards, args.batch)
    url: str = args.store
    head = url.split("?", 1)[0].lower()
    if head.startswith("memory:") or head == "sqlite:///:memory:":
        raise ConfigError(
            f"store URL {url!r} names a store that lives only inside one process, so it has "
            "no alarms to move; pass the URL of the store the hosts use, like sqlite:///alarms.db"
        )
    from simsi.stores.url import open_store

    store = open_store(url)
    state = (
        Path(args.state)
        if args.state
        else default_state_path(url, args.from_shards, args.to_shards)
    )
    label = describe_url(url)
    logger.info(
        "resharding %s from %d to %d shards, %d alarms per page, state file %s",
        label,
        args.from_shards,
        args.to_shards,
        args.batch,
        state,
    )

    def report(update: ShardProgress) -> None:
        counts = update.counts
        if counts.finished:
            logger.info(
                "shard %d done (%d of %d): scanned %d, moved %d, conflicts %d",
                update.shard,
                update.shard + 1,
                update.from_shards,
                counts.scanned,
                counts.moved,
                counts.conflicts,
            )

    async def main() -> ReshardResult:
        try:
            return await reshard(
                store,
                args.from_shards,
                args.to_shards,
                batch=args.batch,
                state_path=state,
                progress=report,
                store_label=label,
            )
        finally:
            await store.close()

    result = asyncio.run(main())
    print(result.summary())
    if result.conflicts:
        print(
            f"{result.conflicts} alarms changed while they were moved (see the warnings); "
            "stop every host that uses the store and run the same command again",
            file=sys.stderr,
        )
        return 1
    return 0
