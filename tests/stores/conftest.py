"""Server fixtures for the PostgreSQL and Redis store tests.

The servers come from SIMSI_TEST_POSTGRES_URL and SIMSI_TEST_REDIS_URL. A test
that needs an unreachable server is skipped, except when the CI variable is set:
then it fails, so a CI run cannot pass without testing those stores.
"""

from __future__ import annotations

import os

import psycopg
import pytest
import redis

POSTGRES_URL = os.environ.get(
    "SIMSI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SIMSI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(server: str, variable: str, url: str, exc: Exception) -> None:
    message = f"{server} at {url} is unreachable ({exc}); start it or set {variable}"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so this test must not be skipped: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Return the test PostgreSQL URL, or skip (fail on CI) when the server is unreachable."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", "SIMSI_TEST_POSTGRES_URL", POSTGRES_URL, exc)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the test Redis URL, or skip (fail on CI) when the server is unreachable."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        _unavailable("Redis", "SIMSI_TEST_REDIS_URL", REDIS_URL, exc)
    return REDIS_URL
