"""Configuration from flags and SIMSI_* variables, and `simsi serve` exit codes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from simsi.core.errors import ConfigError
from simsi.host.app_loader import load_factory
from simsi.host.config import add_option_arguments, load_config
from simsi.host.options import parse_size
from tests.host.helpers import APP_FILE, EXAMPLE_APP, REPO

BASE_ENV = {"SIMSI_APP": EXAMPLE_APP, "SIMSI_HOSTS": "host-{0..2}", "SIMSI_HOST_ID": "host-1"}
PEERS = {"SIMSI_PEER_URL": "http://{host}.simsi:8080"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_option_arguments(parser)
    return parser.parse_args(argv)


def config_error(argv: list[str], env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(parse(argv), env)
    return str(caught.value)


def test_environment_sets_every_value(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        **PEERS,
        "SIMSI_SHARDS": "30",
        "SIMSI_STORE": f"sqlite:///{tmp_path}/alarms-{{host}}.db",
        "SIMSI_LISTEN": "127.0.0.1:9000",
        "SIMSI_FORWARD": "false",
        "SIMSI_AUTH_TOKEN": "tok",
        "SIMSI_MAX_BODY_BYTES": "64KiB",
        "SIMSI_REQUEST_TIMEOUT": "0",
        "SIMSI_FORWARD_TIMEOUT": "7",
        "SIMSI_DRAIN_SECONDS": "12.5",
        "SIMSI_ALARM_MAX_ATTEMPTS": "9",
        "SIMSI_ALARM_MAX_CONCURRENT": "3",
        "SIMSI_ALARM_HANDLER_TIMEOUT": "none",
        "SIMSI_ALARM_BACKOFF_BASE": "0.5",
        "SIMSI_ALARM_BACKOFF_CAP": "10",
    }
    config = load_config(parse([]), env)

    assert config.app == EXAMPLE_APP
    assert config.host_id == "host-1"
    assert config.shards == 30
    assert config.store_url == f"sqlite:///{tmp_path}/alarms-host-1.db"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9000)
    assert config.forward is False
    assert config.auth_token == "tok"
    assert config.max_body_bytes == 64 * 1024
    assert config.request_timeout is None
    assert config.forward_timeout == 7
    assert config.drain_seconds == 12.5
    assert config.alarm_options.max_attempts == 9
    assert config.alarm_options.max_concurrent == 3
    assert config.alarm_options.handler_timeout is None
    assert config.alarm_options.backoff_base == 0.5
    assert config.alarm_options.backoff_cap == 10
    assert "tok" not in repr(config)


def test_defaults() -> None:
    config = load_config(parse([]), {**BASE_ENV, **PEERS})
    assert config.shards == 1024
    assert config.store_url == "sqlite:///simsi-host-1.db"
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 8080)
    assert config.forward is True
    assert config.auth_token is None
    assert config.max_body_bytes == 1024 * 1024
    assert config.request_timeout == 30
    assert config.drain_seconds == 25
    assert config.peer_base("host-2") == "http://host-2.simsi:8080"


def test_flag_wins_over_environment() -> None:
    argv = ["--host-id", "host-2", "--shards", "12", "--forward", "--listen", "[::1]:81"]
    env = {**BASE_ENV, **PEERS, "SIMSI_SHARDS": "30", "SIMSI_FORWARD": "false"}
    config = load_config(parse(argv), env)
    assert config.host_id == "host-2"
    assert config.shards == 12
    assert config.forward is True
    assert (config.listen_host, config.listen_port) == ("::1", 81)


def test_host_id_from_hostname() -> None:
    env = {"SIMSI_APP": EXAMPLE_APP, "SIMSI_HOSTS": "simsi-{0..2}", "HOSTNAME": "simsi-2"}
    config = load_config(parse(["--no-forward"]), env)
    assert config.host_id == "simsi-2"


def test_hostname_outside_pattern_names_source() -> None:
    env = {"SIMSI_APP": EXAMPLE_APP, "SIMSI_HOSTS": "simsi-{0..2}", "HOSTNAME": "laptop"}
    message = config_error(["--no-forward"], env)
    assert "'laptop' (from HOSTNAME)" in message
    assert "--host-id / SIMSI_HOST_ID" in message


def test_missing_app_names_flag_and_variable() -> None:
    message = config_error([], {"SIMSI_HOSTS": "h", "SIMSI_HOST_ID": "h"})
    assert "--app / SIMSI_APP is missing" in message


def test_missing_hosts_names_flag() -> None:
    message = config_error(["--app", EXAMPLE_APP, "--host-id", "h"], {})
    assert "--hosts / SIMSI_HOSTS is missing" in message


def test_shell_expanded_hosts_gets_hint() -> None:
    argv = ["--app", EXAMPLE_APP, "--hosts", "host-0", "host-1", "host-2", "--host-id", "host-0"]
    message = config_error(argv, {})
    assert "Quote it" in message


def test_bad_values_name_the_value() -> None:
    cases = {
        "SIMSI_SHARDS": ("zero", "--shards / SIMSI_SHARDS is invalid: 'zero'"),
        "SIMSI_MAX_BODY_BYTES": ("lots", "--max-body-bytes / SIMSI_MAX_BODY_BYTES is invalid"),
        "SIMSI_DRAIN_SECONDS": ("-1", "--drain-seconds / SIMSI_DRAIN_SECONDS is invalid: '-1'"),
        "SIMSI_FORWARD": ("maybe", "expected true or false"),
        "SIMSI_LISTEN": ("localhost", "--listen / SIMSI_LISTEN 'localhost' is invalid"),
        "SIMSI_PEER_URL": ("ftp://{host}", "must start with http:// or https://"),
    }
    for variable, (value, expected) in cases.items():
        message = config_error([], {**BASE_ENV, **PEERS, variable: value})
        assert expected in message, (variable, message)


def test_shards_fewer_than_hosts_rejected() -> None:
    message = config_error([], {**BASE_ENV, **PEERS, "SIMSI_SHARDS": "2"})
    assert "--hosts / --shards" in message
    assert "fewer than the 3 hosts" in message


def test_peer_url_required_for_forwarding() -> None:
    message = config_error([], BASE_ENV)
    assert "--peer-url / SIMSI_PEER_URL is missing" in message
    assert "--no-forward" in message


def test_peer_url_without_placeholder_rejected() -> None:
    message = config_error([], {**BASE_ENV, "SIMSI_PEER_URL": "http://simsi:8080"})
    assert "no '{host}' placeholder" in message


def test_token_is_hidden_in_errors() -> None:
    env = {**BASE_ENV, **PEERS, "SIMSI_AUTH_TOKEN": "Zq9secret", "SIMSI_AUTH_TOKEN_FILE": "/x"}
    message = config_error([], env)
    assert "set only one of them" in message
    assert "Zq9secret" not in message


def test_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    config = load_config(parse([]), {**BASE_ENV, **PEERS, "SIMSI_AUTH_TOKEN_FILE": str(token_file)})
    empty_message = config_error([], {**BASE_ENV, **PEERS, "SIMSI_AUTH_TOKEN_FILE": str(empty)})
    missing_message = config_error(
        [], {**BASE_ENV, **PEERS, "SIMSI_AUTH_TOKEN_FILE": str(tmp_path / "nope")}
    )
    assert config.auth_token == "from-file"
    assert "is empty" in empty_message
    assert "cannot be read" in missing_message


def test_parse_size_units() -> None:
    assert parse_size("10") == 10
    assert parse_size("2k") == 2048
    assert parse_size("1MiB") == 1024 * 1024
    assert parse_size("1MB") == 1_000_000
    with pytest.raises(ValueError):
        parse_size("0")
    with pytest.raises(ValueError):
        parse_size("1.5MiB")


def test_load_factory_from_file_and_module() -> None:
    factory = load_factory(f"{APP_FILE}:make_interface")
    counter = load_factory("simsi.core.interface:StableInterface")
    assert type(factory("reminder:x")).__name__ == "Reminder"
    assert type(factory("x")).__name__ == "Counter"
    assert counter("x").instance_id == "x"


def test_load_factory_errors() -> None:
    cases = {
        "no_colon": "write 'package.module:Class'",
        "simsi_missing_module:Thing": "module 'simsi_missing_module' was not found",
        f"{APP_FILE}:Missing": "has no attribute 'Missing'",
        f"{APP_FILE}:FIRED_LOG_ENV": "is a str, not a class or function",
        "/nowhere/app.py:Thing": "file '/nowhere/app.py' was not found",
    }
    for target, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            load_factory(target)
        assert expected in str(caught.value), target


def test_serve_exits_2_on_invalid_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simsi.cli", "serve", "--hosts", "host-{0..1}", "--host-id", "x"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "simsi serve: invalid input: --app / SIMSI_APP is missing" in result.stderr


def test_serve_help_lists_variables() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simsi.cli", "serve", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for variable in ("SIMSI_APP", "SIMSI_PEER_URL", "SIMSI_AUTH_TOKEN", "SIMSI_DRAIN_SECONDS"):
        assert variable in result.stdout


def test_serve_exits_2_on_invalid_store_url() -> None:
    command = [
        *("serve", "--app", EXAMPLE_APP, "--hosts", "h", "--host-id", "h"),
        *("--store", "bogus://nowhere", "--listen", "127.0.0.1:0"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "simsi.cli", *command],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--store / SIMSI_STORE: invalid store URL 'bogus://nowhere'" in result.stderr


def test_idle_timeout_from_flag_and_variable() -> None:
    assert load_config(parse([]), {**BASE_ENV, **PEERS}).idle_timeout is None
    from_flag = load_config(parse(["--idle-timeout", "90"]), {**BASE_ENV, **PEERS})
    assert from_flag.idle_timeout == 90
    from_env = load_config(parse([]), {**BASE_ENV, **PEERS, "SIMSI_IDLE_TIMEOUT": "2.5"})
    assert from_env.idle_timeout == 2.5
    message = config_error(["--idle-timeout", "soon"], {**BASE_ENV, **PEERS})
    assert "'soon'" in message


def test_empty_auth_token_rejected() -> None:
    message = config_error(["--auth-token", ""], {**BASE_ENV, **PEERS})
    assert "set but empty" in message
    message = config_error([], {**BASE_ENV, **PEERS, "SIMSI_AUTH_TOKEN": "  "})
    assert "set but empty" in message
