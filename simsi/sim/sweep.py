"""Sweeps: one scenario over many seeds, across worker processes.

Each seed is one independent run. A worker sends back a small
:class:`SeedOutcome` (verdicts and violation counts, not the trace), so results
stay cheap to pickle::

    result = sweep(load_scenario("scenarios/quickstart.toml"), range(100), workers=4)
    for outcome in result.failing:
        print(outcome.seed, result.replay_command(outcome.seed))

Workers are started with the ``spawn`` method, so a sweep behaves the same on
Linux, macOS and Windows and never forks a process that has threads running. A run
that raises is recorded as a failing seed with the error, and the sweep goes on.

NOTE: spawned workers import the caller's ``__main__`` module. Call :func:`sweep`
with ``workers > 1`` from a file run as a script (behind ``if __name__ ==
"__main__":``), a notebook or a test, not from code piped to ``python -``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from simsi.sim.expectations import evaluate
from simsi.sim.scenario import Scenario, validate_scenario
from simsi.sim.world import run_scenario

logger = logging.getLogger(__name__)

VIOLATION_KINDS: tuple[tuple[str, str], ...] = (
    ("single_instance", "single instance"),
    ("routing", "routing"),
    ("lost_alarms", "lost alarms"),
    ("phantom_alarms", "phantom alarms"),
    ("early_fires", "early fires"),
    ("duplicates", "duplicate fires"),
    ("unmet_expectations", "unmet expectations"),
    ("errors", "run errors"),
)
"""Keys of :attr:`SeedOutcome.violations` and their names in the summary table."""


@dataclass(frozen=True)
class SeedOutcome:
    """The summary of one seed's run.

    Attributes:
        seed: the run's seed.
        met: whether the run met every expectation of the scenario (``False`` on an error).
        digest: the trace digest, empty on an error.
        violations: counts per key of :data:`VIOLATION_KINDS`: instances live on two
            incarnations, misrouted requests, lost alarms, phantom fires, early
            fires, duplicate handler runs, unmet expectations, and 1 for a run
            that raised.
        unmet: one line per unmet expectation, like ``"alarms_lost = 0: got 2"``.
        first_overlap: the single-instance counterexample, if any.
        error: the traceback of a run that raised, else ``None``.
        events: SimPy events processed.
        wall_s: wall-clock seconds of the run.
    """

    seed: int
    met: bool
    digest: str
    violations: dict[str, int]
    unmet: tuple[str, ...] = ()
    first_overlap: str | None = None
    error: str | None = None
    events: int = 0
    wall_s: float = 0.0


def run_seed(scenario: Scenario, seed: int) -> SeedOutcome:
    """Run ``scenario`` with ``seed`` and summarise it; errors become a failing outcome."""
    started = time.perf_counter()
    try:
        result = run_scenario(scenario, seed=seed)
    except Exception as exc:
        # The traceback goes into the outcome, and the sweep goes on with the other seeds.
        logger.warning("run of %r with seed %d raised %r", scenario.name, seed, exc)
        violations = dict.fromkeys((key for key, _ in VIOLATION_KINDS), 0)
        violations["errors"] = 1
        return SeedOutcome(
            seed,
            met=False,
            digest="",
            violations=violations,
            error=traceback.format_exc(),
            wall_s=time.perf_counter() - started,
        )
    checks = result.checks
    verdicts = evaluate(scenario.expect, checks)
    unmet = tuple(f"{v.name} = {v.expected!r}: got {v.actual!r}" for v in verdicts if not v.met)
    first = checks.single_instance.first
    violations = {
        "single_instance": checks.single_instance.instances_violated,
        "routing": checks.routing.misrouted,
        "lost_alarms": len(checks.alarms.lost),
        "phantom_alarms": checks.alarms.phantoms,
        "early_fires": checks.alarms.early_fires,
        "duplicates": checks.alarms.duplicates,
        "unmet_expectations": len(unmet),
        "errors": 0,
    }
    return SeedOutcome(
        seed,
        met=not unmet,
        digest=result.digest,
        violations=violations,
        unmet=unmet,
        first_overlap=None if first is None else first.describe(),
        events=result.stats.events,
        wall_s=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class KindSummary:
    """One row of the summary table: how many seeds showed a violation kind, in total and at most."""

    key: str
    label: str
    seeds: int
    total: int
    max_per_seed: int


@dataclass(frozen=True)
class SweepResult:
    """The outcomes of a sweep, ordered by seed.

    Attributes:
        scenario: the scenario swept.
        outcomes: one per seed, in seed order.
        workers: worker processes used (1 means the sweep ran in this process).
        wall_s: wall-clock seconds of the whole sweep.
        unmet_by_name: seeds that missed each expectation, by expectation name.
    """

    scenario: Scenario
    outcomes: tuple[SeedOutcome, ...]
    workers: int
    wall_s: float
    unmet_by_name: dict[str, int] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        """Whether every seed met every expectation."""
        return all(outcome.met for outcome in self.outcomes)

    @property
    def failing(self) -> list[SeedOutcome]:
        """The outcomes that did not meet the expectations, in seed order."""
        return [outcome for outcome in self.outcomes if not outcome.met]

    def summary(self) -> list[KindSummary]:
        """Return one row per violation kind, in the order of :data:`VIOLATION_KINDS`."""
        rows = []
        for key, label in VIOLATION_KINDS:
            counts = [outcome.violations.get(key, 0) for outcome in self.outcomes]
            rows.append(
                KindSummary(
                    key,
                    label,
                    seeds=sum(1 for count in counts if count),
                    total=sum(counts),
                    max_per_seed=max(counts, default=0),
                )
            )
        return rows

    def replay_command(self, seed: int) -> str:
        """Return the ``simsi sim`` command that replays ``seed``."""
        where = self.scenario.path or "SCENARIO.toml"
        return f"simsi sim {where} --seed {seed}"


def default_workers(seeds: int) -> int:
    """Return the default number of workers: one per CPU, at most one per seed."""
    return max(1, min(os.cpu_count() or 1, seeds))


def sweep(
    scenario: Scenario,
    seeds: Iterable[int],
    workers: int | None = None,
    *,
    progress: bool = False,
    on_outcome: Callable[[SeedOutcome], None] | None = None,
) -> SweepResult:
    """Run ``scenario`` once per seed and collect the outcomes.

    Args:
        scenario: the scenario; it is checked once before any run.
        seeds: the seeds to run; duplicates run once.
        workers: worker processes; ``None`` uses one per CPU, and 1 runs every
            seed in this process without a pool.
        progress: show a tqdm progress bar on stderr.
        on_outcome: called in this process with each outcome as it arrives.

    Raises:
        ScenarioError: the scenario is invalid.
        ValueError: ``workers`` is below 1.
    """
    scenario = validate_scenario(scenario)
    todo = sorted(set(seeds))
    if workers is None:
        workers = default_workers(len(todo))
    if workers < 1:
        raise ValueError(f"invalid workers {workers!r}: expected an integer >= 1")
    workers = min(workers, max(1, len(todo)))

    started = time.perf_counter()
    outcomes: list[SeedOutcome] = []
    bar = tqdm(total=len(todo), unit="seed", desc=scenario.name, disable=not progress)

    def collect(outcome: SeedOutcome) -> None:
        outcomes.append(outcome)
        bar.update(1)
        if not outcome.met:
            bar.set_postfix(failing=sum(1 for o in outcomes if not o.met))
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        if workers == 1:
            for seed in todo:
                collect(run_seed(scenario, seed))
        else:
            _run_pool(scenario, todo, workers, collect)
    finally:
        bar.close()

    outcomes.sort(key=lambda outcome: outcome.seed)
    unmet: dict[str, int] = {}
    for outcome in outcomes:
        for line in outcome.unmet:
            name = line.split(" = ", 1)[0]
            unmet[name] = unmet.get(name, 0) + 1
    wall = time.perf_counter() - started
    logger.info(
        "swept %r over %d seeds with %d workers in %.1f s: %d failing",
        scenario.name,
        len(outcomes),
        workers,
        wall,
        sum(1 for outcome in outcomes if not outcome.met),
    )
    return SweepResult(scenario, tuple(outcomes), workers, wall, unmet)


def _run_pool(
    scenario: Scenario, seeds: list[int], workers: int, collect: Callable[[SeedOutcome], None]
) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future[SeedOutcome], int] = {
            pool.submit(run_seed, scenario, seed): seed for seed in seeds
        }
        try:
            for future in as_completed(futures):
                collect(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def sweep_dict(result: SweepResult) -> dict[str, Any]:
    """Return the sweep as JSON-ready data: the summary table and every seed's outcome."""
    return {
        "scenario": result.scenario.name,
        "path": result.scenario.path,
        "seeds": len(result.outcomes),
        "workers": result.workers,
        "wall_s": result.wall_s,
        "expectations_met": result.met,
        "failing_seeds": [outcome.seed for outcome in result.failing],
        "summary": {
            row.key: {"seeds": row.seeds, "total": row.total, "max_per_seed": row.max_per_seed}
            for row in result.summary()
        },
        "unmet_by_expectation": result.unmet_by_name,
        "outcomes": [
            {
                "seed": outcome.seed,
                "met": outcome.met,
                "digest": outcome.digest,
                "violations": outcome.violations,
                "unmet": list(outcome.unmet),
                "first_overlap": outcome.first_overlap,
                "error": outcome.error,
                "events": outcome.events,
                "wall_s": outcome.wall_s,
                "replay": None if outcome.met else result.replay_command(outcome.seed),
            }
            for outcome in result.outcomes
        ],
    }


def format_sweep(result: SweepResult) -> str:
    """Return the summary table and the failing seeds with their replay commands, as text."""
    count = len(result.outcomes)
    failing = result.failing
    rate = count / result.wall_s if result.wall_s > 0 else 0.0
    where = f" ({result.scenario.path})" if result.scenario.path else ""
    workers = f"{result.workers} worker" + ("s" if result.workers != 1 else "")
    lines = [
        f"sweep of {result.scenario.name}{where}: {count} seeds, {workers}, "
        f"{result.wall_s:.1f} wall s ({rate:.1f} seeds per s)",
        "",
        "violations found by the checkers (a seed fails only on an unmet expectation)",
        f"{'kind':<20}{'seeds':>7}{'total':>9}{'max/seed':>10}",
    ]
    for row in result.summary():
        lines.append(f"{row.label:<20}{row.seeds:>7}{row.total:>9}{row.max_per_seed:>10}")
    if result.unmet_by_name:
        names = ", ".join(
            f"{name} in {n} seeds" for name, n in sorted(result.unmet_by_name.items())
        )
        lines.append(f"unmet expectations: {names}")
    lines.append("")

    if not failing:
        lines.append(f"result: all {count} seeds met the expectations")
        return "\n".join(lines)
    lines.append(f"failing seeds ({len(failing)} of {count}):")
    for outcome in failing:
        if outcome.error is not None:
            reason = "run raised " + outcome.error.strip().splitlines()[-1]
        else:
            reason = "; ".join(outcome.unmet)
        lines.append(f"  seed {outcome.seed}: {reason}")
        lines.append(f"    replay: {result.replay_command(outcome.seed)}")
    lines.append(f"result: {len(failing)} of {count} seeds did NOT meet the expectations")
    return "\n".join(lines)
