"""One live instance: activation, turn-taking, in-flight work and shutdown."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from simsi.core.connection import CLOSE_GOING_AWAY, CLOSE_HANDLER_ERROR, Connection
from simsi.core.errors import HandlerError, HandlerTimeoutError, InstanceShutdownError
from simsi.core.interface import InstanceContext, StableInterface
from simsi.core.runtime import CancelledError

if TYPE_CHECKING:
    from simsi.core.manager import InterfaceManager

T = TypeVar("T")


def _deadline_passed(error: TimeoutError, timeout: float | None) -> bool:
    """Return whether ``error`` comes from the runtime's deadline, not from the handler."""
    return timeout is not None and isinstance(error.__cause__, CancelledError)


class InstanceState(enum.Enum):
    """Lifecycle of a live instance."""

    ACTIVE = "active"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"


class LiveInstance:
    """The manager's record of one live instance.

    Work (requests, alarms, messages) is counted from the moment it is admitted,
    before any ``await``, so :meth:`shutdown` can wait for all of it.
    """

    def __init__(
        self,
        manager: InterfaceManager,
        instance_id: str,
        internal_id: str,
        shard: int,
        obj: StableInterface,
    ) -> None:
        runtime = manager.runtime
        self.manager = manager
        self.instance_id = instance_id
        self.internal_id = internal_id
        self.shard = shard
        self.obj = obj
        self.state = InstanceState.ACTIVE
        self.connections: set[Connection] = set()
        self._reentrant = bool(getattr(obj, "reentrant", False))
        self._turn = runtime.lock()
        self._work = 0
        self.last_used = runtime.now()
        self._idle = runtime.event()
        self._idle.set()
        self.stopped = runtime.event()
        self._activation_started = False
        self._activated = runtime.event()
        self._activation_error: BaseException | None = None

    @property
    def work_in_progress(self) -> int:
        """Admitted handlers that have not finished."""
        return self._work

    def admit(self) -> None:
        """Count one unit of work; raise if the instance takes no new work."""
        if self.state is not InstanceState.ACTIVE:
            raise InstanceShutdownError(
                f"instance {self.instance_id!r} is {self.state.value}; retry to re-activate it"
            )
        self._work += 1
        self._idle.clear()

    def release(self) -> None:
        """Finish one unit of work admitted with :meth:`admit`."""
        self._work -= 1
        if self._work == 0:
            self._idle.set()
            self.last_used = self.manager.runtime.now()

    @property
    def activation_failed(self) -> bool:
        """Whether ``on_activate`` raised; such an instance is dropped and re-created."""
        return self._activation_error is not None

    async def run(
        self,
        handler: str,
        call: Callable[[], Awaitable[T]],
        timeout: float | None = None,
    ) -> T:
        """Run an admitted handler call in this instance's turn and release the work.

        Raises:
            HandlerError: the handler (or ``on_activate``) raised or timed out.
        """
        # The handler call is written out here, not awaited through _call, to save a
        # coroutine per handler call. Activation and the turn lock raise no
        # exception that the clauses below would wrap: activation errors are already
        # HandlerError, and cancellation is not an Exception.
        try:
            if self._reentrant:
                if self._activation_error is not None or not self._activated.is_set():
                    await self._activate_shared()
                if timeout is None:
                    return await call()
                return await self.manager.runtime.wait_for(call(), timeout)
            async with self._turn:
                if self._activation_error is not None or not self._activation_started:
                    await self._activate_in_turn()
                if timeout is None:
                    return await call()
                return await self.manager.runtime.wait_for(call(), timeout)
        except HandlerError:
            raise
        except TimeoutError as exc:
            raise self._timeout_error(handler, exc, timeout) from exc
        except Exception as exc:
            raise self._handler_error(handler, exc) from exc
        finally:
            self.release()

    def _handler_error(self, handler: str, error: BaseException) -> HandlerError:
        """Report a failed handler to the observer and return the error to raise."""
        self.manager.observer.handler_failed(self.instance_id, handler, error)
        return HandlerError(self.instance_id, handler, error)

    def _timeout_error(
        self, handler: str, error: TimeoutError, timeout: float | None
    ) -> HandlerError:
        """Return :class:`HandlerTimeoutError` for a passed deadline, else wrap ``error``."""
        if timeout is None or not _deadline_passed(error, timeout):
            return self._handler_error(handler, error)
        self.manager.observer.handler_failed(self.instance_id, handler, error)
        return HandlerTimeoutError(self.instance_id, handler, timeout)

    async def _call(
        self, handler: str, call: Callable[[], Awaitable[T]], timeout: float | None
    ) -> T:
        runtime = self.manager.runtime
        try:
            if timeout is None:
                return await call()
            return await runtime.wait_for(call(), timeout)
        except HandlerError:
            raise
        except TimeoutError as exc:
            raise self._timeout_error(handler, exc, timeout) from exc
        except Exception as exc:
            raise self._handler_error(handler, exc) from exc

    async def _activate_in_turn(self) -> None:
        """Run ``on_activate`` as the first turn; the caller holds the turn lock."""
        if self._activation_error is not None:
            raise HandlerError(self.instance_id, "on_activate", self._activation_error)
        if self._activation_started:
            return
        self._activation_started = True
        await self._run_activation()

    async def _activate_shared(self) -> None:
        """Run ``on_activate`` once for a reentrant instance; later callers wait for it."""
        if not self._activation_started:
            self._activation_started = True
            await self._run_activation()
            return
        await self._activated.wait()
        if self._activation_error is not None:
            raise HandlerError(self.instance_id, "on_activate", self._activation_error)

    async def _run_activation(self) -> None:
        ctx = InstanceContext(self)
        try:
            await self._call("on_activate", lambda: self.obj.on_activate(ctx), None)
        except HandlerError as exc:
            self._activation_error = exc.__cause__ or exc
            raise
        finally:
            self._activated.set()

    def handle_message(self, connection: Connection, message: Any, handler: Any) -> None:
        """Admit a connection message and run its handler in turn, without waiting for it."""
        self.admit()
        self.manager.runtime.spawn(
            self._run_message(connection, message, handler),
            name=f"message:{self.instance_id}:{connection.id}",
        )

    async def _run_message(self, connection: Connection, message: Any, handler: Any) -> None:
        ctx = InstanceContext(self)

        async def call() -> None:
            if handler is None:
                await self.obj.on_message(ctx, connection, message)
                return
            result = handler(message)
            if inspect.isawaitable(result):
                await result

        try:
            await self.run("on_message", call)
        except HandlerError as exc:
            await connection.close(CLOSE_HANDLER_ERROR, f"message handler failed: {exc.__cause__}")

    async def shutdown(self) -> None:
        """Stop new work, close connections, wait for running handlers, then run ``on_shutdown``."""
        self.state = InstanceState.SHUTTING_DOWN
        for connection in list(self.connections):
            await connection.close(CLOSE_GOING_AWAY, "instance shutting down")
        self.connections.clear()
        while self._work:
            await self._idle.wait()
        if self._activation_started and self._activation_error is None:
            await self._activated.wait()
            ctx = InstanceContext(self)
            try:
                await self._call("on_shutdown", lambda: self.obj.on_shutdown(ctx), None)
            except HandlerError as exc:
                self.manager.observer.error_swallowed(
                    f"on_shutdown of instance {self.instance_id!r}", exc
                )
        self.state = InstanceState.STOPPED
        self.stopped.set()
