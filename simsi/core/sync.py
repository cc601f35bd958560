"""Small coordination primitives built only from the Runtime's events."""

from __future__ import annotations

from collections import deque

from simsi.core.runtime import Event, Runtime


class Gate:
    """A counting semaphore: at most ``limit`` holders at once, granted in request order.

    A release hands its place straight to the longest waiter, so each release wakes
    one coroutine rather than every waiter.
    """

    def __init__(self, runtime: Runtime, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a gate needs a limit of at least 1, got {limit}")
        self._runtime = runtime
        self._free = limit
        self._limit = limit
        self._waiters: deque[Event] = deque()
        self._peak = 0

    @property
    def in_use(self) -> int:
        """How many holders are inside now."""
        return self._limit - self._free

    @property
    def peak(self) -> int:
        """The maximum number of holders inside at once."""
        return self._peak

    @property
    def waiting(self) -> int:
        """How many coroutines wait for a place."""
        return len(self._waiters)

    async def acquire(self) -> None:
        """Wait for a free place and take it."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self._peak = max(self._peak, self.in_use)
            return
        granted = self._runtime.event()
        self._waiters.append(granted)
        try:
            await granted.wait()
        except BaseException:
            if granted.is_set():
                # The place was handed over as the wait was cancelled: pass it on.
                self.release()
            else:
                self._waiters.remove(granted)
            raise

    def release(self) -> None:
        """Give a place back, handing it to the longest waiter if there is one."""
        if self._waiters:
            self._waiters.popleft().set()
            return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class WorkCounter:
    """Counts running background tasks so a close can wait for all of them."""

    def __init__(self, runtime: Runtime) -> None:
        self._count = 0
        self._idle = runtime.event()
        self._idle.set()

    @property
    def count(self) -> int:
        """Tasks started and not yet finished."""
        return self._count

    def enter(self) -> None:
        """Count one more running task."""
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        """Count one task as finished."""
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no counted task is running."""
        while self._count:
            await self._idle.wait()
