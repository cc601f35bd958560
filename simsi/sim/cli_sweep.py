"""``simsi sweep SCENARIO --seeds N``: run a scenario over many seeds and list the failing ones.

Runs seeds ``S .. S+N-1`` (``--start S``, default 0) across worker processes with
a progress bar on stderr, then prints a table of violations by kind and every
failing seed with the ``simsi sim`` command that replays it.

Exit codes: 0 when every seed met every expectation, 1 when one did not (or a
run raised), 2 when the scenario or an option is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys

from simsi.core.errors import ScenarioError
from simsi.sim.scenario import load_scenario
from simsi.sim.sweep import format_sweep, sweep, sweep_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sweep`` subcommand's arguments to ``parser``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="path of a scenario TOML file")
    parser.add_argument(
        "--seeds", type=int, required=True, metavar="N", help="number of seeds to run"
    )
    parser.add_argument("--start", type=int, default=0, metavar="S", help="first seed (default 0)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="K",
        help="worker processes (default: one per CPU; 1 runs in this process)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary and every seed's outcome as one JSON object",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show the progress bar on stderr"
    )


def run(args: argparse.Namespace) -> int:
    """Run the sweep described by ``args`` and return the exit code."""
    if args.seeds < 1:
        print(
            f"simsi sweep: invalid --seeds {args.seeds}: expected an integer >= 1, "
            "like --seeds 100",
            file=sys.stderr,
        )
        return 2
    if args.workers is not None and args.workers < 1:
        print(
            f"simsi sweep: invalid --workers {args.workers}: expected an integer >= 1, "
            "or leave it out for one worker per CPU",
            file=sys.stderr,
        )
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"simsi sweep: invalid input: {exc}", file=sys.stderr)
        return 2
    seeds = range(args.start, args.start + args.seeds)
    result = sweep(scenario, seeds, args.workers, progress=not args.no_progress)
    if args.json:
        print(json.dumps(sweep_dict(result), indent=2, sort_keys=True))
    else:
        print(format_sweep(result))
    return 0 if result.met else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``simsi sweep`` arguments and run."""
    parser = argparse.ArgumentParser(prog="simsi sweep", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
