"""Benchmark a host restart over 1,000,000 stored alarms, paged against unpaged loading.

One host (``"host-0"``) owns all 1,024 shards. The store contains 1,000,000 alarms
(50,000 instances with 20 alarms each), all due years ahead, so the restart only
loads. Each configuration restarts the host and measures:

- seconds from ``manager.start()`` until ``wait_ready()`` returns;
- the tracemalloc peak of Python allocations during that time (a separate run,
  because tracing slows the process down);
- the growth of peak RSS (``resource.getrusage``) over the RSS before the start;
- failed store calls, which the engine retries after ``store_retry_delay``.

The PostgreSQL connection pool is opened, and the schema checked, before the
clock starts.

The paged configuration uses ``AlarmOptions()`` defaults (pages of 256 alarms,
8 shards loading at once). The unpaged baseline loads every alarm at once: pages of
100,000 alarms, the most one ``get_next_alarms`` call accepts, which exceeds the
~980 alarms of any shard, and 1,024 shards loading at once. Every measurement
runs in a fresh child process, and so does filling the store, so that peak RSS
belongs to one restart: Linux keeps ``ru_maxrss`` across ``fork`` and ``execve``,
so a child of a large parent would start with the parent's peak.

Stores: SQLite in a temporary directory, and PostgreSQL from
``SIMSI_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
in its own schema, dropped afterwards; PostgreSQL is skipped when unreachable.

Run: ``.venv/bin/python bench/bench_restart.py [--alarms N] [--stores sqlite,postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.alarms import Alarm, AlarmStore
from simsi.core.interface import StableInterface
from simsi.core.manager import InterfaceManager
from simsi.core.observer import ManagerObserver
from simsi.core.placement import internal_id, shard_of_internal_id
from simsi.host.runtime import AsyncioRuntime
from simsi.stores import PostgresAlarmStore, SQLiteAlarmStore
from simsi.stores.bulk import set_alarms

SHARDS = 1024
ALARMS_PER_INSTANCE = 20
POSTGRES_URL = os.environ.get(
    "SIMSI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
#: 2096-10-02 in microseconds: no alarm fires during the benchmark.
FUTURE_US = 4_000_000_000_000_000
READY_TIMEOUT = 600.0

CONFIGS: dict[str, AlarmOptions] = {
    "paged": AlarmOptions(),
    "unpaged": AlarmOptions(page_size=100_000, load_concurrency=SHARDS),
}


def open_bench_store(kind: str, location: str) -> AlarmStore:
    """Open the store a child or the parent measures: a SQLite path or a PostgreSQL schema."""
    if kind == "sqlite":
        return SQLiteAlarmStore(location, synchronous="NORMAL")
    return PostgresAlarmStore(POSTGRES_URL, schema=location, max_size=10)


async def fill(store: AlarmStore, alarms: int) -> None:
    """Bulk-insert ``alarms`` alarms spread over the shards by their internal ids."""
    instances = alarms // ALARMS_PER_INSTANCE
    by_shard: dict[int, list[Alarm]] = {}
    for n in range(instances):
        instance = f"inst-{n}"
        internal = internal_id(instance)
        shard = shard_of_internal_id(internal, SHARDS)
        group = by_shard.setdefault(shard, [])
        for k in range(ALARMS_PER_INSTANCE):
            group.append(Alarm(instance, internal, f"a{k}", FUTURE_US + n * 100 + k, None, 0, 1))
    for shard, group in by_shard.items():
        await set_alarms(store, shard, group)


class FailureCounter(ManagerObserver):
    """Counts failed store calls, which the engine retries after a delay."""

    def __init__(self) -> None:
        self.failures = 0

    def store_failed(
        self, operation: str, shard: int, error: BaseException, *, detail: str = ""
    ) -> None:
        self.failures += 1


async def restart(kind: str, location: str, config: str, trace: bool) -> dict[str, Any]:
    """Start a host on the store, wait until it is ready, close it; return the numbers."""
    store = open_bench_store(kind, location)
    if isinstance(store, PostgresAlarmStore):
        await store.open()
    observer = FailureCounter()
    manager = InterfaceManager(
        "host-0",
        "host-0",
        SHARDS,
        StableInterface,
        runtime=AsyncioRuntime(seed=1),
        store=store,
        alarm_options=CONFIGS[config],
        observer=observer,
    )

    rss_before = rss_kib()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    await manager.start()
    await asyncio.wait_for(manager.wait_ready(), READY_TIMEOUT)
    seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()

    engine = manager.alarms
    assert engine is not None
    held = engine.schedule.held
    await manager.close()
    await store.close()
    return {
        "seconds": seconds,
        "traced_peak": traced_peak,
        "rss_growth_kib": rss_kib() - rss_before,
        "held": held,
        "store_failures": observer.failures,
    }


def rss_kib() -> int:
    """Return the process's peak resident set size in KiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(kind: str, location: str, config: str, trace: bool) -> dict[str, Any]:
    """Run one restart in a fresh child process and return its numbers."""
    command = [sys.executable, __file__, "--child", kind, location, config, str(int(trace))]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    return json.loads(output.stdout.strip().splitlines()[-1])


def fill_in_child(kind: str, location: str, alarms: int) -> None:
    """Fill the store in a child process, so this process stays small."""
    started = time.perf_counter()
    command = [sys.executable, __file__, "--fill", kind, location, str(alarms)]
    subprocess.run(command, check=True, timeout=1800)
    print(f"filled {kind} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def run_store(kind: str, location: str) -> list[tuple[str, dict[str, Any]]]:
    """Measure both configurations on one filled store."""
    rows = []
    for config in CONFIGS:
        timing = measure(kind, location, config, trace=False)
        traced = measure(kind, location, config, trace=True)
        timing["traced_peak"] = traced["traced_peak"]
        rows.append((config, timing))
        print(f"  {kind} {config}: {timing}", file=sys.stderr, flush=True)
    return rows


def print_table(alarms: int, results: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
    """Print one row per store and configuration, and the unpaged / paged ratios."""
    print(
        f"restart of host-0 owning {SHARDS} shards, {alarms:,} stored alarms; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    header = (
        f"{'store':<9}{'loading':<9}{'ready s':>9}{'held':>10}{'traced MiB':>12}"
        f"{'RSS+ MiB':>10}{'store errors':>14}"
    )
    print(header)
    print("-" * len(header))
    for kind, rows in results.items():
        for config, row in rows:
            print(
                f"{kind:<9}{config:<9}{row['seconds']:>9.2f}{row['held']:>10,}"
                f"{row['traced_peak'] / 2**20:>12.1f}{row['rss_growth_kib'] / 1024:>10.1f}"
                f"{row['store_failures']:>14}"
            )
        numbers = dict(rows)
        paged, unpaged = numbers["paged"], numbers["unpaged"]
        print(
            f"{kind:<9}{'ratio':<9}{unpaged['seconds'] / paged['seconds']:>9.2f}"
            f"{unpaged['held'] / max(1, paged['held']):>10.2f}"
            f"{unpaged['traced_peak'] / max(1, paged['traced_peak']):>12.2f}"
            f"{unpaged['rss_growth_kib'] / max(1, paged['rss_growth_kib']):>10.2f}"
            "   (unpaged / paged)"
        )


def postgres_reachable() -> bool:
    """Return whether the benchmark's PostgreSQL server accepts connections."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        print(f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc}); skipping it", file=sys.stderr)
        return False
    return True


def drop_schema(schema: str) -> None:
    """Drop the benchmark's PostgreSQL schema."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main(argv: list[str] | None = None) -> int:
    """Fill each store once, measure both configurations, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alarms", type=int, default=1_000_000, help="stored alarms")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated stores")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--fill", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, location, config, trace = args.child
        print(json.dumps(asyncio.run(restart(kind, location, config, trace == "1"))))
        return 0
    if args.fill:
        kind, location, alarms = args.fill
        asyncio.run(fill_and_close(kind, location, int(alarms)))
        return 0

    results: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    kinds = [kind.strip() for kind in args.stores.split(",") if kind.strip()]
    for kind in kinds:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory(prefix="simsi-bench-restart-") as directory:
                location = str(Path(directory) / "alarms.db")
                fill_in_child(kind, location, args.alarms)
                results[kind] = run_store(kind, location)
        elif kind == "postgres":
            if not postgres_reachable():
                continue
            schema = f"simsi_bench_{secrets.token_hex(4)}"
            try:
                fill_in_child(kind, schema, args.alarms)
                results[kind] = run_store(kind, schema)
            finally:
                drop_schema(schema)
        else:
            parser.error(f"unknown store {kind!r}; use sqlite and/or postgres")
    print_table(args.alarms, results)
    return 0


async def fill_and_close(kind: str, location: str, alarms: int) -> None:
    """Open the store, fill it and close it."""
    store = open_bench_store(kind, location)
    try:
        await fill(store, alarms)
    finally:
        await store.close()


if __name__ == "__main__":
    sys.exit(main())
