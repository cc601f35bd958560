"""The Runtime port: everything the core needs from the outside world.

Core code is ordinary ``async def`` code that awaits only objects its
:class:`Runtime` hands out. Production hosts use ``simsi.host.AsyncioRuntime``
(wall clock, asyncio tasks); the simulator uses ``simsi.sim.SimRuntime``
(a host's skewed simulated clock, SimPy processes). Nothing in ``simsi.core``
reads the wall clock, the environment or global randomness.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["CancelledError", "Event", "Lock", "Runtime", "Task"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Task(Protocol[T_co]):
    """A running coroutine started with :meth:`Runtime.spawn`.

    Awaiting a task returns the coroutine's result or raises its exception.
    """

    def cancel(self) -> Any:
        """Ask the task to stop; a pending ``await`` inside it raises ``CancelledError``."""

    def done(self) -> bool:
        """Return whether the task has finished, failed or been cancelled."""

    def __await__(self) -> Any: ...


class Event(Protocol):
    """A one-shot flag coroutines can wait for, like ``asyncio.Event``."""

    def set(self) -> None:
        """Set the flag and wake every waiter."""

    def clear(self) -> None:
        """Reset the flag so later waiters block again."""

    def is_set(self) -> bool:
        """Return whether the flag is set."""

    async def wait(self) -> Any:
        """Wait until the flag is set."""


class Lock(Protocol):
    """A mutual-exclusion lock granted in request order, used with ``async with``."""

    async def __aenter__(self) -> None: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def locked(self) -> bool:
        """Return whether some coroutine holds the lock."""


class Runtime(Protocol):
    """Clock, scheduling and randomness for one host (incarnation).

    ``now()`` is seconds since the Unix epoch as the host's clock reads it, which
    in the simulator may be offset, drifting or stepped relative to true time.
    """

    def now(self) -> float:
        """Return the host clock's current time in seconds since the Unix epoch."""

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling coroutine for ``seconds`` of this host's clock."""

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> Task[T]:
        """Start ``coro`` concurrently and return its task; ``name`` appears in errors and traces."""

    def event(self) -> Event:
        """Return a new, unset :class:`Event`."""

    def lock(self) -> Lock:
        """Return a new, unlocked :class:`Lock`."""

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw`` and raise ``TimeoutError`` if it takes longer than ``timeout`` seconds.

        At the deadline ``aw`` is cancelled with :class:`CancelledError` (the one
        cancellation type of both runtimes), and the ``TimeoutError`` raised has that
        ``CancelledError`` as its ``__cause__``, which tells it apart from a
        ``TimeoutError`` that ``aw`` raised itself.
        """

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` off the event loop and return its result."""

    def random(self) -> float:
        """Return a float in ``[0, 1)`` from this runtime's random source."""
