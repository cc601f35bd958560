"""Measure the cost of one SimRuntime coroutine hop against one bare SimPy timeout.

Both loops run in this process, alternating, and each side keeps its best
repetition, so background load affects them alike. Run with::

    .venv/bin/python bench/bench_trampoline.py [--hops 50000] [--repeat 15]

and read the ratio on the last line; the target is at most 1.5.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Generator

import simpy

from simsi.sim import HostClock, SimRuntime


def bare_timeouts(env: simpy.Environment, hops: int) -> Generator[simpy.Event, None, None]:
    """Yield ``hops`` zero-delay timeouts from a plain SimPy process."""
    timeout = env.timeout
    for _ in range(hops):
        yield timeout(0)


async def runtime_sleeps(runtime: SimRuntime, hops: int) -> None:
    """Await ``hops`` zero-second sleeps from a coroutine spawned on ``runtime``."""
    sleep = runtime.sleep
    for _ in range(hops):
        await sleep(0)


def time_bare(hops: int) -> float:
    """Return seconds per hop of :func:`bare_timeouts`."""
    env = simpy.Environment()
    env.process(bare_timeouts(env, hops))
    start = time.perf_counter()
    env.run()
    return (time.perf_counter() - start) / hops


def time_runtime(hops: int) -> float:
    """Return seconds per hop of :func:`runtime_sleeps` through the trampoline."""
    env = simpy.Environment()
    runtime = SimRuntime(env, HostClock(), random.Random(0), "bench")
    runtime.spawn(runtime_sleeps(runtime, hops), "sleeper")
    start = time.perf_counter()
    env.run()
    elapsed = time.perf_counter() - start
    # One resumption per sleep plus the first send that starts the coroutine.
    if runtime.hops != hops + 1:
        raise AssertionError(f"expected {hops + 1} hops, counted {runtime.hops}")
    return elapsed / hops


def best_of(measure: Callable[[int], float], hops: int, best: float) -> float:
    """Return the smaller of ``best`` and one run of ``measure``."""
    return min(best, measure(hops))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print nanoseconds per hop and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=50_000, help="hops per repetition")
    parser.add_argument("--repeat", type=int, default=15, help="repetitions of each loop")
    args = parser.parse_args(argv)

    bare = runtime = float("inf")
    gc.disable()
    try:
        for _ in range(args.repeat):
            bare = best_of(time_bare, args.hops, bare)
            runtime = best_of(time_runtime, args.hops, runtime)
    finally:
        gc.enable()

    print(f"python {sys.version.split()[0]}, simpy {simpy.__version__}")
    print(f"bare simpy timeout:  {bare * 1e9:7.0f} ns per hop")
    print(f"SimRuntime.sleep(0): {runtime * 1e9:7.0f} ns per hop")
    print(f"ratio: {runtime / bare:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
