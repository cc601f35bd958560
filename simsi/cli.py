"""The ``simsi`` command line: ``serve``, ``sim``, ``sweep``, ``explore``, ``placement``, ``reshard``.

Each subcommand lives next to the code it drives and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int``. This module only dispatches,
so ``simsi --help`` stays fast: a subcommand's module is imported when it runs.

Exit codes: 0 success (or expectations met), 1 expectations not met or the
command failed, 2 invalid input.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from simsi.core.errors import ConfigError, SimsiError

log = logging.getLogger("simsi.cli")

#: subcommand -> (module, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("simsi.host.cli", "run one production host (HTTP and WebSocket)"),
    "sim": ("simsi.sim.cli_sim", "run a simulated cluster scenario and check its expectations"),
    "sweep": ("simsi.sim.cli_sweep", "run a scenario over many seeds in parallel"),
    "explore": (
        "simsi.sim.cli_explore",
        "search fault schedules with Hypothesis and shrink failures",
    ),
    "placement": ("simsi.cli_placement", "show which host and shard own instance ids"),
    "reshard": ("simsi.stores.reshard", "move stored alarms to a new shard count"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level parser; only ``command``'s module is imported for its arguments.

    Every subcommand is listed in ``simsi --help`` without importing its module, so
    ``simsi serve`` does not pay for loading the simulator and a broken module breaks
    only its own command.
    """
    parser = argparse.ArgumentParser(
        prog="simsi",
        description="Stable interfaces: hosts, simulation and tools.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level of simsi's loggers (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in _COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        if name != command:
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(subparser)
        subparser.set_defaults(_module=module)
    return parser


def _find_command(argv: Sequence[str]) -> str | None:
    """Return the first argument that names a subcommand, or ``None``."""
    for arg in argv:
        if arg in _COMMANDS:
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``simsi`` command and return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_find_command(arguments))
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module = args._module
    try:
        return int(module.run(args))
    except ConfigError as exc:
        print(f"simsi {args.command}: invalid input: {exc}", file=sys.stderr)
        return 2
    except SimsiError as exc:
        print(f"simsi {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
