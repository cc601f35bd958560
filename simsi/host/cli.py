"""``simsi serve``: run one production host until SIGTERM or SIGINT.

Importing this module stays cheap (no aiohttp), because ``simsi --help`` loads
every subcommand's arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from simsi.host.config import add_option_arguments, load_config

log = logging.getLogger("simsi.host")

_EPILOG = """\
Every flag can also be set by the SIMSI_* variable named in its help; a flag
wins over its variable. The host id defaults to $HOSTNAME, which is the pod
name in a Kubernetes StatefulSet. /healthz and /readyz answer without a token;
every other route needs 'Authorization: Bearer TOKEN' when a token is set.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` flags."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_option_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until stopped; return 0 after a stop signal.

    Raises:
        ConfigError: a flag or variable is invalid, or the address cannot be bound.
    """
    config = load_config(args)
    from simsi.host.server import HostServer

    server = HostServer(config)
    asyncio.run(server.serve())
    return 0
