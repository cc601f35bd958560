"""Measure and profile the simulator on the 8-host cluster against bare SimPy.

Runs the 8-host scenario (8 hosts, 1024 shards, 10,000 instances, 50 requests
per second, one alarm per request) or ``scenarios/quickstart.toml``. After each
run, a bare SimPy model is stepped for the same number of events in the same
process. The script prints both event rates per CPU second, so other load on
the machine matters less, and their ratio: the best run of the scenario against
the best bare run. With ``--profile`` the scenario runs once more under
cProfile and the top functions are printed. Run::

    .venv/bin/python bench/profile_sim.py [--duration 300] [--quickstart] [--profile]

Times cover the world's event loop only, as in ``bench/bench_quickstart.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from typing import Any

from bench_quickstart import QUICKSTART, run_bare_simpy

from simsi.sim.scenario import Scenario, load_scenario, scenario_from_dict
from simsi.sim.world import World


def eight_hosts(duration_s: float, seed: int = 0) -> Scenario:
    """Return the 8-host scenario running its workload for ``duration_s`` true seconds."""
    return scenario_from_dict(
        {
            "name": "eight-hosts",
            "cluster": {"hosts": "host-{0..7}", "shards": 1024, "interface": "counter"},
            "network": {"latency_ms": [1, 5], "loss": 0.0},
            "store": {"kind": "sim", "latency_ms": [1, 3]},
            "workload": {
                "instances": 10_000,
                "request_rate": 50,
                "alarms_per_request": 1,
                "alarm_delay_s": [2, 60],
                "request_timeout_s": 5,
            },
            "run": {"duration_s": duration_s, "drain_s": 60, "seed": seed},
        }
    )


def run_once(scenario: Scenario) -> tuple[float, float, int, str]:
    """Run ``scenario``; return (event-loop wall s, event-loop CPU s, events, trace digest).

    World.run steps the environment and then calls ``env.run(until=end)``, so
    the loop's CPU time is read when that call starts.
    """
    world = World(scenario)
    env = world.env
    loop_end: list[float] = []
    run_until = env.run

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        loop_end.append(time.process_time())
        return run_until(*args, **kwargs)

    env.run = timed_run  # type: ignore[method-assign]
    started = time.process_time()
    result = world.run()
    return result.stats.wall_s, loop_end[0] - started, result.stats.events, result.digest


def bare_cpu_rate(events: int) -> float:
    """Return bare SimPy's events per CPU second over ``events`` events."""
    started = time.process_time()
    _wall, done = run_bare_simpy(events)
    return done / (time.process_time() - started)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the rates, their ratio and optionally a profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="workload seconds")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the scenario; the best is shown"
    )
    parser.add_argument("--quickstart", action="store_true", help="run the quickstart instead")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    parser.add_argument("--top", type=int, default=40, help="profile lines to print")
    args = parser.parse_args(argv)

    scenario = load_scenario(QUICKSTART) if args.quickstart else eight_hosts(args.duration)
    runs = []
    bare_rates = []
    for _ in range(args.repeat):
        runs.append(run_once(scenario))
        bare_rates.extend(bare_cpu_rate(runs[-1][2]) for _ in range(3))
    wall = min(run[0] for run in runs)
    cpu = min(run[1] for run in runs)
    events = runs[0][2]
    digests = {run[3] for run in runs}
    bare_rate = max(bare_rates)
    rate = events / cpu
    sim_s = scenario.run.end_s
    print(f"{scenario.name}: {events} events, {sim_s:g} simulated s, best of {args.repeat}")
    print(f"  event loop          {cpu:.2f} CPU s, {wall:.2f} wall s")
    print(f"  simulated s per s   {sim_s / cpu:,.0f} (CPU)")
    print(f"  events per CPU s    {rate:,.0f}")
    print(f"  bare SimPy          {bare_rate:,.0f} (best of {len(bare_rates)})")
    print(f"  ratio               {rate / bare_rate:.3f}")
    print(f"  digest              {' '.join(sorted(digests))}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_once(scenario)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
