"""The determinism check: one scenario and seed, run in two fresh processes, must trace alike.

Each run is a separate Python process with its own ``PYTHONHASHSEED``, so code
whose behaviour depends on string hashing (iterating a ``set`` of strings,
``hash()`` of a string) shows up as a digest mismatch::

    result = check_determinism("scenarios/quickstart.toml", seed=3)
    print(format_determinism(result))

On a mismatch the two traces are compared event by event and the first event
that differs is reported with its index and true time. The child processes run
``python -m simsi.sim.determinism SCENARIO --seed N --trace FILE``, which prints
the digest and the number of trace events as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from simsi.core.errors import SimsiError
from simsi.sim.scenario import Scenario, load_scenario
from simsi.sim.trace import MICROS
from simsi.sim.world import run_scenario

logger = logging.getLogger(__name__)

DEFAULT_HASH_SEEDS: tuple[str, str] = ("0", "12345")
"""``PYTHONHASHSEED`` values of the two runs."""

DEFAULT_TIMEOUT_S = 600.0
"""Wall-clock seconds each child process may take before the check fails."""


class DeterminismCheckError(SimsiError):
    """A child process of the determinism check failed or printed something unexpected."""


@dataclass(frozen=True)
class ProcessRun:
    """One child process's run: its ``PYTHONHASHSEED``, trace digest and trace length."""

    hash_seed: str
    digest: str
    trace_events: int


@dataclass(frozen=True)
class Divergence:
    """The first trace event at which two runs differ.

    Attributes:
        index: position of the event in both traces (its ``seq``).
        first: the canonical JSON line of the first run's event, or ``None`` when
            its trace ended before this index.
        second: the same for the second run.
        previous: the last event both traces share, or ``None`` when they differ
            from the first event.
    """

    index: int
    first: str | None
    second: str | None
    previous: str | None

    @staticmethod
    def true_time_s(line: str | None) -> float | None:
        """Return the true time in seconds of an event line, or ``None`` for a missing event."""
        if line is None:
            return None
        return float(json.loads(line)["t_us"]) / MICROS


@dataclass(frozen=True)
class DeterminismResult:
    """The outcome of :func:`check_determinism`."""

    scenario: str
    seed: int | None
    runs: tuple[ProcessRun, ProcessRun]
    divergence: Divergence | None

    @property
    def deterministic(self) -> bool:
        """Whether both runs produced the same trace digest."""
        return self.runs[0].digest == self.runs[1].digest

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        divergence = None
        if self.divergence is not None:
            d = self.divergence
            divergence = {
                "index": d.index,
                "t_s": [d.true_time_s(d.first), d.true_time_s(d.second)],
                "events": [_parse(d.first), _parse(d.second)],
                "previous": _parse(d.previous),
            }
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "deterministic": self.deterministic,
            "runs": [
                {
                    "python_hash_seed": r.hash_seed,
                    "digest": r.digest,
                    "trace_events": r.trace_events,
                }
                for r in self.runs
            ],
            "first_divergence": divergence,
        }


def _parse(line: str | None) -> Any:
    return None if line is None else json.loads(line)


def check_determinism(
    scenario: str | Path | Scenario,
    seed: int | None = None,
    *,
    hash_seeds: Sequence[str] = DEFAULT_HASH_SEEDS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cwd: str | Path | None = None,
) -> DeterminismResult:
    """Run ``scenario`` with ``seed`` in two child processes and compare their traces.

    Args:
        scenario: a scenario file, or a :class:`Scenario`, which is written to a
            temporary TOML file first (its interface must be importable by name).
        seed: overrides the scenario's seed.
        hash_seeds: the two ``PYTHONHASHSEED`` values, each an integer string or ``"random"``.
        timeout_s: wall-clock seconds each child may take.
        cwd: working directory of the children; it is on their import path, so
            interfaces named ``"pkg.module:Class"`` resolve there. Defaults to the
            current directory.

    Raises:
        ValueError: ``hash_seeds`` does not have two values.
        DeterminismCheckError: a child failed, timed out or printed no result.
    """
    if len(hash_seeds) != 2:
        raise ValueError(f"hash_seeds must have two values, got {list(hash_seeds)!r}")
    with tempfile.TemporaryDirectory(prefix="simsi-determinism-") as tmp:
        if isinstance(scenario, Scenario):
            path = Path(tmp) / "scenario.toml"
            path.write_text(scenario.to_toml(), encoding="utf-8")
            name = scenario.path or scenario.name
        else:
            path = Path(scenario).resolve()
            name = str(scenario)
        traces = [Path(tmp) / f"trace-{index}.jsonl" for index in range(2)]
        children = [
            _start_child(path, seed, hash_seed, trace, cwd)
            for hash_seed, trace in zip(hash_seeds, traces, strict=True)
        ]
        runs = tuple(
            _finish_child(child, hash_seed, timeout_s)
            for child, hash_seed in zip(children, hash_seeds, strict=True)
        )
        pair = (runs[0], runs[1])
        divergence = None
        if pair[0].digest != pair[1].digest:
            divergence = first_divergence(traces[0], traces[1])
    result = DeterminismResult(name, seed, pair, divergence)
    logger.info(
        "determinism check of %s %s: %s",
        name,
        "with the scenario's seed" if seed is None else f"seed {seed}",
        "same digest" if result.deterministic else "digests differ",
    )
    return result


def _start_child(
    path: Path, seed: int | None, hash_seed: str, trace: Path, cwd: str | Path | None
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "simsi.sim.determinism", str(path), "--trace", str(trace)]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    logger.debug("starting %s with PYTHONHASHSEED=%s", command, hash_seed)
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish_child(child: subprocess.Popen[str], hash_seed: str, timeout_s: float) -> ProcessRun:
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        child.kill()
        child.communicate()
        raise DeterminismCheckError(
            f"the run with PYTHONHASHSEED={hash_seed} timed out after {timeout_s:g} s; "
            "pass a larger timeout or a shorter scenario"
        ) from exc
    if child.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise DeterminismCheckError(
            f"the run with PYTHONHASHSEED={hash_seed} failed with exit code "
            f"{child.returncode}:\n{tail}"
        )
    try:
        data = json.loads(out)
        return ProcessRun(hash_seed, str(data["digest"]), int(data["trace_events"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DeterminismCheckError(
            f"the run with PYTHONHASHSEED={hash_seed} printed no digest; its output was {out!r}"
        ) from exc


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="ascii") as source:
        for line in source:
            yield line.rstrip("\n")


def first_divergence(first: str | Path, second: str | Path) -> Divergence | None:
    """Return the first event at which two JSON-lines traces differ, or ``None`` if they match."""
    previous: str | None = None
    pairs = zip_longest(_lines(Path(first)), _lines(Path(second)))
    for index, (one, other) in enumerate(pairs):
        if one != other:
            return Divergence(index, one, other, previous)
        previous = one
    return None


def format_determinism(result: DeterminismResult) -> str:
    """Return the result as text for a terminal."""
    seed = "the scenario's seed" if result.seed is None else f"seed {result.seed}"
    verdict = "deterministic" if result.deterministic else "NOT deterministic"
    lines = [f"determinism check of {result.scenario}, {seed}: {verdict}"]
    width = max(len(run.hash_seed) for run in result.runs)
    for run in result.runs:
        lines.append(
            f"  PYTHONHASHSEED={run.hash_seed:<{width}}  digest {run.digest}  "
            f"({run.trace_events} trace events)"
        )
    divergence = result.divergence
    if divergence is not None:
        lines.append(f"first diverging trace event: index {divergence.index}")
        for run, line in zip(result.runs, (divergence.first, divergence.second), strict=True):
            when = divergence.true_time_s(line)
            at = "trace ended" if when is None else f"true time {when:.6f} s"
            lines.append(f"  PYTHONHASHSEED={run.hash_seed:<{width}}  {at}")
            lines.append(f"    {line if line is not None else '(no event)'}")
        if divergence.previous is not None:
            lines.append(f"  last event both runs share: {divergence.previous}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one scenario, write its trace and print its digest; the child side of the check."""
    parser = argparse.ArgumentParser(
        prog="python -m simsi.sim.determinism",
        description="Run a scenario once; print its trace digest as JSON.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="path of a scenario TOML file")
    parser.add_argument("--seed", type=int, default=None, help="overrides the scenario's seed")
    parser.add_argument("--trace", metavar="FILE", required=True, help="write the trace here")
    args = parser.parse_args(argv)
    result = run_scenario(load_scenario(args.scenario), seed=args.seed)
    result.trace.write_jsonl(args.trace)
    print(json.dumps({"digest": result.digest, "trace_events": len(result.trace)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
