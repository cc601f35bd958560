"""The simsi pytest plugin, registered through the ``pytest11`` entry point.

It adds ``--simsi-seed``, a ``simsi_seed`` fixture and a ``simsi_cluster``
fixture that builds :class:`~simsi.testing.cluster.SimCluster` objects with that
seed. A test that uses either fixture and fails gets the seed in its report, so
the failure can be replayed with ``pytest --simsi-seed N``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import Any

import pytest

_SEED_KEY = pytest.StashKey[int]()
DEFAULT_SEED = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--simsi-seed``."""
    group = parser.getgroup("simsi")
    group.addoption(
        "--simsi-seed",
        type=int,
        default=None,
        help="seed for simsi simulations in tests (default: $SIMSI_SEED or 0)",
    )


def _configured_seed(config: pytest.Config) -> int:
    option = config.getoption("--simsi-seed", default=None)
    if option is not None:
        return int(option)
    env = os.environ.get("SIMSI_SEED")
    if env:
        try:
            return int(env)
        except ValueError as exc:
            raise pytest.UsageError(f"SIMSI_SEED must be an integer, got {env!r}") from exc
    return DEFAULT_SEED


@pytest.fixture
def simsi_seed(request: pytest.FixtureRequest) -> int:
    """The seed for this test's simulations; printed in the report if the test fails."""
    seed = _configured_seed(request.config)
    request.node.stash[_SEED_KEY] = seed
    return seed


@pytest.fixture
def simsi_cluster(simsi_seed: int) -> Callable[..., Any]:
    """A factory ``simsi_cluster(interface, **options)`` of simulated clusters seeded with ``simsi_seed``."""
    from simsi.testing.cluster import SimCluster

    def build(interface: Any, **options: Any) -> SimCluster:
        options.setdefault("seed", simsi_seed)
        return SimCluster(interface, **options)

    return build


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[Any, Any, None]:
    """Attach the simulation seed to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    seed = item.stash.get(_SEED_KEY, None)
    if seed is not None and report.failed:
        report.sections.append(
            (
                "simsi",
                f"simulation seed {seed}; replay with: pytest {item.nodeid} --simsi-seed {seed}",
            )
        )
