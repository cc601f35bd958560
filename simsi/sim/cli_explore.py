"""``simsi explore SCENARIO``: search fault schedules for a failing run and write the smallest.

Hypothesis draws fault schedules within the scenario's fault budget. That is
its ``[faults_random]`` table, whose drawn faults join the fixed ``[[faults]]``.
Without that table the budget is derived from the ``[[faults]]`` (the same
kinds and hosts, up to twice as many faults, anywhere in the run), and the
drawn faults replace them. When a run misses an expectation, Hypothesis
shrinks the schedule and the command writes the smallest failing one as a
scenario file. It then replays that file and prints both trace digests, which
must be equal.

Exit codes: 1 when a failing schedule was found and written (the scenario's
expectations do not survive its budget), 0 when none was found in the given
number of examples, 2 when the scenario or an option is invalid. A replay whose
digest differs from the search's also exits 1, with an error on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simsi.core.errors import ConfigError, ScenarioError, SimsiError
from simsi.sim.explore import ExploreResult, RunVerdict, explore, judge, write_counterexample
from simsi.sim.scenario import load_scenario
from simsi.sim.schedules import budget_for, describe_budget


class ReplayMismatchError(SimsiError):
    """The written counterexample replayed with another digest or outcome than in the search."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``explore`` subcommand's arguments to ``parser``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="path of a scenario TOML file")
    parser.add_argument(
        "--examples",
        type=int,
        default=100,
        metavar="N",
        help="fault schedules to generate before giving up (default 100); shrinking runs more",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="where to write the smallest failing scenario "
        "(default: SCENARIO's name with -counterexample.toml, in the current directory)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of every run and of the search, which then tries the same schedules each "
        "time (default: the scenario's seed and a random search)",
    )
    parser.add_argument(
        "--kinds",
        metavar="KIND,KIND",
        default=None,
        help="fault kinds to draw instead of those of the scenario's faults, like crash,restart",
    )
    parser.add_argument(
        "--max-faults",
        type=int,
        default=None,
        metavar="N",
        help="maximum number of faults in one schedule",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show the run counter on stderr"
    )


def run(args: argparse.Namespace) -> int:
    """Explore the scenario named in ``args`` and return the exit code."""
    if args.examples < 1:
        return _invalid(f"invalid --examples {args.examples}: expected an integer >= 1")
    try:
        scenario = load_scenario(args.scenario)
        kinds = [kind.strip() for kind in args.kinds.split(",")] if args.kinds else None
        budget = budget_for(scenario, kinds, args.max_faults)
    except (ScenarioError, ConfigError) as exc:
        return _invalid(f"invalid input: {exc}")
    out = Path(args.out or f"{Path(args.scenario).stem}-counterexample.toml")
    if not out.parent.is_dir():
        # Checked before the search, so a long search never ends with nowhere to write.
        return _invalid(
            f"invalid --out {str(out)!r}: directory {str(out.parent)!r} does not exist; "
            "create it or pass another path"
        )
    try:
        result = explore(
            scenario,
            examples=args.examples,
            seed=args.seed,
            budget=budget,
            progress=not args.no_progress,
        )
    except ConfigError as exc:
        return _invalid(f"invalid input: {exc}")

    data = _outcome(result)
    if result.found:
        try:
            write_counterexample(result, out)
        except OSError as exc:
            return _invalid(f"cannot write the counterexample to {str(out)!r}: {exc.strerror}")
        replay = judge(load_scenario(out))
        data["written"] = str(out)
        data["replay"] = _verdict_dict(replay)
        _print(args, data)
        _check_replay(result.verdict, replay, out)
        return 1
    _print(args, data)
    return 0


def _invalid(message: str) -> int:
    print(f"simsi explore: {message}", file=sys.stderr)
    return 2


def _verdict_dict(verdict: RunVerdict | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {"digest": verdict.digest, "unmet": list(verdict.unmet), "error": verdict.error}


def _outcome(result: ExploreResult) -> dict[str, Any]:
    faults = result.counterexample.faults if result.counterexample is not None else ()
    return {
        "scenario": result.scenario.name,
        "path": result.scenario.path,
        "seed": result.scenario.run.seed,
        "budget": describe_budget(result.budget),
        "fixed_faults": len(result.fixed),
        "runs": result.runs,
        "wall_s": result.wall_s,
        "found": result.found,
        "faults": [fault.to_dict() for fault in faults],
        "search": _verdict_dict(result.verdict),
    }


def _print(args: argparse.Namespace, data: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return
    where = f" ({data['path']})" if data["path"] else ""

    lines = [
        f"explore of {data['scenario']}{where}, seed {data['seed']}",
        f"budget: {data['budget']}",
        f"ran {data['runs']} simulations in {data['wall_s']:.1f} wall s",
    ]
    if not data["found"]:
        lines.append(f"result: no failing schedule in {args.examples} examples")
        print("\n".join(lines))
        return

    count = len(data["faults"])
    fixed = f", {data['fixed_faults']} of them fixed" if data["fixed_faults"] else ""
    lines.append(f"found a failing schedule of {count} fault{'s' if count != 1 else ''}{fixed}:")
    for fault in data["faults"]:
        extra = " ".join(
            f"{key}={value}" for key, value in fault.items() if key not in ("at", "kind", "host")
        )
        host = fault.get("host") or ""
        lines.append(f"  at {fault['at']:.3f} s  {fault['kind']} {host} {extra}".rstrip())

    search, replay = data["search"], data["replay"]
    for problem in search["unmet"]:
        lines.append(f"unmet: {problem}")
    if search["error"]:
        lines.append(f"the simulator raised {search['error']}")
    lines += [
        f"wrote {data['written']}",
        f"digest in the search  {search['digest']}",
        f"digest of the replay  {replay['digest']}",
        f"replay with: simsi sim {data['written']}",
        "result: found a failing schedule",
    ]
    print("\n".join(lines))


def _check_replay(search: RunVerdict | None, replay: RunVerdict, out: Path) -> None:
    if search is None or (search.digest, search.unmet, search.error) != (
        replay.digest,
        replay.unmet,
        replay.error,
    ):
        raise ReplayMismatchError(
            f"the written file {str(out)!r} replays differently from the search "
            f"(digest {replay.digest} instead of {search.digest if search else None}); "
            "the scenario did not survive writing to TOML"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` as ``simsi explore`` arguments and run."""
    parser = argparse.ArgumentParser(prog="simsi explore", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
