"""Exploration: Hypothesis searches fault schedules for one that breaks an expectation.

Each example is a fault schedule drawn within a
:class:`~simsi.sim.budget.FaultBudget`. For a scenario with a
``[faults_random]`` budget, the drawn faults join its fixed ``[[faults]]`` in
place of the faults the seed would draw. For a scenario without one, a budget
is derived from its fixed faults (:func:`~simsi.sim.schedules.budget_from_faults`)
and the drawn faults replace them. Either way the scenario runs with its seed,
and an example *fails* when the run misses an expectation of ``[expect]`` or
the simulator raises. Hypothesis then shrinks the failing schedule (fewer faults,
earlier times, smaller numbers) and :func:`explore` returns the smallest one
it found::

    result = explore(load_scenario("scenarios/quickstart.toml"), examples=50, seed=1)
    if result.found:
        path = write_counterexample(result, "counterexample.toml")

The written file is an ordinary scenario with the whole schedule as fixed
faults, no ``[faults_random]`` table and the same seed, so ``simsi sim``
replays the failing run with the same digest.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from random import Random

from hypothesis import HealthCheck, Phase, Verbosity, find, settings
from hypothesis.errors import NoSuchExample
from tqdm import tqdm

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement
from simsi.sim.budget import FaultBudget
from simsi.sim.expectations import evaluate
from simsi.sim.faults import Fault
from simsi.sim.scenario import Scenario, validate_scenario
from simsi.sim.schedules import budget_for, known_hosts, schedules
from simsi.sim.world import run_scenario

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunVerdict:
    """The outcome of one run of a schedule: its digest and unmet expectations, or its error."""

    digest: str | None
    unmet: tuple[str, ...]
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the run missed an expectation or raised."""
        return bool(self.unmet) or self.error is not None


def judge(scenario: Scenario) -> RunVerdict:
    """Run ``scenario`` and return its digest and unmet expectations, or the error it raised."""
    try:
        result = run_scenario(scenario)
    except Exception as exc:
        # A simulator error is a finding: the search shrinks the schedule that causes it.
        logger.warning("run of %r raised %r", scenario.name, exc)
        return RunVerdict(None, (), f"{type(exc).__name__}: {exc}")
    verdicts = evaluate(scenario.expect, result.checks)
    unmet = tuple(f"{v.name} = {v.expected!r}: got {v.actual!r}" for v in verdicts if not v.met)
    return RunVerdict(result.digest, unmet)


@dataclass(frozen=True)
class ExploreResult:
    """The outcome of :func:`explore`.

    Attributes:
        scenario: the scenario explored, with the seed every run used.
        budget: the bounds of the drawn faults.
        fixed: the faults every example kept, from the scenario's ``[[faults]]``
            when it has a ``[faults_random]`` budget, else none.
        runs: simulations run, while searching and while shrinking.
        wall_s: wall-clock seconds of the search.
        counterexample: the scenario with the smallest failing schedule as its
            faults, or ``None`` when no example failed.
        verdict: the counterexample's run.
    """

    scenario: Scenario
    budget: FaultBudget
    fixed: tuple[Fault, ...]
    runs: int
    wall_s: float
    counterexample: Scenario | None = None
    verdict: RunVerdict | None = None

    @property
    def found(self) -> bool:
        """Whether a failing schedule was found."""
        return self.counterexample is not None


def with_schedule(
    scenario: Scenario, drawn: tuple[Fault, ...], fixed: tuple[Fault, ...] = ()
) -> Scenario:
    """Return ``scenario`` with ``fixed`` and ``drawn`` faults as its faults and no budget.

    The faults are sorted by time, ``fixed`` before ``drawn`` at equal times, and
    the world applies them in that order.
    """
    faults = tuple(sorted((*fixed, *drawn), key=lambda fault: fault.at))
    return dataclasses.replace(scenario, faults=faults, faults_random=None)


def explore(
    scenario: Scenario,
    *,
    examples: int = 100,
    seed: int | None = None,
    budget: FaultBudget | None = None,
    progress: bool = False,
) -> ExploreResult:
    """Search fault schedules within ``budget`` for one that makes ``scenario`` fail.

    Args:
        scenario: the scenario; its expectations decide what fails.
        examples: schedules Hypothesis generates before it gives up; shrinking a
            failing one runs more.
        seed: the seed of every run, and of the search itself, which then tries
            the same schedules on every call. Without it the runs use the
            scenario's seed and the search is random.
        budget: the faults to draw; defaults to
            :func:`~simsi.sim.schedules.budget_for` the scenario.
        progress: show a tqdm counter of runs on stderr.

    Raises:
        ScenarioError: the scenario is invalid.
        ConfigError: the scenario sets no expectations, ``examples`` is below 1,
            or no budget can be derived.
    """
    scenario = validate_scenario(scenario)
    if seed is not None:
        scenario = scenario.with_seed(seed)
    if examples < 1:
        raise ConfigError(f"invalid examples {examples!r}: expected an integer >= 1")
    if not _sets_expectations(scenario):
        raise ConfigError(
            f"scenario {scenario.name!r} sets no expectations in [expect], so no run can fail; "
            'add one, like single_instance = "holds" or alarms_lost = 0'
        )
    budget = budget or budget_for(scenario)
    fixed = scenario.faults if scenario.faults_random is not None else ()
    hosts = Placement(scenario.cluster.hosts, scenario.cluster.shards).hosts
    strategy = schedules(budget, hosts, fixed=fixed, known=known_hosts(scenario))

    runs = 0
    bar = tqdm(desc=f"explore {scenario.name}", unit="run", disable=not progress)

    def fails(faults: tuple[Fault, ...]) -> bool:
        nonlocal runs
        runs += 1
        bar.update(1)
        return judge(with_schedule(scenario, faults, fixed)).failed

    search = settings(
        max_examples=examples,
        database=None,
        derandomize=seed is not None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    started = time.perf_counter()
    try:
        minimal = find(
            strategy,
            fails,
            settings=search,
            random=None if seed is None else Random(seed),
        )
    except NoSuchExample:
        minimal = None
    finally:
        bar.close()
    wall = time.perf_counter() - started

    if minimal is None:
        logger.info("explore of %r: no failing schedule in %d runs", scenario.name, runs)
        return ExploreResult(scenario, budget, fixed, runs, wall)
    counterexample = _counterexample(with_schedule(scenario, minimal, fixed))
    verdict = judge(counterexample)
    logger.info(
        "explore of %r: failing schedule of %d faults after %d runs",
        scenario.name,
        len(minimal),
        runs,
    )
    return ExploreResult(scenario, budget, fixed, runs, wall, counterexample, verdict)


def _sets_expectations(scenario: Scenario) -> bool:
    fields = dataclasses.asdict(scenario.expect)
    return any(value is not None for name, value in fields.items() if name != "alarm_grace_s")


def _counterexample(scenario: Scenario) -> Scenario:
    origin = scenario.path or scenario.name
    description = (
        f"Found by simsi explore from {origin} with seed {scenario.run.seed}: the smallest\n"
        "fault schedule found that misses an expectation of [expect]. Replay it with\n"
        "simsi sim FILE; the trace digest is the same as in the search."
    )
    return dataclasses.replace(
        scenario,
        name=f"{scenario.name}-counterexample",
        description=description,
        path=None,
    )


def write_counterexample(result: ExploreResult, path: str | Path) -> Path:
    """Write the counterexample of ``result`` as a scenario file and return its path.

    Raises:
        ValueError: ``result`` has no counterexample.
        OSError: the file cannot be written.
    """
    if result.counterexample is None:
        raise ValueError(f"explore of {result.scenario.name!r} found no counterexample to write")
    target = Path(path)
    target.write_text(result.counterexample.to_toml(), encoding="utf-8")
    return target
