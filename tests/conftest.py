"""Shared fixtures: ``runtime_harness`` runs one async test body on both runtimes.

Write the body once against the :class:`~simsi.core.runtime.Runtime` port and
let the fixture run it on the production ``AsyncioRuntime`` and on the
simulator's ``SimRuntime``::

    def test_sleep_advances_now(runtime_harness):
        async def body(rt):
            before = rt.now()
            await rt.sleep(0.01)
            return rt.now() - before

        assert runtime_harness.run(body) >= 0.009

Each test gets a fresh harness and runtime. ``run`` returns the body's result or
raises its exception. On ``"asyncio"`` the body runs under ``asyncio.run`` and
sleeps take real time, so keep them to hundredths of a second. On ``"sim"`` the
body is spawned on the runtime and the SimPy environment is stepped until the
body finishes, which takes no real time for sleeps. The sim run fails if the
body waits while no event is scheduled (a deadlock) or after ``SIM_TIME_LIMIT``
true seconds.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import simpy

from simsi.core.runtime import Runtime
from simsi.host.runtime import AsyncioRuntime
from simsi.sim.clock import HostClock
from simsi.sim.runtime import SimRuntime

T = TypeVar("T")

HARNESS_SEED = 1234
"""Seed of the harness runtime's random source."""

SIM_TIME_LIMIT = 1_000_000.0
"""True seconds a sim test body may run before the harness fails it."""

ASYNCIO_TIME_LIMIT = 60.0
"""Wall-clock seconds an asyncio test body may run before the harness fails it."""


class AsyncioHarness:
    """Test-body runner on an :class:`AsyncioRuntime` under ``asyncio.run``."""

    kind = "asyncio"

    def __init__(self) -> None:
        self.runtime: Runtime = AsyncioRuntime(seed=HARNESS_SEED)
        self.env: simpy.Environment | None = None

    def run(self, body: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``body(runtime)`` to completion and return its result."""

        async def main() -> T:
            return await asyncio.wait_for(body(self.runtime), ASYNCIO_TIME_LIMIT)

        return asyncio.run(main())


class SimHarness:
    """Test-body runner on a :class:`SimRuntime` that steps a SimPy environment."""

    kind = "sim"

    def __init__(self) -> None:
        self.env = simpy.Environment()
        self.clock = HostClock()
        self.runtime = SimRuntime(self.env, self.clock, random.Random(HARNESS_SEED), "test-host")

    def run(self, body: Callable[[Any], Awaitable[T]]) -> T:
        """Spawn ``body(runtime)``, step the environment until it finishes, return its result."""

        async def main() -> T:
            return await body(self.runtime)

        task = self.runtime.spawn(main(), name="test-body")
        deadline = self.env.now + SIM_TIME_LIMIT
        while not task.done():
            next_time = self.env.peek()
            if next_time == math.inf:
                raise AssertionError(
                    f"test body is still waiting at true time {self.env.now} "
                    "but no event is scheduled: it is deadlocked"
                )
            if next_time > deadline:
                raise AssertionError(
                    f"test body did not finish within {SIM_TIME_LIMIT} true seconds"
                )
            self.env.step()
        return task.result()


@pytest.fixture(params=["asyncio", "sim"])
def runtime_harness(request: pytest.FixtureRequest) -> AsyncioHarness | SimHarness:
    """A harness with ``.runtime``, ``.kind`` (``"asyncio"`` or ``"sim"``) and ``.run(body)``.

    ``.env`` is the SimPy environment on ``"sim"`` and ``None`` on ``"asyncio"``.
    """
    if request.param == "asyncio":
        return AsyncioHarness()
    return SimHarness()
