"""The options of ``simsi serve``: one table row per setting, and the value parsers.

Every option is one row of :data:`OPTIONS`: its flag, its environment variable,
its default and its parser. :func:`simsi.host.config.load_config` reads them.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SIZE = re.compile(r"(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_size(text: str) -> int:
    """Parse a byte count such as ``1048576``, ``512KiB`` or ``1MiB``; ``k`` and ``m`` are binary."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected a byte count like 1048576, 512KiB or 1MiB")
    value = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if value < 1:
        raise ValueError("expected at least 1 byte")
    return value


def parse_seconds(text: str) -> float:
    """Parse a positive number of seconds such as ``30`` or ``0.5``."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("expected a positive number of seconds like 30 or 0.5")
    return value


def parse_optional_seconds(text: str) -> float | None:
    """Parse seconds like :func:`parse_seconds`; ``0`` or ``none`` mean no limit."""
    if text.strip().lower() in {"0", "none", "off"}:
        return None
    return parse_seconds(text)


def parse_positive_int(text: str) -> int:
    """Parse an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def parse_bool(text: str) -> bool:
    """Parse ``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class Option:
    """One setting, settable by a flag or an environment variable.

    Attributes:
        dest: the attribute name in the parsed arguments.
        flag: the command-line flag.
        env: the environment variable.
        help: what the option sets, and in what unit.
        default: the value used when neither the flag nor the variable is set, as text.
        parse: turns the text into the value; raises ``ValueError`` with a hint on bad input.
        metavar: the placeholder shown in ``--help``.
    """

    dest: str
    flag: str
    env: str
    help: str
    default: str | None = None
    parse: Callable[[str], Any] = str
    metavar: str = "VALUE"


OPTIONS: tuple[Option, ...] = (
    Option("app", "--app", "SIMSI_APP", "interface class or factory: 'pkg.module:Class' or "
           "'path/to/app.py:Class'", metavar="TARGET"),
    Option("host_id", "--host-id", "SIMSI_HOST_ID", "this host's id, one of the hosts pattern's "
           "ids (default: $HOSTNAME, then the machine's host name)", metavar="ID"),
    Option("hosts", "--hosts", "SIMSI_HOSTS", "host pattern such as 'host-{0..2}'; quote it so "
           "the shell does not expand the braces", metavar="PATTERN"),
    Option("shards", "--shards", "SIMSI_SHARDS", "number of shards (default 1024); every host "
           "of the cluster must use the same value", "1024", parse_positive_int, "N"),
    Option("store", "--store", "SIMSI_STORE", "alarm store URL; '{host}' is replaced by the "
           "host id (default sqlite:///simsi-{host}.db)", "sqlite:///simsi-{host}.db",
           metavar="URL"),
    Option("listen", "--listen", "SIMSI_LISTEN", "address to listen on, HOST:PORT or "
           "[IPV6]:PORT (default 0.0.0.0:8080)", "0.0.0.0:8080", metavar="ADDR"),
    Option("peer_url", "--peer-url", "SIMSI_PEER_URL", "URL template of the other hosts, with "
           "'{host}' for the host id, such as 'http://{host}.simsi:8080'", metavar="TEMPLATE"),
    Option("forward", "--forward", "SIMSI_FORWARD", "forward requests for other hosts' shards "
           "to their owner (default true); --no-forward responds 421 with the owner instead",
           "true", parse_bool),
    Option("auth_token", "--auth-token", "SIMSI_AUTH_TOKEN", "bearer token required from "
           "clients and peers; prefer the variable or --auth-token-file, since flags are "
           "visible in the process list", metavar="TOKEN"),
    Option("auth_token_file", "--auth-token-file", "SIMSI_AUTH_TOKEN_FILE", "file whose "
           "first line is the bearer token (for mounted secrets)", metavar="PATH"),
    Option("max_body_bytes", "--max-body-bytes", "SIMSI_MAX_BODY_BYTES", "largest request "
           "body and WebSocket message in bytes, like 1048576 or 1MiB (default 1MiB)", "1MiB",
           parse_size, "BYTES"),
    Option("request_timeout", "--request-timeout", "SIMSI_REQUEST_TIMEOUT", "seconds an "
           "on_request or on_connect handler may run before the caller gets 504 (default 30; "
           "0 means no limit)", "30", parse_optional_seconds, "SECONDS"),
    Option("idle_timeout", "--idle-timeout", "SIMSI_IDLE_TIMEOUT", "seconds an instance may "
           "sit with no running work and no open connection before it is shut down to free "
           "memory (default 0: instances stay until the host stops)", "0",
           parse_optional_seconds, "SECONDS"),
    Option("forward_timeout", "--forward-timeout", "SIMSI_FORWARD_TIMEOUT", "seconds to wait "
           "for the owner host's response to a forwarded request (default 35)", "35",
           parse_seconds, "SECONDS"),
    Option("drain_seconds", "--drain-seconds", "SIMSI_DRAIN_SECONDS", "seconds that running "
           "requests and alarm handlers get to finish after SIGTERM (default 25)", "25",
           parse_seconds, "SECONDS"),
    Option("alarm_max_attempts", "--alarm-max-attempts", "SIMSI_ALARM_MAX_ATTEMPTS",
           "deliveries of an alarm before it is dropped (default 5)", "5", parse_positive_int,
           "N"),
    Option("alarm_max_concurrent", "--alarm-max-concurrent", "SIMSI_ALARM_MAX_CONCURRENT",
           "alarm handlers that may run at once on this host (default 64)", "64",
           parse_positive_int, "N"),
    Option("alarm_handler_timeout", "--alarm-handler-timeout", "SIMSI_ALARM_HANDLER_TIMEOUT",
           "seconds an on_alarm call may run before it counts as failed (default 60; 0 means "
           "no limit)", "60", parse_optional_seconds, "SECONDS"),
    Option("alarm_backoff_base", "--alarm-backoff-base", "SIMSI_ALARM_BACKOFF_BASE",
           "seconds before the first alarm retry, doubling per failure (default 0.1)", "0.1",
           parse_seconds, "SECONDS"),
    Option("alarm_backoff_cap", "--alarm-backoff-cap", "SIMSI_ALARM_BACKOFF_CAP",
           "longest delay between alarm retries in seconds (default 30)", "30",
           parse_seconds, "SECONDS"),
)  # fmt: skip


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per row of :data:`OPTIONS`, each defaulting to ``None``."""
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        if option.dest == "forward":
            parser.add_argument(
                option.flag, dest="forward", action=argparse.BooleanOptionalAction, help=help_text
            )
        elif option.dest == "hosts":
            # nargs="+" so an unquoted pattern that the shell expanded is caught with a hint.
            parser.add_argument(
                option.flag, dest="hosts", nargs="+", metavar=option.metavar, help=help_text
            )
        else:
            parser.add_argument(
                option.flag, dest=option.dest, metavar=option.metavar, help=help_text
            )
