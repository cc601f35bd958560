"""The simulator's Runtime: core coroutines driven as SimPy processes on a host clock.

Each :class:`SimRuntime` is one simulated host incarnation. Its coroutines run as
SimPy processes through a trampoline generator: the coroutine yields SimPy
events (only through this runtime's awaitables and :func:`wait_event`), the
trampoline yields them to SimPy and sends back their values. A coroutine that
yields anything else, such as the ``None`` of ``asyncio.sleep(0)`` or an asyncio
future, gets a :class:`~simsi.core.errors.RuntimeMisuseError` thrown in at that
``await``. NOTE: ``asyncio.sleep(s)`` with ``s > 0`` fails earlier, inside asyncio,
with ``RuntimeError: no running event loop``, which the trampoline never sees.

Ordering is SimPy's: events due at the same true time run in the order they were
scheduled, so the same program interleaves the same way in every run. Nothing
here reads the wall clock or the global random generator.

Killing a runtime (a host crash) drops its coroutines; see :meth:`SimRuntime.kill`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import types
from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Coroutine, Generator
from heapq import heappush
from random import Random
from typing import TYPE_CHECKING, Any, TypeVar

import simpy
from simpy.events import NORMAL, PENDING, URGENT, Event, Initialize, Timeout

from simsi.core.errors import ConfigError, DeadIncarnationError
from simsi.core.runtime import Runtime
from simsi.sim.clock import HostClock
from simsi.sim.primitives import (
    _CANCEL,
    Deadline,
    SimEvent,
    SimLock,
    SimTask,
    _drive,
    wait_event,
)

T = TypeVar("T")

logger = logging.getLogger(__name__)


class _Sleep(Timeout):
    """The event of one :meth:`SimRuntime.sleep`, seen only by the trampoline and SimPy.

    ``_sleep`` builds it with ``object.__new__`` and sets only ``callbacks``,
    because calling ``Timeout.__init__`` and ``env.schedule`` on every hop
    measurably slows the loop in ``bench/bench_trampoline.py``. It has no ``env``.
    """

    _ok = True
    _value = None

    def _desc(self) -> str:
        return "Sleep()"


_new_object = object.__new__


@types.coroutine
def _sleep(runtime: SimRuntime, seconds: float) -> Generator[Event, Any, None]:
    env = runtime._env
    delay = seconds / runtime._clock._rate if seconds > 0 else 0.0
    event = _new_object(_Sleep)
    event.callbacks = []
    # The entry env.schedule(event, NORMAL, delay) would push, so ties keep
    # SimPy's insertion order. NOTE: relies on Environment._queue, _now and
    # _eid, which simpy 4.1 has.
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))
    yield event


class SimRuntime:
    """A :class:`~simsi.core.runtime.Runtime` for one simulated host incarnation.

    Args:
        env: the SimPy environment, whose ``now`` is true time in seconds.
        clock: this host's clock, which ``now()`` reads at ``env.now``.
        rng: the incarnation's random source, used only by :meth:`random`.
        name: names the incarnation in task names, errors and logs, e.g. ``"host-0#2"``.

    Attributes:
        hops: number of coroutine resumptions (sends and throws) so far, for benchmarks.
    """

    __slots__ = ("_alive", "_clock", "_env", "_name", "_rng", "_tasks", "hops")

    def __init__(self, env: simpy.Environment, clock: HostClock, rng: Random, name: str) -> None:
        self._env = env
        self._clock = clock
        self._rng = rng
        self._name = name
        self._alive = True
        # Pending tasks in spawn order, the order in which kill() drops them.
        self._tasks: dict[SimTask[Any], None] = {}
        self.hops = 0

    def __repr__(self) -> str:
        state = "alive" if self._alive else "dead"
        return f"<SimRuntime {self._name!r} {state}>"

    @property
    def env(self) -> simpy.Environment:
        """The SimPy environment this runtime schedules on."""
        return self._env

    @property
    def clock(self) -> HostClock:
        """This host's clock, to change for offset, drift or step faults."""
        return self._clock

    @property
    def name(self) -> str:
        """The incarnation name given at construction."""
        return self._name

    @property
    def alive(self) -> bool:
        """Whether the incarnation is alive, i.e. :meth:`kill` has not been called."""
        return self._alive

    # -- Runtime protocol ------------------------------------------------------------------

    def now(self) -> float:
        """Return the host clock's reading at the current true time."""
        return self._clock.read(self._env.now)

    if TYPE_CHECKING:

        async def sleep(self, seconds: float) -> None:
            """Suspend for ``seconds`` of host-clock time (``seconds / rate`` true seconds)."""

    else:
        # A generator-based coroutine creates one generator per call instead of a
        # coroutine plus an awaitable, which keeps a hop near a bare SimPy timeout.
        # It supports send, throw and close like a native coroutine, so it can
        # be spawned and passed to wait_for, but it has no __await__ method.
        sleep = _sleep

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> SimTask[T]:
        """Start ``coro`` as a SimPy process and return its task.

        The coroutine starts after the caller's current step and before events
        already due at the same true time. Tasks start in spawn order.

        Raises:
            DeadIncarnationError: the runtime has been killed.
            TypeError: ``coro`` is not a coroutine object.
        """
        if not hasattr(coro, "send") or not hasattr(coro, "throw"):
            raise TypeError(
                f"spawn() of task {name!r} expects a coroutine object, got {coro!r}; "
                "call the coroutine function first, e.g. spawn(work(), name)"
            )
        if not self._alive:
            coro.close()
            self.check_alive(f"spawning task {name!r}")
        task: SimTask[T] = SimTask(self, coro, name)
        task._process = simpy.Process(self._env, _drive(task, coro))
        self._tasks[task] = None
        return task

    def event(self) -> SimEvent:
        """Return a new, unset event."""
        return SimEvent(self._env)

    def lock(self) -> SimLock:
        """Return a new lock that grants waiters in request order."""
        return SimLock(self._env)

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw`` for at most ``timeout`` host seconds.

        ``aw`` runs in the calling task. On timeout ``CancelledError`` is thrown
        in at its current ``await``, and once it has finished, ``TimeoutError`` is
        raised. An ``aw`` that catches the cancellation and returns gives its
        result instead, as with ``asyncio.wait_for`` on Python 3.11. A
        :class:`SimTask` is cancelled on timeout and awaited until it finished.
        Cancelling the caller cancels ``aw`` too.

        Raises:
            TimeoutError: ``aw`` did not finish within ``timeout`` seconds.
            ConfigError: ``timeout`` is NaN.

        ``timeout=None`` and ``timeout=math.inf`` both wait without limit.
        """
        if timeout is None or timeout == math.inf:
            # No timer, because one due at infinite true time would let env.run()
            # advance the clock to infinity.
            return await aw
        if timeout != timeout:
            raise ConfigError(f"invalid timeout {timeout!r}: expected seconds or None")
        delay = self._clock.true_duration(timeout) if timeout > 0 else 0.0
        process = self._env.active_process
        if (
            isinstance(aw, SimTask)
            or process is None
            or getattr(process._generator, "gi_code", None) is not _DRIVE_CODE
        ):
            # Not called from a trampoline, the only driver known to pass the
            # deadline's CancelledError on to the awaiting coroutine.
            return await self._wait_for_task(self._as_task(aw), timeout, delay)
        deadline = Deadline(process)
        expire = deadline.expire
        timer = Timeout(self._env, delay)
        timer.callbacks.append(expire)
        try:
            return await aw
        except CancelledError as exc:
            if deadline.expired:
                raise TimeoutError(f"{_describe(aw)} did not finish within {timeout} s") from exc
            raise
        finally:
            deadline.armed = False
            if timer.callbacks is not None:
                timer.callbacks.remove(expire)

    async def _wait_for_task(self, task: SimTask[T], timeout: float, delay: float) -> T:
        """Await ``task``, cancelling it after ``delay`` true seconds; see :meth:`wait_for`."""
        if task.done():
            return task.result()
        timed_out = False

        def expire(_event: Event) -> None:
            nonlocal timed_out
            if not task.done():
                timed_out = True
                task.cancel()

        timer = Timeout(self._env, delay)
        timer.callbacks.append(expire)
        try:
            return await task
        except CancelledError as exc:
            if timed_out:
                raise TimeoutError(f"task {task.name!r} did not finish within {timeout} s") from exc
            raise
        finally:
            if timer.callbacks is not None:
                timer.callbacks.remove(expire)

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` at once, in the calling coroutine; simulated time does not advance.

        Raises:
            DeadIncarnationError: the runtime has been killed.
        """
        self.check_alive(f"running {getattr(fn, '__qualname__', fn)!r} in a thread")
        return fn(*args)

    def random(self) -> float:
        """Return a float in ``[0, 1)`` from this incarnation's random source."""
        return self._rng.random()

    # -- crashes ---------------------------------------------------------------------------

    def check_alive(self, effect: str) -> None:
        """Raise ``DeadIncarnationError`` if the runtime was killed.

        Simulated components call this before every effect (store write, network send).

        Args:
            effect: what was attempted, e.g. ``"store write to shard 3"``.

        Raises:
            DeadIncarnationError: the runtime has been killed.
        """
        if not self._alive:
            raise DeadIncarnationError(
                f"runtime {self._name!r} was killed, so {effect} was rejected: a crashed "
                "host incarnation cannot affect the world; start a new SimRuntime "
                "for the restarted host"
            )

    def kill(self) -> int:
        """Mark the runtime dead and drop every pending coroutine, in spawn order.

        Each dropped coroutine is detached from the event it waits for and closed
        at once. Closing runs its ``finally`` blocks and ``except BaseException``
        handlers now, while the runtime is already dead, so any effect they try is
        rejected by :meth:`check_alive`, and an ``await`` that would suspend ends
        them with an error. Closing
        here rather than leaving it to garbage collection keeps that code's timing
        deterministic. Errors from closing are logged and dropped. Awaiting a
        dropped task raises :class:`DeadIncarnationError`.

        A coroutine that calls ``kill()`` on its own runtime keeps running until
        its next suspension and is dropped right after.

        Returns:
            The number of coroutines dropped or marked for dropping.
        """
        if not self._alive:
            return 0
        self._alive = False
        active = self._env.active_process
        tasks = list(self._tasks)
        for task in tasks:
            if task._process is active:
                _defer(self._env, self._drop, task)
            else:
                self._drop(task)
        logger.debug("runtime %r killed, dropping %d pending tasks", self._name, len(tasks))
        return len(tasks)

    def _drop(self, task: SimTask[Any]) -> None:
        if task.done():
            return
        process = task._process
        callbacks = process._target.callbacks
        task._set_dropped()
        try:
            task._coro.close()
        except Exception:
            logger.debug(
                "closing dropped task %r of runtime %r raised",
                task.name,
                self._name,
                exc_info=True,
            )
        process._generator.close()
        # The stand-in ends the process quietly if SimPy still resumes it.
        process._generator = _ended_trampoline()
        if callbacks is None:
            # SimPy is processing the target in this very step and will still
            # call process._resume, which ends the process through the stand-in.
            return
        with contextlib.suppress(ValueError):
            callbacks.remove(process._resume)
        process.succeed()

    # -- internals -------------------------------------------------------------------------

    def _as_task(self, aw: Awaitable[T]) -> SimTask[T]:
        if isinstance(aw, SimTask):
            return aw
        if hasattr(aw, "send") and hasattr(aw, "throw"):
            return self.spawn(aw, name=f"wait_for({_describe(aw)})")  # type: ignore[arg-type]
        return self.spawn(_await(aw), name=f"wait_for({_describe(aw)})")

    def _request_cancel(self, task: SimTask[Any]) -> None:
        """Arrange for ``CancelledError`` to reach ``task`` at its current or next await."""
        process = task._process
        if process is self._env.active_process:
            # A task cancelling itself: interrupt it once it has suspended.
            _defer(self._env, self._deliver_cancel, task)
        elif process._target.__class__ is not Initialize:
            process.interrupt(_CANCEL)
        # Otherwise it has not started, and the trampoline throws before the first send.

    def _deliver_cancel(self, task: SimTask[Any]) -> None:
        if task._process._value is PENDING and task._cancel_requested:
            task._process.interrupt(_CANCEL)

    def _finished(self, task: SimTask[Any]) -> None:
        self._tasks.pop(task, None)


_DRIVE_CODE = _drive.__code__


def _defer(env: simpy.Environment, fn: Callable[[SimTask[Any]], None], task: SimTask[Any]) -> None:
    """Call ``fn(task)`` after the current step, before other events due now."""
    event = Event(env)
    event.callbacks.append(lambda _event: fn(task))
    event._ok = True
    event._value = None
    env.schedule(event, URGENT)


def _ended_trampoline() -> Generator[Any, Any, None]:
    """Return a started generator that ends on the next send or throw."""

    def ended() -> Generator[Any, Any, None]:
        with contextlib.suppress(BaseException):
            yield

    generator = ended()
    next(generator)
    return generator


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _describe(aw: object) -> str:
    return getattr(aw, "__qualname__", None) or type(aw).__name__


if TYPE_CHECKING:

    def _conforms(runtime: SimRuntime) -> Runtime:
        """Let mypy check that SimRuntime satisfies the Runtime protocol."""
        return runtime


__all__ = ["SimEvent", "SimLock", "SimRuntime", "SimTask", "wait_event"]
