"""Benchmark the production host: request throughput, alarm lag and alarm fire rate.

1. Requests: a ``simsi serve`` process (memory store, the example ``Counter``)
   and a bare aiohttp JSON echo server are each loaded by the same aiohttp
   client on 127.0.0.1 (bounded concurrency, bounded request count). Prints
   requests per second of each, their ratio (goal >= 0.5), and the server CPU
   time per request read from /proc, which does not depend on the client's speed.
2. Alarm lag: one host with 100,000 pending alarms (due in an hour) fires
   probe alarms set through requests. The lag is ``ctx.now() - fires_at`` at the
   start of ``on_alarm``. Prints p50, p99 and max (goal p99 <= 5 ms) for the
   memory and the SQLite store.
3. Alarm fire rate: one host starts with N alarms that are all due and fires
   them; prints alarms per second from start to the last ``mark_alarm_done``
   (goal >= 20,000 with SQLite), for the memory store and SQLite (FULL and
   NORMAL synchronous modes), with one alarm per instance (each delivery
   activates an instance) and with 1,000 instances.

The alarm benchmarks run the manager in this process with the host's observer,
runtime and garbage collector setting, as ``simsi serve`` does.

Everything runs on this machine; the servers listen on 127.0.0.1 only.
Run: ``.venv/bin/python bench/bench_host.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.alarms import Alarm, AlarmStore, DoneReason, to_micros
from simsi.core.interface import AlarmContext, InstanceContext, StableInterface
from simsi.core.manager import InterfaceManager
from simsi.core.placement import Placement, internal_id
from simsi.host.cli import configure_gc
from simsi.host.metrics import HostMetrics
from simsi.host.observer import LoggingMetricsObserver
from simsi.host.runtime import AsyncioRuntime
from simsi.stores import MemoryAlarmStore, SQLiteAlarmStore

REPO = Path(__file__).resolve().parents[1]
HOSTS = "bench-0"
SHARDS = 1024

ECHO_SERVER = """
import json, sys
from aiohttp import web

async def echo(request):
    payload = json.loads(await request.read())
    body = json.dumps({"result": payload}, separators=(",", ":")).encode()
    return web.Response(body=body, content_type="application/json")

app = web.Application()
app.router.add_post("/v1/instances/{id}/request", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


# -- 1. request throughput -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_listening(url: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with session.post(url, json={"op": "get"}) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"server at {url} did not respond within 15 s")


async def load(base: str, requests: int, concurrency: int) -> float:
    """Send ``requests`` POSTs with ``concurrency`` workers; return requests per second."""
    body = json.dumps({"op": "get"}).encode()
    headers = {"Content-Type": "application/json"}
    sent = 0
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent, errors
        while sent < requests:
            n = sent
            sent += 1
            url = f"{base}/v1/instances/bench-{n % 1000}/request"
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests to {base} failed")
    return requests / elapsed


async def measure_server(
    command: list[str], port: int, requests: int, concurrency: int
) -> tuple[float, float]:
    """Start a server, warm it up, load it; return (requests per second, CPU µs per request)."""
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_listening(f"{base}/v1/instances/warm/request", process)
        await load(base, min(2000, requests), concurrency)
        cpu_before = cpu_seconds(process.pid)
        rate = await load(base, requests, concurrency)
        cpu_used = cpu_seconds(process.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return rate, cpu_used / requests * 1e6


async def bench_requests(requests: int, concurrency: int, rounds: int) -> None:
    print(f"\n[1] requests: {requests} per run, concurrency {concurrency}, best of {rounds}")
    host_rates, echo_rates, host_cpu, echo_cpu = [], [], [], []
    for _ in range(rounds):
        port = free_port()
        echo = [sys.executable, "-c", ECHO_SERVER, str(port)]
        rate, cpu = await measure_server(echo, port, requests, concurrency)
        echo_rates.append(rate)
        echo_cpu.append(cpu)
        port = free_port()
        host = [
            *(sys.executable, "-m", "simsi.cli", "--log-level", "WARNING", "serve"),
            *("--app", f"{REPO}/runtime/app.py:make_interface", "--hosts", HOSTS),
            *("--host-id", HOSTS, "--store", "memory://", "--listen", f"127.0.0.1:{port}"),
        ]
        rate, cpu = await measure_server(host, port, requests, concurrency)
        host_rates.append(rate)
        host_cpu.append(cpu)
    best_host, best_echo = max(host_rates), max(echo_rates)
    print(f"  bare aiohttp echo : {best_echo:9.0f} req/s   {min(echo_cpu):7.1f} µs CPU/request")
    print(f"  simsi host        : {best_host:9.0f} req/s   {min(host_cpu):7.1f} µs CPU/request")
    print(f"  throughput ratio host/echo     : {best_host / best_echo:.2f}  (goal >= 0.5)")
    print(f"  CPU-per-request ratio echo/host: {min(echo_cpu) / min(host_cpu):.2f}")


# -- 2 and 3. alarms -------------------------------------------------------------------------


class Probe(StableInterface):
    """Sets an alarm per request; records each delivery's lag and completion."""

    lags: list[float] = []  # noqa: RUF012 - shared by every instance of one run
    fired = 0

    async def on_request(self, ctx: InstanceContext, payload: Any) -> Any:
        await ctx.set_alarm(payload["id"], payload["at"])

    async def on_alarm(self, ctx: AlarmContext, alarm_id: str, meta: Any) -> None:
        Probe.lags.append(ctx.now() - ctx.alarm.fires_at)
        Probe.fired += 1


class CountingObserver(LoggingMetricsObserver):
    """The host observer, plus an event set when ``target`` alarms left the store."""

    def __init__(self, target: int) -> None:
        super().__init__(HostMetrics(HOSTS, process_metrics=False))
        self.target = target
        self.done = 0
        self.all_done = asyncio.Event()

    def alarm_done(self, shard: int, alarm: Alarm, reason: DoneReason) -> None:
        super().alarm_done(shard, alarm, reason)
        self.done += 1
        if self.done >= self.target:
            self.all_done.set()


async def preload(
    store: AlarmStore, count: int, fires_at: float, prefix: str, instances: int | None = None
) -> None:
    """Write ``count`` alarms due at ``fires_at``, spread over ``instances`` instances.

    Without ``instances`` every alarm belongs to its own instance.
    """
    placement = Placement(HOSTS, SHARDS)
    instances = instances or count
    ids = [f"{prefix}-{n}" for n in range(instances)]
    internals = [internal_id(instance_id) for instance_id in ids]
    shards = [placement.shard_of(instance_id) for instance_id in ids]
    for n in range(count):
        k = n % instances
        alarm = Alarm(ids[k], internals[k], f"a{n}", to_micros(fires_at), None, 0, n + 1)
        await store.set_alarm(shards[k], alarm)


def sqlite_store(path: str, synchronous: str) -> SQLiteAlarmStore:
    return SQLiteAlarmStore(path, synchronous=synchronous)


async def preload_sqlite(
    path: str, count: int, fires_at: float, prefix: str, instances: int | None = None
) -> None:
    # synchronous=NORMAL makes the setup fast. The measured run reopens the file
    # in the mode under test.
    store = sqlite_store(path, "NORMAL")
    await preload(store, count, fires_at, prefix, instances)
    await store.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def alarm_lag(store: AlarmStore, pending: int, probes: int, label: str) -> None:
    Probe.lags = []
    observer = CountingObserver(probes)
    manager = InterfaceManager(
        HOSTS, HOSTS, SHARDS, Probe, runtime=AsyncioRuntime(), store=store, observer=observer
    )
    await manager.start()
    await manager.wait_ready()
    start = time.time() + 1.0
    spacing = 0.005
    for n in range(probes):
        await manager.request(f"probe-{n}", {"id": "p", "at": start + n * spacing})
    await asyncio.wait_for(observer.all_done.wait(), timeout=60 + probes * spacing)
    await manager.close()
    lags = [lag * 1000 for lag in Probe.lags]
    print(
        f"  {label:<16} p50 {percentile(lags, 0.5):6.2f} ms   p99 {percentile(lags, 0.99):6.2f} ms"
        f"   max {max(lags):7.2f} ms   ({len(lags)} probes, {pending} pending)"
    )


async def bench_alarm_lag(pending: int, probes: int) -> None:
    print(f"\n[2] alarm lag with {pending} pending alarms, {probes} probes 5 ms apart")
    far = time.time() + 3600
    memory = MemoryAlarmStore()
    await preload(memory, pending, far, "pending")
    await alarm_lag(memory, pending, probes, "memory store")
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/lag.db"
        await preload_sqlite(path, pending, far, "pending")
        await alarm_lag(sqlite_store(path, "FULL"), pending, probes, "sqlite (FULL)")


async def fire_rate(store: AlarmStore, count: int, label: str, max_concurrent: int = 256) -> None:
    Probe.fired = 0
    observer = CountingObserver(count)
    options = AlarmOptions(max_concurrent=max_concurrent)
    manager = InterfaceManager(
        HOSTS,
        HOSTS,
        SHARDS,
        Probe,
        runtime=AsyncioRuntime(),
        store=store,
        observer=observer,
        alarm_options=options,
    )
    started = time.perf_counter()
    await manager.start()
    await asyncio.wait_for(observer.all_done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    await manager.close()
    await store.close()
    print(f"  {label:<34} {count / elapsed:9.0f} alarms/s   ({count} alarms in {elapsed:.2f} s)")


async def bench_fire_rate(count: int) -> None:
    print(f"\n[3] alarm fire rate: {count} due alarms, one host, max_concurrent 256")
    past = time.time() - 1
    for instances, shape in ((None, "1 alarm/instance"), (1000, "1000 instances")):
        memory = MemoryAlarmStore()
        await preload(memory, count, past, "due", instances)
        await fire_rate(memory, count, f"memory, {shape}")
        for mode in ("FULL", "NORMAL"):
            with tempfile.TemporaryDirectory() as directory:
                path = f"{directory}/rate.db"
                await preload_sqlite(path, count, past, "due", instances)
                await fire_rate(sqlite_store(path, mode), count, f"sqlite {mode}, {shape}")
    # The same run without waits at the core's handler gate (every handler may run
    # at once), to show what the gate costs.
    memory = MemoryAlarmStore()
    await preload(memory, count, past, "due")
    await fire_rate(memory, count, "memory, no gate waits", max_concurrent=count)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--skip-requests", action="store_true", help="skip the HTTP benchmark")
    parser.add_argument("--requests", type=int, help="requests per run (default 30000)")
    parser.add_argument("--pending", type=int, help="pending alarms for the lag (default 100000)")
    parser.add_argument("--due", type=int, help="due alarms for the fire rate (default 20000)")
    args = parser.parse_args()
    requests = args.requests or (5_000 if args.quick else 30_000)
    pending = args.pending or (10_000 if args.quick else 100_000)
    probes = 200 if args.quick else 2_000
    due = args.due or (5_000 if args.quick else 20_000)
    configure_gc()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, aiohttp {aiohttp.__version__}"
    )
    if not args.skip_requests:
        await bench_requests(requests, concurrency=32, rounds=1 if args.quick else 3)
    await bench_alarm_lag(pending, probes)
    await bench_fire_rate(due)


if __name__ == "__main__":
    asyncio.run(main())
