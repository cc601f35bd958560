"""Configuration of one production host, from command-line flags and ``SIMSI_*`` variables.

Every option is one row of :data:`simsi.host.options.OPTIONS`: its flag, its
environment variable, its default and its parser. A flag wins over the
variable, and the variable wins over the default. Invalid values raise :class:`~simsi.core.errors.ConfigError`
with a message that names the flag, the variable, the value and the fix, which
``simsi serve`` turns into exit code 2.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simsi.core.alarm_engine import AlarmOptions
from simsi.core.errors import ConfigError
from simsi.core.placement import Placement
from simsi.host.options import OPTIONS, Option, add_option_arguments

__all__ = ["HostConfig", "add_option_arguments", "check_peer_url", "load_config", "parse_listen"]

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
        idle_timeout: seconds an unused instance is kept, or ``None`` to keep it.
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
    idle_timeout: float | None = None
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
    if token is not None and not token.strip():
        raise ConfigError(
            "--auth-token / SIMSI_AUTH_TOKEN is set but empty, which would turn authentication "
            "off; set a token, or unset the option to run without one"
        )
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
    special = {"hosts", "host_id", "auth_token", "auth_token_file"}
    values = {
        option.dest: _parsed(option, args, env) for option in OPTIONS if option.dest not in special
    }
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
        idle_timeout=values["idle_timeout"],
        forward_timeout=values["forward_timeout"],
        drain_seconds=values["drain_seconds"],
        alarm_options=alarm_options,
    )
