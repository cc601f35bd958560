"""Small coordination primitives built only from the Runtime's events."""

from __future__ import annotations

from simsi.core.runtime import Runtime


class Gate:
    """A counting semaphore: at most ``limit`` holders at once, woken in no fixed order."""

    def __init__(self, runtime: Runtime, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a gate needs a limit of at least 1, got {limit}")
        self._free = limit
        self._limit = limit
        self._changed = runtime.event()
        self._peak = 0

    @property
    def in_use(self) -> int:
        """How many holders are inside now."""
        return self._limit - self._free

    @property
    def peak(self) -> int:
        """The most holders that were ever inside at once."""
        return self._peak

    async def acquire(self) -> None:
        """Wait for a free place and take it."""
        while self._free == 0:
            self._changed.clear()
            await self._changed.wait()
        self._free -= 1
        in_use = self._limit - self._free
        if in_use > self._peak:
            self._peak = in_use

    def release(self) -> None:
        """Give a place back."""
        self._free += 1
        self._changed.set()

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
