"""Benchmark sweeps and a large simulation, with ratios measured in the same process.

Part (a), sweep throughput: sweeps ``scenarios/quickstart.toml`` over the same
seeds with 1 worker (in this process) and with K worker processes, and prints
seeds per wall second for each, per core, and the speed-up K workers give.

Part (b), simulation speed: runs an 8-host cluster for one simulated hour. The
cluster has 1024 shards and 10,000 instances and takes 50 requests per second,
each setting one alarm due 2 to 60 s later. Then a bare SimPy model (processes
that only wait on random timeouts) is stepped for the same number of events.
Both event rates and their ratio are printed per wall second (the event loop
only, as ``RunStats.wall_s`` measures) and per CPU second of this process,
which depends less on other load on the machine. With ``--profile`` a shorter run of the same cluster goes under
cProfile, and the top functions by own time are printed and written to
``bench/profiles/``, which is not committed.

Run: ``.venv/bin/python bench/bench_sim.py [--seeds 20] [--workers 2] [--hours 1]
[--profile] [--skip-sweep]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import sys
import time
from pathlib import Path

import simpy

from simsi.sim.checkers import check_all
from simsi.sim.scenario import (
    ClusterSpec,
    Expectations,
    RunSpec,
    Scenario,
    WorkloadSpec,
    load_scenario,
)
from simsi.sim.sweep import sweep
from simsi.sim.world import World

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
PROFILES = ROOT / "bench" / "profiles"


def eight_hosts(duration_s: float) -> Scenario:
    """Return the 8-host, 1024-shard, 10,000-instance scenario at 50 requests per second."""
    return Scenario(
        name="bench-8-hosts",
        cluster=ClusterSpec("host-{0..7}", 1024, "counter"),
        workload=WorkloadSpec(
            instances=10_000,
            request_rate=50.0,
            alarms_per_request=1,
            alarm_delay_s=(2.0, 60.0),
            request_timeout_s=5.0,
        ),
        run=RunSpec(duration_s=duration_s, drain_s=60.0, seed=0),
        expect=Expectations(single_instance="holds", alarms_lost=0),
    )


def bare_simpy(events: int, processes: int = 100, seed: int = 0) -> tuple[float, float]:
    """Step bare SimPy timeout loops for ``events`` events; return (wall s, CPU s)."""
    env = simpy.Environment()
    rng = random.Random(seed)

    def ticker() -> simpy.events.ProcessGenerator:
        while True:
            yield env.timeout(rng.uniform(0.001, 0.01))

    for _ in range(processes):
        env.process(ticker())
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(events):
        env.step()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_sweep(seeds: int, workers: int) -> None:
    """Print seeds per second with 1 worker and with ``workers`` workers on the quickstart."""
    scenario = load_scenario(QUICKSTART)
    sweep(scenario, range(2), workers=1)  # warm imports and caches before timing
    single = sweep(scenario, range(seeds), workers=1)
    pooled = sweep(scenario, range(seeds), workers=workers)
    if [o.digest for o in single.outcomes] != [o.digest for o in pooled.outcomes]:
        print("sweep digests differ between 1 and K workers", file=sys.stderr)
    one_rate = seeds / single.wall_s
    pool_rate = seeds / pooled.wall_s
    print(f"(a) quickstart sweep, {seeds} seeds")
    print(f"  1 worker (in process)    {one_rate:6.2f} seeds per s")
    print(
        f"  {workers} workers (spawned)     {pool_rate:6.2f} seeds per s, "
        f"{pool_rate / workers:.2f} per core (worker start-up included)"
    )
    print(f"  speed-up {workers} / 1 workers   {pool_rate / one_rate:.2f}x")


def bench_simulation(hours: float) -> None:
    """Run the 8-host scenario for ``hours`` simulated hours and compare with bare SimPy."""
    scenario = eight_hosts(hours * 3600)
    world = World(scenario)
    cpu_started = time.process_time()
    result = world.run()
    run_cpu = time.process_time() - cpu_started
    stats = result.stats
    # World.run also checks the trace and computes its digest after the event loop. Timing
    # those again and subtracting them makes the CPU rate cover the event loop only.
    cpu_started = time.process_time()
    result.trace.digest()
    check_all(result.trace.events, round(scenario.run.end_s * 1_000_000), 10.0)
    loop_cpu = max(1e-9, run_cpu - (time.process_time() - cpu_started))

    bare_wall, bare_cpu = bare_simpy(stats.events)
    rate_wall, rate_cpu = stats.events / stats.wall_s, stats.events / loop_cpu
    bare_rate_wall, bare_rate_cpu = stats.events / bare_wall, stats.events / bare_cpu
    checks = result.checks
    print(f"(b) {scenario.name}: {scenario.run.end_s:g} simulated s, {stats.events:,} events")
    print(f"  event loop               {stats.wall_s:.1f} wall s, {loop_cpu:.1f} CPU s")
    print(f"  simulated s per wall s   {stats.sim_per_wall:,.0f}")
    print(f"  requests sent            {checks.routing.sent:,}, alarms set {checks.alarms.set:,}")
    print(f"  simsi events per s       {rate_wall:,.0f} wall, {rate_cpu:,.0f} CPU")
    print(f"  bare SimPy events per s  {bare_rate_wall:,.0f} wall, {bare_rate_cpu:,.0f} CPU")
    print(
        f"  ratio simsi / bare       {rate_wall / bare_rate_wall:.3f} wall, "
        f"{rate_cpu / bare_rate_cpu:.3f} CPU (goal >= 0.333)"
    )
    print(
        f"  checks                   single instance "
        f"{'holds' if checks.single_instance.holds else 'violated'}, "
        f"{len(checks.alarms.lost)} alarms lost, digest {result.digest[:16]}"
    )


def profile_simulation(seconds: float, top: int) -> None:
    """Profile the 8-host scenario for ``seconds`` of workload; print and save the top functions."""
    profiler = cProfile.Profile()
    world = World(eight_hosts(seconds))
    profiler.enable()
    world.run()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    PROFILES.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text_path = PROFILES / f"bench-8-hosts-{stamp}.txt"
    text_path.write_text(out.getvalue(), encoding="utf-8")
    profiler.dump_stats(PROFILES / f"bench-8-hosts-{stamp}.prof")
    print(f"(c) cProfile of {seconds:g} s of workload, top {top} by own time ({text_path}):")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per sweep (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the pooled sweep")
    parser.add_argument(
        "--hours", type=float, default=1.0, help="simulated hours of workload in (b)"
    )
    parser.add_argument("--profile", action="store_true", help="also profile the 8-host run")
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=600.0,
        help="simulated seconds of workload in the profiled run (default 600)",
    )
    parser.add_argument("--top", type=int, default=20, help="profile lines to print")
    parser.add_argument("--skip-sweep", action="store_true", help="skip part (a)")
    args = parser.parse_args(argv)

    print(
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_sweep:
        bench_sweep(args.seeds, args.workers)
    bench_simulation(args.hours)
    if args.profile:
        profile_simulation(args.profile_seconds, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
