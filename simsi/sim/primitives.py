"""Awaitable primitives of the simulated runtime: tasks, events, locks and ``wait_event``.

:class:`SimTask`, :class:`SimEvent` and :class:`SimLock` are what
:class:`~simsi.sim.runtime.SimRuntime` hands to core coroutines; ``wait_event``
lets simulated components hand their own SimPy events to those coroutines.
They are importable from :mod:`simsi.sim.runtime` as well.

The module also holds the trampoline that drives a task's coroutine as a SimPy
process, and the :class:`Deadline` with which ``SimRuntime.wait_for`` times out
an awaitable that runs in the calling task.
"""

from __future__ import annotations

import logging
import types
from asyncio import CancelledError, InvalidStateError
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import simpy
from simpy.events import PENDING, Event
from simpy.exceptions import Interrupt

from simsi.core.errors import DeadIncarnationError, RuntimeMisuseError

if TYPE_CHECKING:
    from simsi.sim.runtime import SimRuntime

T = TypeVar("T")

logger = logging.getLogger(__name__)


@types.coroutine
def wait_event(event: Event) -> Generator[Event, Any, Any]:
    """Wait for a SimPy ``event`` from a coroutine run by a :class:`SimRuntime`; return its value.

    Simulated components (network, stores) use this to hand their own SimPy
    events to core coroutines. A failed event raises a copy of its exception,
    made by SimPy, whose ``__cause__`` is the original.
    """
    return (yield event)


_PENDING = "pending"
_FINISHED = "finished"
_FAILED = "failed"
_CANCELLED = "cancelled"


class SimTask(Generic[T]):
    """A coroutine spawned on a :class:`SimRuntime`, like an ``asyncio.Task``.

    Awaiting it returns the coroutine's result or raises its exception. If the
    awaiting coroutine is cancelled, the task is cancelled too, as in asyncio.
    """

    __slots__ = (
        "_cancel_requested",
        "_coro",
        "_exception",
        "_name",
        "_process",
        "_result",
        "_retrieved",
        "_runtime",
        "_state",
    )

    _process: simpy.Process

    def __init__(self, runtime: SimRuntime, coro: Coroutine[Any, Any, T], name: str) -> None:
        self._runtime = runtime
        self._coro = coro
        self._name = name
        self._state = _PENDING
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._cancel_requested = False
        self._retrieved = False

    def __repr__(self) -> str:
        return f"<SimTask {self._name!r} {self._state}>"

    def __del__(self) -> None:
        # A dead runtime's tasks ended because the host crashed, which the
        # trace already records, so their errors are not reported again.
        if (
            self._state is _FAILED
            and not self._retrieved
            and self._runtime._alive
            and not isinstance(self._exception, DeadIncarnationError)
        ):
            logger.error(
                "exception of task %r of runtime %r was never retrieved",
                self._name,
                self._runtime.name,
                exc_info=self._exception,
            )

    @property
    def name(self) -> str:
        """The name given to :meth:`SimRuntime.spawn`."""
        return self._name

    def cancel(self) -> bool:
        """Request cancellation: ``CancelledError`` is thrown in at the current or next await.

        A task that has not started yet is cancelled without running. Returns
        ``False`` if the task is done or its runtime was killed.
        """
        if self._state is not _PENDING or not self._runtime._alive:
            return False
        if not self._cancel_requested:
            self._cancel_requested = True
            self._runtime._request_cancel(self)
        return True

    def done(self) -> bool:
        """Return whether the task finished, failed, was cancelled or was dropped."""
        return self._state is not _PENDING

    def cancelled(self) -> bool:
        """Return whether the task ended with ``CancelledError``."""
        return self._state is _CANCELLED

    def result(self) -> T:
        """Return the coroutine's result or raise its exception.

        Raises:
            asyncio.InvalidStateError: the task has not finished.
            asyncio.CancelledError: the task was cancelled.
            DeadIncarnationError: the task was dropped by :meth:`SimRuntime.kill`.
        """
        if self._state is _PENDING:
            raise InvalidStateError(f"task {self._name!r} has not finished; await it first")
        self._retrieved = True
        if self._state is _CANCELLED:
            raise CancelledError(f"task {self._name!r} was cancelled")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]

    def __await__(self) -> Generator[Event, Any, T]:
        if self._state is _PENDING:
            process = self._process
            if process is process.env.active_process:
                raise RuntimeError(f"task {self._name!r} cannot await itself")
            try:
                yield process
            except CancelledError:
                self.cancel()
                raise
        return self.result()

    def _set_result(self, value: T) -> None:
        self._state = _FINISHED
        self._result = value
        self._runtime._finished(self)

    def _set_exception(self, exc: BaseException) -> None:
        self._state = _FAILED
        self._exception = exc
        self._runtime._finished(self)

    def _set_cancelled(self) -> None:
        self._state = _CANCELLED
        self._runtime._finished(self)

    def _set_dropped(self) -> None:
        self._state = _FAILED
        self._retrieved = True
        self._exception = DeadIncarnationError(
            f"task {self._name!r} was dropped because runtime {self._runtime.name!r} was killed"
        )
        self._runtime._finished(self)


class SimEvent:
    """An ``asyncio.Event`` for simulated coroutines; waiters resume in the order they waited."""

    __slots__ = ("_env", "_flag", "_waiters")

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._flag = False
        # One SimPy event shared by everyone waiting since the last set().
        self._waiters: Event | None = None

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._flag:
            return
        self._flag = True
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            waiters.succeed()

    def clear(self) -> None:
        """Reset the flag; coroutines already woken still return from :meth:`wait`."""
        self._flag = False

    def is_set(self) -> bool:
        """Return whether the flag is set."""
        return self._flag

    if TYPE_CHECKING:

        async def wait(self) -> None:
            """Wait until the flag is set; return at once if it already is."""

    else:
        # A generator-based coroutine, like SimRuntime.sleep: one generator per
        # call instead of a coroutine plus the generator of wait_event.
        @types.coroutine
        def wait(self) -> Generator[Event, Any, None]:
            """Wait until the flag is set; return at once if it already is."""
            if self._flag:
                return
            waiters = self._waiters
            if waiters is None:
                waiters = self._waiters = Event(self._env)
            yield waiters


class SimLock:
    """A lock for ``async with`` that hands itself to the longest waiter (FIFO, no barging)."""

    __slots__ = ("_env", "_locked", "_waiters")

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._locked = False
        self._waiters: deque[Event] = deque()

    async def __aenter__(self) -> None:
        if not self._locked:
            self._locked = True
            return
        grant = Event(self._env)
        self._waiters.append(grant)
        try:
            await wait_event(grant)
        except BaseException:
            # Cancelled or dropped while waiting. If the lock was already handed
            # over, pass it on, or else leave the queue.
            if grant.triggered:
                self._release()
            else:
                self._waiters.remove(grant)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def locked(self) -> bool:
        """Return whether some coroutine holds the lock or is being handed it."""
        return self._locked

    def _release(self) -> None:
        if not self._locked:
            raise RuntimeError("lock released while not held; release only from async with")
        if self._waiters:
            self._waiters.popleft().succeed()
        else:
            self._locked = False


# Interrupt cause that the trampoline turns into ``CancelledError``.
_CANCEL = object()


class _DeadlineSignal:
    """The failed event a :class:`Deadline` resumes its process with, in place of a SimPy event.

    SimPy throws a copy of ``_value`` into the process, so the trampoline throws
    ``CancelledError`` into the coroutine, as for any failed event.
    """

    __slots__ = ("_defused",)

    _ok = False
    _value = CancelledError()


_DEADLINE_SIGNAL = _DeadlineSignal()


class Deadline:
    """The timeout of one ``SimRuntime.wait_for``, which awaits its awaitable in the calling task.

    When the timer fires while the deadline is armed, :meth:`expire` marks it
    expired, detaches the process from the event it waits for and resumes it at
    once with ``CancelledError``, as ``Process.interrupt`` does one step later.
    ``wait_for`` then turns that error into ``TimeoutError``.
    """

    __slots__ = ("armed", "expired", "process")

    def __init__(self, process: simpy.Process) -> None:
        self.process = process
        self.armed = True
        self.expired = False

    def expire(self, _event: Event) -> None:
        """Throw ``CancelledError`` into the waiting process; the timer calls this when it fires."""
        process = self.process
        if not self.armed or process._value is not PENDING:
            return
        self.armed = False
        self.expired = True
        process._target.callbacks.remove(process._resume)
        process._resume(_DEADLINE_SIGNAL)  # type: ignore[arg-type]


def _foreign(task: SimTask[Any], obj: object) -> RuntimeMisuseError:
    return RuntimeMisuseError(
        f"task {task.name!r} of runtime {task._runtime.name!r} awaited "
        f"{type(obj).__module__}.{type(obj).__qualname__} {obj!r}, which the simulator "
        "does not drive; await only ctx.sleep() and runtime primitives "
        "(runtime.sleep, event().wait, lock, wait_for, spawned tasks), not asyncio ones"
    )


def _drive(task: SimTask[Any], coro: Coroutine[Any, Any, Any]) -> Generator[Event, Any, None]:
    """Drive ``coro`` as a SimPy process, forwarding event values and exceptions.

    The task records the outcome, and the process succeeds with ``None``, so
    SimPy neither copies nor re-raises task exceptions. The exceptions are
    ``KeyboardInterrupt`` and ``SystemExit``, which fail the process so that they
    stop the simulation.
    """
    runtime = task._runtime
    send = coro.send
    step: Callable[[Any], Any] = send
    arg: Any = None
    event_type = Event
    if task._cancel_requested:
        # Cancelled before it started: the body never runs, as with asyncio.
        task._cancel_requested = False
        step = coro.throw
        arg = CancelledError()
    while True:
        runtime.hops += 1
        try:
            event = step(arg)
        except StopIteration as stop:
            # ``arg`` may be an exception the coroutine caught. Its traceback
            # holds this frame, so keeping it would make a reference cycle that
            # only the cyclic garbage collector could free.
            arg = None
            task._set_result(stop.value)
            return
        except CancelledError:
            arg = None
            task._set_cancelled()
            return
        except (KeyboardInterrupt, SystemExit) as exc:
            task._set_exception(exc)
            raise
        except BaseException as exc:
            arg = None
            task._set_exception(exc)
            return
        if not isinstance(event, event_type):
            step = coro.throw
            arg = _foreign(task, event)
            continue
        step = send
        try:
            arg = yield event
        except GeneratorExit:
            raise  # SimRuntime._drop closes the trampoline after the coroutine.
        except Interrupt as interrupt:
            step = coro.throw
            if interrupt.cause is _CANCEL:
                task._cancel_requested = False
                arg = CancelledError()
            else:
                arg = interrupt
        except BaseException as exc:
            # A failed event: SimPy throws a copy of its exception, chained to the original.
            step = coro.throw
            arg = exc


__all__ = ["SimEvent", "SimLock", "SimTask", "wait_event"]
