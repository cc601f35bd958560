"""``simsi sim SCENARIO``: run a scenario, print the report, exit by its expectations.

Exit codes: 0 when every expectation in the scenario's ``[expect]`` table is
met, 1 when one is not, 2 when the scenario or an option is invalid.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from simsi.core.errors import ScenarioError
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


def run(args: argparse.Namespace) -> int:
    """Run the scenario named in ``args`` and return the exit code."""
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"simsi sim: invalid input: {exc}", file=sys.stderr)
        return 2
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
    if args.json:
        print(json.dumps(report_dict(result), indent=2, sort_keys=True))
    else:
        print(format_report(result))
    log_summary(result)
    return 0 if expectations_met(result) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``simsi sim`` arguments and run; for ``python -m simsi.sim.cli_sim``."""
    parser = argparse.ArgumentParser(prog="simsi sim", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
