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

The old copy is removed with :data:`MOVED_REASON`, ``DoneReason.MOVED``: the
alarm left that shard without being delivered, cancelled or failing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simsi.core.alarms import Alarm, AlarmStore, DoneReason
from simsi.core.errors import ConfigError, StoreError
from simsi.core.placement import shard_of_internal_id
from simsi.stores._common import MAX_PAGE_LIMIT
from simsi.stores.bulk import set_alarms
from simsi.stores.reshard_state import ReshardState, ShardCounts, read_state, write_state

logger = logging.getLogger("simsi.stores.reshard")

#: The reason given to ``mark_alarm_done`` for the old copy of a moved alarm.
MOVED_REASON = DoneReason.MOVED

#: Default maximum number of store calls of one page that run at once.
CONCURRENT_CALLS = 32


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


def check_arguments(
    from_shards: object, to_shards: object, batch: object, concurrency: object = 1
) -> None:
    """Validate the shard counts, the page size and the concurrency of a reshard.

    Raises:
        ConfigError: a count or ``concurrency`` is not an integer >= 1, or ``batch``
            is outside 1..100,000.
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
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}")


async def reshard(
    store: AlarmStore,
    from_shards: int,
    to_shards: int,
    *,
    batch: int = 1000,
    state_path: str | os.PathLike[str] | None = None,
    progress: Callable[[ShardProgress], None] | None = None,
    store_label: str = "",
    concurrency: int = CONCURRENT_CALLS,
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
        concurrency: store calls of one page that run at once. With 1 the calls run
            one after another and the function awaits nothing but the store, so
            it also runs outside asyncio, for example on the simulator's store.

    Raises:
        ConfigError: an argument is invalid, or the state file is unreadable or
            belongs to another reshard.
        StoreError: a store call failed; run again with the same state file to resume.
    """
    check_arguments(from_shards, to_shards, batch, concurrency)
    started = time.monotonic()
    path = None if state_path is None else Path(state_path)
    identity = {"from_shards": from_shards, "to_shards": to_shards, "store": store_label}
    state = ReshardState() if path is None else read_state(path, identity)
    result = ReshardResult(from_shards, to_shards)
    if state.finished:
        logger.info("state file %s shows a finished run; scanning every shard again", path)
        state = ReshardState()
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
                await _move_page(store, shard, to_shards, page, counts, concurrency)
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
                write_state(path, identity, state)
            if progress is not None:
                progress(ShardProgress(shard, from_shards, counts))
    result.seconds = time.monotonic() - started
    return result


async def _move_page(
    store: AlarmStore,
    shard: int,
    to_shards: int,
    page: list[Alarm],
    counts: ShardCounts,
    concurrency: int,
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
    await _run_bounded(writes, concurrency)
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
    for alarm, removed in zip(moved, await _run_bounded(removals, concurrency), strict=True):
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


async def _run_bounded(calls: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run ``calls`` with at most ``limit`` at once; raise the first failure."""
    if limit == 1:
        return [await call() for call in calls]
    semaphore = asyncio.Semaphore(limit)

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


# The command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``reshard`` flags."""
    parser.epilog = (
        "Stop every host that uses the store first, and start them with --shards M "
        "afterwards. After a failure, run the same command again: it resumes from the "
        "state file."
    )
    parser.add_argument(
        "--store", required=True, metavar="URL", help="alarm store URL, like sqlite:///alarms.db"
    )
    parser.add_argument(
        "--from-shards",
        type=int,
        required=True,
        metavar="N",
        help="shard count the alarms were stored with",
    )
    parser.add_argument(
        "--to-shards",
        type=int,
        required=True,
        metavar="M",
        help="shard count the hosts will run with",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1000,
        metavar="ALARMS",
        help="alarms read per page and per checkpoint (default 1000)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
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
    if args.from_shards == args.to_shards:
        raise ConfigError(
            f"--from-shards and --to-shards are both {args.from_shards}, so no alarm would move; "
            "pass the shard count the hosts will start with as --to-shards"
        )
    from simsi.stores.url import open_store

    store = open_store(url)
    sqlite_path = getattr(store, "path", None)
    missing_file = isinstance(sqlite_path, str) and not Path(sqlite_path).is_file()
    if head.startswith("sqlite:") and missing_file:
        asyncio.run(store.close())
        raise ConfigError(
            f"SQLite file {sqlite_path!r} of store URL {url!r} does not exist; check the "
            "path (a new empty file would report a reshard of no alarms)"
        )
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
