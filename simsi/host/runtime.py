"""The production Runtime: the wall clock and asyncio primitives."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from simsi.core.runtime import Event, Lock, Task

T = TypeVar("T")


class AsyncioRuntime:
    """A :class:`~simsi.core.runtime.Runtime` on the running asyncio loop and ``time.time()``.

    Args:
        seed: seeds the runtime's random source (alarm retry jitter); ``None``
            seeds from the operating system.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the asyncio loop."""
        await asyncio.sleep(max(0.0, seconds))

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> Task[T]:
        """Start ``coro`` as an asyncio task, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def event(self) -> Event:
        """Return a new ``asyncio.Event``."""
        return asyncio.Event()

    def lock(self) -> Lock:
        """Return a new ``asyncio.Lock``, which grants waiters in request order."""
        return _AsyncioLock()

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw`` in the calling task; raise ``TimeoutError`` after ``timeout`` seconds.

        On Python 3.11 ``asyncio.wait_for`` wraps the awaitable in a new task, and the
        manager calls this for every request that has a timeout. ``asyncio.timeout``
        cancels the awaitable at the deadline without creating a task; Python 3.12
        implements ``wait_for`` the same way.
        """
        async with asyncio.timeout(timeout):
            return await aw

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in the default thread pool."""
        return await asyncio.to_thread(fn, *args)

    def random(self) -> float:
        """Return a float in ``[0, 1)``."""
        return self._random.random()


class _AsyncioLock:
    """``asyncio.Lock`` behind the :class:`~simsi.core.runtime.Lock` protocol."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()
