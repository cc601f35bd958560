"""``simsi sim SCENARIO``: run a scenario, print the report, exit by its expectations.

Exit codes: 0 when every expectation in the scenario's ``[expect]`` table is
met, 1 when one is not, 2 when the scenario or an option is invalid.

With ``--check-determinism`` the command does not report on a run. It runs the
seed in two fresh processes with different ``PYTHONHASHSEED`` values and
compares their trace digests. It exits 0 when they are equal and 1 when they
differ, printing the first diverging trace event of both runs. It also exits 1
when a run failed, and 2 on invalid input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from simsi.core.errors import ScenarioError
from simsi.sim.determinism import (
    DEFAULT_HASH_SEEDS,
    DeterminismCheckError,
    check_determinism,
    format_determinism,
)
from simsi.sim.report import expectations_met, format_report, log_summary, report_dict
from simsi.sim.scenario import load_scenario
from simsi.sim.world import run_scenario

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommand's arguments to ``parser``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="path of a scenario TOML file")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of every random choice in the run (default: the scenario's [run] seed)",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        default=None,
        help="write the trace to FILE as JSON lines, one event per line",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as one JSON object instead of text",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="draw a timeline of the run (hosts, incarnations, faults, alarm fires, clock "
        "offsets) to FILE, a PNG, SVG or PDF by its suffix",
    )
    parser.add_argument(
        "--check-determinism",
        action="store_true",
        help="run the seed in two fresh processes with different PYTHONHASHSEED values and "
        "compare their trace digests instead of reporting on one run",
    )
    parser.add_argument(
        "--hash-seeds",
        metavar="A,B",
        default=",".join(DEFAULT_HASH_SEEDS),
        help="the two PYTHONHASHSEED values of --check-determinism "
        f"(default {','.join(DEFAULT_HASH_SEEDS)})",
    )


def run(args: argparse.Namespace) -> int:
    """Run the scenario named in ``args`` and return the exit code."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"simsi sim: invalid input: {exc}", file=sys.stderr)
        return 2
    if args.check_determinism:
        return _check_determinism(args)
    result = run_scenario(scenario, seed=args.seed)
    if args.trace:
        try:
            result.trace.write_jsonl(args.trace)
        except OSError as exc:
            print(
                f"simsi sim: cannot write the trace to {args.trace!r}: {exc.strerror}",
                file=sys.stderr,
            )
            return 2
        logger.info("wrote %d trace events to %s", len(result.trace), args.trace)
    if args.plot:
        # Imported here: matplotlib takes a while to load and only --plot needs it.
        from simsi.sim.plot import write_timeline

        try:
            write_timeline(result, args.plot)
        except (OSError, ValueError) as exc:
            print(f"simsi sim: cannot write the plot to {args.plot!r}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report_dict(result), indent=2, sort_keys=True))
    else:
        print(format_report(result))
    log_summary(result)
    return 0 if expectations_met(result) else 1


def _check_determinism(args: argparse.Namespace) -> int:
    for option, value in (("--trace", args.trace), ("--plot", args.plot)):
        if value:
            print(
                f"simsi sim: {option} does not apply with --check-determinism, which compares "
                "the traces of two child runs; drop one of the options",
                file=sys.stderr,
            )
            return 2
    hash_seeds = [part.strip() for part in args.hash_seeds.split(",")]
    if len(hash_seeds) != 2 or not all(_valid_hash_seed(part) for part in hash_seeds):
        print(
            f"simsi sim: invalid --hash-seeds {args.hash_seeds!r}: expected two values, each an "
            "integer from 0 to 4294967295 or 'random', like --hash-seeds 0,12345",
            file=sys.stderr,
        )
        return 2
    try:
        result = check_determinism(args.scenario, args.seed, hash_seeds=hash_seeds)
    except DeterminismCheckError as exc:
        print(f"simsi sim: determinism check failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print(format_determinism(result))
    return 0 if result.deterministic else 1


def _valid_hash_seed(value: str) -> bool:
    if value == "random":
        return True
    return value.isdigit() and int(value) <= 4_294_967_295


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``simsi sim`` arguments and run; for ``python -m simsi.sim.cli_sim``."""
    parser = argparse.ArgumentParser(prog="simsi sim", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
