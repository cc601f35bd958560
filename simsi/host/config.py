"""Configuration of one production host, from command-line flags and ``SIMSI_*`` variables.

Every option is one row of :data:`OPTIONS`: its flag, its environment variable,
its default and its parser. A flag wins over the variable, and the variable wins
over the default. Invalid values raise :class:`~simsi.core.errors.ConfigError`
with a message that names the flag, the variable, the value and the fix, which
``simsi serve`` turns into exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.errors import ConfigError
from simsi.core.placement import Placement

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

_BY_DEST = {option.dest: option for option in OPTIONS}


@dataclass(frozen=True)
class HostConfig:
    """The validated settings of one host.

    Attributes:
        app: the interface target, ``module:attribute`` or ``file.py:attribute``.
        host_id: this host's id.
        hosts: the host pattern.
        shards: the number of shards.
        store_url: the alarm store URL, with ``{host}`` already replaced.
        listen_host: the address to bind.
        listen_port: the TCP port to bind (0 picks a free one).
        peer_url: the peers' URL template with ``{host}``, or ``None`` for a single host.
        forward: whether requests for other hosts' shards are forwarded (else 421).
        auth_token: the bearer token, or ``None`` when the host is open.
        max_body_bytes: the largest request body and WebSocket message.
        request_timeout: seconds a request or connect handler may run, or ``None``.
        forward_timeout: seconds to wait for a peer's response.
        drain_seconds: the grace period after SIGTERM.
        alarm_options: alarm delivery tuning.
    """

    app: str
    host_id: str
    hosts: str
    shards: int = 1024
    store_url: str = "memory://"
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    peer_url: str | None = None
    forward: bool = True
    auth_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 1024 * 1024
    request_timeout: float | None = 30.0
    forward_timeout: float = 35.0
    drain_seconds: float = 25.0
    alarm_options: AlarmOptions = field(default_factory=AlarmOptions)

    def __post_init__(self) -> None:
        placement = Placement(self.hosts, self.shards)
        placement.check_host(self.host_id)
        if self.peer_url is not None:
            check_peer_url(self.peer_url, len(placement.hosts))

    def peer_base(self, host_id: str) -> str:
        """Return the base URL of ``host_id`` from the peer URL template.

        Raises:
            ConfigError: no peer URL template is configured.
        """
        if self.peer_url is None:
            raise ConfigError(
                f"no peer URL is configured, so host {self.host_id!r} cannot reach {host_id!r}; "
                "set --peer-url / SIMSI_PEER_URL like 'http://{host}.simsi:8080'"
            )
        return self.peer_url.replace("{host}", host_id)


def check_peer_url(template: str, host_count: int) -> None:
    """Raise :class:`ConfigError` unless ``template`` is an http(s) URL with ``{host}``."""
    if not template.startswith(("http://", "https://")):
        raise ConfigError(
            f"--peer-url / SIMSI_PEER_URL must start with http:// or https://, got {template!r}; "
            "use a template like 'http://{host}.simsi:8080'"
        )
    if host_count > 1 and "{host}" not in template:
        raise ConfigError(
            f"--peer-url / SIMSI_PEER_URL {template!r} has no '{{host}}' placeholder, so every "
            "host would be reached at the same address; write it like 'http://{host}.simsi:8080'"
        )


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


def _raw_value(
    option: Option, args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[str | None, str]:
    """Return the option's text and where it came from (flag, variable or default)."""
    value = getattr(args, option.dest, None)
    if value is not None:
        if isinstance(value, bool):
            return ("true" if value else "false"), option.flag
        return str(value), option.flag
    env_value = environ.get(option.env)
    if env_value is not None and env_value != "":
        return env_value, option.env
    return option.default, "default"


def _parsed(option: Option, args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    text, source = _raw_value(option, args, environ)
    if text is None:
        return None
    try:
        return option.parse(text)
    except ValueError as exc:
        printable = "<hidden>" if option.dest == "auth_token" else repr(text)
        raise ConfigError(
            f"{option.flag} / {option.env} is invalid: {printable} (from {source}): {exc}"
        ) from None


def _require(option: Option, value: Any, example: str) -> Any:
    if value is None or value == "":
        raise ConfigError(
            f"{option.flag} / {option.env} is missing; set it, for example {option.flag} {example}"
        )
    return value


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` into a bind address and a port."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(
            f"--listen / SIMSI_LISTEN {text!r} is invalid: expected HOST:PORT such as "
            "0.0.0.0:8080, [::]:8080 or 127.0.0.1:0, with a port from 0 to 65535"
        )
    return host or "0.0.0.0", int(port)


def _hosts_pattern(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    option = _BY_DEST["hosts"]
    values = getattr(args, "hosts", None)
    if values is not None and len(values) > 1:
        raise ConfigError(
            f"--hosts got {len(values)} values {values!r}; the shell probably expanded an "
            "unquoted pattern. Quote it: --hosts 'host-{0..2}'"
        )
    if values:
        return str(values[0])
    return str(_require(option, environ.get(option.env), "'host-{0..2}'"))


def _host_id(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str]:
    option = _BY_DEST["host_id"]
    text, source = _raw_value(option, args, environ)
    if text:
        return text, source
    hostname = environ.get("HOSTNAME")
    if hostname:
        return hostname, "HOSTNAME"
    return socket.gethostname(), "the machine's host name"


def _auth_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    token = _parsed(_BY_DEST["auth_token"], args, environ)
    path = _parsed(_BY_DEST["auth_token_file"], args, environ)
    if token and path:
        raise ConfigError(
            "both --auth-token / SIMSI_AUTH_TOKEN and --auth-token-file / SIMSI_AUTH_TOKEN_FILE "
            "are set; set only one of them"
        )
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                token = handle.readline().strip()
        except OSError as exc:
            raise ConfigError(
                f"--auth-token-file / SIMSI_AUTH_TOKEN_FILE {path!r} cannot be read: "
                f"{exc.strerror}; check the path and its permissions"
            ) from None
        if not token:
            raise ConfigError(
                f"--auth-token-file / SIMSI_AUTH_TOKEN_FILE {path!r} is empty; "
                "write the token on its first line"
            )
    return token or None


def load_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> HostConfig:
    """Build the host configuration from parsed flags and environment variables.

    Args:
        args: the ``simsi serve`` arguments (flags not given are ``None``).
        environ: the environment to read ``SIMSI_*`` and ``HOSTNAME`` from
            (default ``os.environ``).

    Raises:
        ConfigError: a value is missing or invalid; the message names the flag and
            variable, the value and the fix.
    """
    env = os.environ if environ is None else environ
    values = {option.dest: _parsed(option, args, env) for option in OPTIONS if option.dest not in
              {"hosts", "host_id", "auth_token", "auth_token_file"}}  # fmt: skip
    app = _require(_BY_DEST["app"], values["app"], "'runtime/app.py:make_interface'")
    hosts = _hosts_pattern(args, env)
    host_id, host_source = _host_id(args, env)
    try:
        placement = Placement(hosts, values["shards"])
    except ConfigError as exc:
        raise ConfigError(f"--hosts / --shards: {exc}") from None
    if host_id not in placement.hosts:
        first_hosts = ", ".join(placement.hosts[:5]) + (", ..." if len(placement.hosts) > 5 else "")
        raise ConfigError(
            f"host id {host_id!r} (from {host_source}) is not one of the hosts of pattern "
            f"{hosts!r} ({first_hosts}); set --host-id / SIMSI_HOST_ID to one of them or fix --hosts"
        )
    listen_host, listen_port = parse_listen(values["listen"])
    peer_url = values["peer_url"]
    if peer_url is not None:
        peer_url = peer_url.rstrip("/")
    elif values["forward"] and len(placement.hosts) > 1:
        raise ConfigError(
            "--peer-url / SIMSI_PEER_URL is missing, so requests for other hosts' shards cannot "
            "be forwarded; set it like 'http://{host}.simsi:8080' or pass --no-forward"
        )
    try:
        alarm_options = AlarmOptions(
            max_attempts=values["alarm_max_attempts"],
            max_concurrent=values["alarm_max_concurrent"],
            handler_timeout=values["alarm_handler_timeout"],
            backoff_base=values["alarm_backoff_base"],
            backoff_cap=values["alarm_backoff_cap"],
        )
    except ConfigError as exc:
        raise ConfigError(f"--alarm-backoff-base / --alarm-backoff-cap: {exc}") from None
    return HostConfig(
        app=app,
        host_id=host_id,
        hosts=hosts,
        shards=values["shards"],
        store_url=values["store"].replace("{host}", host_id),
        listen_host=listen_host,
        listen_port=listen_port,
        peer_url=peer_url,
        forward=values["forward"],
        auth_token=_auth_token(args, env),
        max_body_bytes=values["max_body_bytes"],
        request_timeout=values["request_timeout"],
        forward_timeout=values["forward_timeout"],
        drain_seconds=values["drain_seconds"],
        alarm_options=alarm_options,
    )
