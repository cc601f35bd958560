"""``simsi serve``: run one production host until SIGTERM or SIGINT.

Importing this module stays cheap (no aiohttp), because ``simsi --help`` loads
every subcommand's arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

from simsi.host.config import add_option_arguments, load_config

log = logging.getLogger("simsi.host")

_EPILOG = """\
Every flag can also be set by the SIMSI_* variable named in its help; a flag
wins over its variable. The host id defaults to $HOSTNAME, which is the pod
name in a Kubernetes StatefulSet. /healthz and /readyz respond without a token;
every other route needs 'Authorization: Bearer TOKEN' when a token is set.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` flags."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    add_option_arguments(parser)


#: Allocations between two young-generation garbage collections (CPython's default is 700).
GC_GEN0_THRESHOLD = 50_000


def configure_gc() -> None:
    """Make CPython's cyclic garbage collector run less often in a host process.

    A host keeps every live instance with its locks and events, and each request
    or alarm allocates short-lived objects, so with the default threshold the
    collector runs thousands of times per second and rescans those objects.
    With 20,000 live instances, bench/bench_host.py fired alarms about twice as
    fast with this threshold; the memory cost is a few more short-lived objects.
    """
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run(args: argparse.Namespace) -> int:
    """Serve until stopped; return 0 after a stop signal.

    Raises:
        ConfigError: a flag or variable is invalid, or the address cannot be bound.
    """
    config = load_config(args)
    from simsi.host.server import HostServer

    server = HostServer(config)
    configure_gc()
    asyncio.run(server.serve())
    return 0
