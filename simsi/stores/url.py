"""Build an alarm store from a URL, the form used by ``simsi serve --store``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from simsi.core.alarms import AlarmStore
from simsi.core.errors import ConfigError

#: The URL forms :func:`open_store` accepts, shown in its errors.
ACCEPTED_FORMS = (
    "memory://",
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory: "
    "(options: synchronous=FULL|NORMAL|EXTRA, busy_timeout=seconds)",
    "postgresql://user[:password]@host[:port]/dbname (also postgres://; option: schema=name; "
    "other options go to libpq)",
    "redis://[:password@]host[:port][/db] (also rediss:// and unix://; options: prefix=name, "
    "require_fsync=true|false, timeout=seconds, max_connections=n, db=n)",
    "fdb://[cluster-file] (fdb:// uses the default cluster file, fdb:///etc/foundationdb/fdb.cluster "
    "names one; options: prefix=name, timeout=seconds)",
)


def open_store(url: str) -> AlarmStore:
    """Return the alarm store a URL names; it connects on its first call.

    Args:
        url: one of the forms in :data:`ACCEPTED_FORMS`, such as ``sqlite:///alarms.db``.

    Raises:
        ConfigError: the URL is not one of the accepted forms or has an invalid option.
    """
    if not isinstance(url, str):
        raise _invalid(repr(url), f"expected a string, got {type(url).__name__}")
    try:
        return _open(url)
    except _InvalidStoreURL:
        raise
    except ConfigError as exc:
        # A store rejected an option value; name the URL it came from.
        raise _invalid(url, str(exc)) from exc


def _open(url: str) -> AlarmStore:
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return _open_memory(url, parts.netloc + parts.path, options)
    if scheme == "sqlite":
        return _open_sqlite(url, options)
    if scheme in ("postgresql", "postgres"):
        return _open_postgres(url, options)
    if scheme in ("redis", "rediss", "unix"):
        return _open_redis(url, options)
    if scheme == "fdb":
        return _open_fdb(url, options)
    raise _invalid(url, f"unknown scheme {parts.scheme!r}" if parts.scheme else "no scheme")


def _open_memory(url: str, rest: str, options: dict[str, str]) -> AlarmStore:
    from simsi.stores.memory import MemoryAlarmStore

    if rest:
        raise _invalid(url, f"memory:// takes no host or path, got {rest!r}")
    _check_options(url, options, set())
    return MemoryAlarmStore()


def _open_sqlite(url: str, options: dict[str, str]) -> AlarmStore:
    from simsi.stores.sqlite import SQLiteAlarmStore

    head = url.split("?", 1)[0]
    if not head.lower().startswith("sqlite:///") or len(head) == len("sqlite:///"):
        raise _invalid(url, "a SQLite URL needs three slashes and a path, like sqlite:///alarms.db")
    _check_options(url, options, {"synchronous", "busy_timeout"})
    path = head[len("sqlite:///") :]
    busy_timeout = _number(url, options, "busy_timeout", 5.0)
    return SQLiteAlarmStore(
        path, synchronous=options.get("synchronous", "FULL"), busy_timeout=busy_timeout
    )


def _open_postgres(url: str, options: dict[str, str]) -> AlarmStore:
    from simsi.stores.postgres import PostgresAlarmStore

    schema = options.pop("schema", "simsi")
    return PostgresAlarmStore(_without_query_options(url, options), schema=schema)


def _open_redis(url: str, options: dict[str, str]) -> AlarmStore:
    from simsi.stores.redis import RedisAlarmStore

    _check_options(url, options, {"prefix", "require_fsync", "timeout", "max_connections", "db"})
    prefix = options.pop("prefix", "simsi")
    flag = options.pop("require_fsync", "false").lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise _invalid(url, f"require_fsync must be true or false, got {flag!r}")
    timeout = _number(url, options, "timeout", 10.0)
    options.pop("timeout", None)
    max_connections = options.pop("max_connections", "20")
    if not max_connections.isdigit():
        raise _invalid(url, f"max_connections must be a positive integer, got {max_connections!r}")
    return RedisAlarmStore(
        _without_query_options(url, options),
        prefix=prefix,
        timeout=timeout,
        max_connections=int(max_connections),
        require_fsync=flag in ("true", "1", "yes"),
    )


def _open_fdb(url: str, options: dict[str, str]) -> AlarmStore:
    from simsi.stores.foundationdb import FoundationDBAlarmStore

    _check_options(url, options, {"prefix", "timeout"})
    parts = urlsplit(url)
    cluster_file = (parts.netloc + parts.path) or None
    timeout = _number(url, options, "timeout", 10.0)
    return FoundationDBAlarmStore.open_cluster(
        cluster_file, prefix=options.get("prefix", "simsi"), timeout=timeout
    )


def _check_options(url: str, options: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise _invalid(url, f"unknown option {unknown[0]!r} (accepted: {accepted})")


def _number(url: str, options: dict[str, str], name: str, default: float) -> float:
    if name not in options:
        return default
    try:
        return float(options[name])
    except ValueError:
        raise _invalid(url, f"{name} must be a number of seconds, got {options[name]!r}") from None


def _without_query_options(url: str, remaining: dict[str, str]) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode(remaining)))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class _InvalidStoreURL(ConfigError):
    """A store URL is invalid; the message lists the accepted forms."""


def _invalid(url: str, problem: str) -> ConfigError:
    forms = "\n  ".join(ACCEPTED_FORMS)
    return _InvalidStoreURL(
        f"invalid store URL {_redact(url)!r}: {problem}. Accepted forms:\n  {forms}"
    )
