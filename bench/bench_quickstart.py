"""Benchmark the quickstart scenario against bare SimPy in the same process.

Prints, for the median of several runs of ``scenarios/quickstart.toml`` on its
default seed: wall time, SimPy events processed, events per wall second and
simulated seconds per wall second. Then it runs a bare SimPy model (processes
that only wait on timeouts, stepped by the same loop the world uses) and prints
the ratio of the two event rates, which shows how much slower an event of the
simulated cluster (core coroutines, network, store and trace recording) is than
a bare SimPy timeout. Wall times cover the world's event loop only: building
the world, the checkers and the digest are not timed.

Run: ``.venv/bin/python bench/bench_quickstart.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import simpy

from simsi.sim.scenario import load_scenario
from simsi.sim.world import World

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.toml"


def run_quickstart() -> tuple[float, int, float]:
    """Run the quickstart once; return (event-loop wall seconds, events, simulated seconds)."""
    world = World(load_scenario(QUICKSTART))
    result = world.run()
    return result.stats.wall_s, result.stats.events, result.stats.sim_s


def run_bare_simpy(target_events: int, processes: int = 100, seed: int = 0) -> tuple[float, int]:
    """Step bare SimPy timeout processes until ``target_events``; return (wall s, events)."""
    env = simpy.Environment()
    rng = random.Random(seed)

    def ticker() -> simpy.events.ProcessGenerator:
        while True:
            yield env.timeout(rng.uniform(0.001, 0.01))

    for _ in range(processes):
        env.process(ticker())
    events = 0
    started = time.perf_counter()
    while events < target_events:
        env.step()
        events += 1
    return time.perf_counter() - started, events


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of each model; the median is shown (default 5)"
    )
    args = parser.parse_args(argv)

    runs = [run_quickstart() for _ in range(args.repeat)]
    wall = statistics.median(run[0] for run in runs)
    events = runs[0][1]
    sim_s = runs[0][2]
    if any(run[1] != events for run in runs):
        print("quickstart processed a different number of events across runs", file=sys.stderr)
        return 1
    bare_rate = statistics.median(
        bare_events / bare_wall
        for bare_wall, bare_events in (run_bare_simpy(events) for _ in range(args.repeat))
    )
    rate = events / wall

    print(f"quickstart ({args.repeat} runs, median), Python {sys.version.split()[0]}")
    print(f"  wall time                  {wall:.3f} s (event loop)")
    print(f"  events processed           {events}")
    print(f"  simulated seconds          {sim_s:g}")
    print(f"  simulated s per wall s     {sim_s / wall:.0f}")
    print(f"  events per wall s          {rate:,.0f}")
    print(f"bare SimPy timeouts          {bare_rate:,.0f} events per wall s")
    print(f"  quickstart / bare SimPy    {rate / bare_rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
