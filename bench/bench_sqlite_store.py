"""Benchmark SQLiteAlarmStore writes with concurrent callers against bare sqlite3.

For ``set_alarm`` and ``mark_alarm_done``, N callers (1, 16 and 256 by default)
each await one write after another on a fresh file. The store's writes per
second are printed next to a baseline run in the same process. The baseline is
a bare ``sqlite3`` connection with the same schema and ``synchronous`` mode that
writes the same rows with ``executemany``, N rows per ``BEGIN IMMEDIATE`` ...
``COMMIT``. N callers who each wait for their own write can be grouped into at
most N rows per commit, so the ratio store/baseline is the cost of the store
(asyncio, the worker thread, savepoints, argument checks) over ideal batching.
The process CPU time per write and the store's commits are printed too, because
CPU time changes less than wall time when other programs load the machine.

With ``--fire-rate N`` the script then runs the fire-rate measurement of
``bench_host.py`` (N due alarms, one alarm per instance) for the memory store
and SQLite in FULL and NORMAL modes, ``--rounds`` times. With ``--profile`` it
runs SQLite FULL once more under cProfile and prints the top functions.

Run: ``.venv/bin/python bench/bench_sqlite_store.py [--synchronous FULL]
[--callers 1,16,256] [--fire-rate 20000 [--rounds 3] [--profile]]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import sqlite3
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from simsi.core.alarms import Alarm, DoneReason
from simsi.stores import MemoryAlarmStore, SQLiteAlarmStore

# The store's own SQL, so the baseline writes exactly the rows and indexes the store writes.
from simsi.stores.sqlite import _DELETE, _SCHEMA, _UPSERT

#: Writes per run for each number of callers. One caller makes one fsync'd commit
#: per write, so its run is kept short.
DEFAULT_OPS = {1: 1000, 16: 8000, 256: 40000}


def make_alarms(count: int) -> list[Alarm]:
    return [Alarm(f"inst-{n}", f"i{n}", "a", 1_000_000 + n, {"n": n}, 0, 1) for n in range(count)]


def upsert_row(alarm: Alarm, shard: int) -> tuple[object, ...]:
    meta = f'{{"n":{alarm.meta["n"]}}}'
    return (
        *(shard, alarm.internal_id, alarm.alarm_id, alarm.instance_id),
        *(alarm.fires_at_us, meta, alarm.attempt, alarm.revision),
    )


def shard_of(n: int) -> int:
    return n % 64


async def preload(path: str, alarms: list[Alarm]) -> None:
    """Write ``alarms`` quickly (synchronous=NORMAL, bulk) so they can be removed."""
    store = SQLiteAlarmStore(path, synchronous="NORMAL")
    for shard in range(64):
        await store.set_alarms(shard, alarms[shard::64])
    await store.close()


async def run_store(
    path: str, synchronous: str, operation: str, callers: int, ops: int
) -> tuple[float, float, str]:
    """Return the store's writes per second, CPU µs per write and a note on its commits."""
    alarms = make_alarms(ops)
    if operation == "mark_alarm_done":
        await preload(path, alarms)
    store = SQLiteAlarmStore(path, synchronous=synchronous)
    await store.get_next_alarms(0, limit=1)  # open the file outside the timed part

    def write(n: int) -> Awaitable[bool]:
        alarm = alarms[n]
        if operation == "set_alarm":
            return store.set_alarm(shard_of(n), alarm)
        return store.mark_alarm_done(shard_of(n), alarm.internal_id, "a", DoneReason.SUCCEEDED)

    async def caller(first: int) -> None:
        for n in range(first, ops, callers):
            if await write(n) is not True:
                raise RuntimeError(f"{operation} of alarm {n} returned False")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stats = getattr(getattr(store, "_worker", None), "stats", None)
    await store.close()
    if stats is None or not stats.commits:
        note = "one commit per write"
    else:
        note = (
            f"{stats.commits} commits, {stats.committed_writes / stats.commits:.1f} writes/commit"
        )
    return ops / elapsed, cpu / ops * 1e6, note


def run_baseline(
    path: str, synchronous: str, operation: str, per_commit: int, ops: int
) -> tuple[float, float]:
    """Return bare sqlite3's rows per second and CPU µs per row, ``per_commit`` rows a commit."""
    alarms = make_alarms(ops)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(_SCHEMA)
    if operation == "set_alarm":
        sql, rows = _UPSERT, [upsert_row(a, shard_of(n)) for n, a in enumerate(alarms)]
    else:
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN")
        conn.executemany(_UPSERT, [upsert_row(a, shard_of(n)) for n, a in enumerate(alarms)])
        conn.execute("COMMIT")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        sql, rows = _DELETE, [(shard_of(n), a.internal_id, "a") for n, a in enumerate(alarms)]
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, ops, per_commit):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[start : start + per_commit])
        conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return ops / elapsed, cpu / ops * 1e6


async def bench_writes(synchronous: str, callers_list: list[int], scale: float) -> None:
    print(f"\nwrites with N concurrent callers, synchronous={synchronous}")
    print("  CPU µs per write is the whole process's CPU time (every thread) per write.")
    print(
        f"  {'operation':<16} {'N':>4} {'store/s':>9} {'bare/s':>9} {'ratio':>6} "
        f"{'CPU µs store':>12} {'bare':>6}  group commits"
    )
    for operation in ("set_alarm", "mark_alarm_done"):
        for callers in callers_list:
            ops = max(callers, int(DEFAULT_OPS.get(callers, 200 * callers) * scale))
            with tempfile.TemporaryDirectory() as directory:
                rate, cpu, note = await run_store(
                    f"{directory}/store.db", synchronous, operation, callers, ops
                )
                bare, bare_cpu = run_baseline(
                    f"{directory}/bare.db", synchronous, operation, callers, ops
                )
            print(
                f"  {operation:<16} {callers:>4} {rate:>9.0f} {bare:>9.0f} {rate / bare:>6.2f} "
                f"{cpu:>12.1f} {bare_cpu:>6.1f}  {note}"
            )
    with tempfile.TemporaryDirectory() as directory:
        ceiling, ceiling_cpu = run_baseline(
            f"{directory}/bare.db", synchronous, "set_alarm", 1000, 40000
        )
    print(
        f"  bare sqlite3 set_alarm rows, 1000 rows per commit: {ceiling:.0f}/s, "
        f"{ceiling_cpu:.1f} µs CPU/row"
    )


async def bench_fire_rate(count: int, rounds: int, profile: bool) -> None:
    # bench_host.py sits next to this file; running this script puts bench/ on sys.path.
    from bench_host import fire_rate, preload, preload_sqlite, sqlite_store

    print(f"\nfire rate (bench_host.py section 3): {count} due alarms, 1 alarm/instance")
    print("  each line of bench_host.fire_rate is followed by the process CPU time per fire")
    past = time.time() - 1
    for _ in range(rounds):
        memory = MemoryAlarmStore()
        await preload(memory, count, past, "due")
        cpu = time.process_time()
        await fire_rate(memory, count, "memory")
        print(f"  {'':<34} {(time.process_time() - cpu) / count * 1e6:9.1f} µs CPU/fire")
        for mode in ("FULL", "NORMAL"):
            with tempfile.TemporaryDirectory() as directory:
                path = f"{directory}/rate.db"
                await preload_sqlite(path, count, past, "due")
                store = sqlite_store(path, mode)
                cpu = time.process_time()
                await fire_rate(store, count, f"sqlite {mode}")
                cpu_per_fire = (time.process_time() - cpu) / count * 1e6
            stats = store._worker.stats
            mean = stats.committed_writes / max(1, stats.commits)
            print(
                f"  {'':<34} {cpu_per_fire:9.1f} µs CPU/fire, "
                f"{stats.commits} commits, {mean:.1f} writes/commit"
            )
    if not profile:
        return
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/rate.db"
        await preload_sqlite(path, count, past, "due")
        profiler = cProfile.Profile()
        profiler.enable()
        await fire_rate(sqlite_store(path, "FULL"), count, "sqlite FULL under cProfile")
        profiler.disable()
    # cProfile records the event loop's thread only, not the store's worker thread.
    report = pstats.Stats(profiler)
    print("\ntop 25 by own time (tottime), event loop thread:")
    report.sort_stats("tottime").print_stats(25)
    print("top 25 by cumulative time, event loop thread:")
    report.sort_stats("cumulative").print_stats(25)


def parse_callers(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"--callers takes positive integers like 1,16,256, got {text!r}"
        )
    return values


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--synchronous",
        default="FULL",
        choices=["FULL", "NORMAL", "EXTRA"],
        help="SQLite synchronous mode of the store and the baseline (default FULL)",
    )
    parser.add_argument(
        "--callers",
        type=parse_callers,
        default=[1, 16, 256],
        help="comma-separated numbers of concurrent callers (default 1,16,256)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply the writes per run by this factor (default 1)",
    )
    parser.add_argument("--skip-writes", action="store_true", help="skip the write benchmark")
    parser.add_argument(
        "--fire-rate",
        type=int,
        metavar="N",
        help="also measure the host's fire rate with N due alarms",
    )
    parser.add_argument("--rounds", type=int, default=1, help="fire-rate rounds (default 1)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="with --fire-rate, profile one more fire-rate run with cProfile",
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"temp dir {Path(tempfile.gettempdir()).resolve()}"
    )
    if not args.skip_writes:
        await bench_writes(args.synchronous, args.callers, args.scale)
    if args.fire_rate:
        from simsi.host.cli import configure_gc

        configure_gc()
        await bench_fire_rate(args.fire_rate, args.rounds, args.profile)


if __name__ == "__main__":
    asyncio.run(main())
