"""Duplex connections between a caller and a live instance.

``InterfaceManager.connect`` hands the instance an :class:`IncomingConnection`.
The instance's ``on_connect`` must :meth:`~IncomingConnection.accept` or
:meth:`~IncomingConnection.reject` it; a connection left unhandled is rejected.
Accepting creates a pair of :class:`Connection` ends, one for the caller and one
for the instance. Either end can send, close and register close callbacks;
closing one end closes both, and ``send`` after close raises
:class:`~simsi.core.errors.ConnectionClosedError`.
"""

from __future__ import annotations

import enum
import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from simsi.core.errors import ConnectionClosedError, LifecycleError
from simsi.core.runtime import Event

#: Close code of a normal close (the WebSocket code 1000).
CLOSE_NORMAL = 1000
#: Close code used when the instance or host goes away (the WebSocket code 1001).
CLOSE_GOING_AWAY = 1001
#: Close code used when a message handler raised (the WebSocket code 1011).
CLOSE_HANDLER_ERROR = 1011

CloseCallback = Callable[[int, str], Awaitable[None] | None]
MessageHandler = Callable[[Any], Awaitable[None] | None]


class ConnectionState(enum.Enum):
    """Lifecycle of a connection end."""

    OPEN = "open"
    CLOSED = "closed"


class Connection:
    """One end of an accepted duplex connection.

    Messages are any Python objects; the production host restricts them to JSON.
    Each end receives either through :meth:`receive` (and ``async for``) or, when
    a message handler was registered, through that handler.
    """

    def __init__(self, connection_id: str, instance_id: str, meta: dict[str, Any], wakeup: Event):
        self._id = connection_id
        self._instance_id = instance_id
        self._meta = meta
        self._inbox: deque[Any] = deque()
        self._wakeup = wakeup
        self._peer: Connection | None = None
        self._handler: MessageHandler | None = None
        self._state = ConnectionState.OPEN
        self._close_code: int | None = None
        self._close_reason = ""
        self._callbacks: list[CloseCallback] = []
        self._swallow: Callable[[str, BaseException], None] = lambda _where, _exc: None

    @property
    def id(self) -> str:
        """The connection id, shared by both ends."""
        return self._id

    @property
    def instance_id(self) -> str:
        """The id of the instance this connection reaches."""
        return self._instance_id

    @property
    def meta(self) -> dict[str, Any]:
        """The meta the caller passed to ``connect``."""
        return self._meta

    @property
    def state(self) -> ConnectionState:
        """Whether the connection is open or closed."""
        return self._state

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self._state is ConnectionState.CLOSED

    @property
    def close_code(self) -> int | None:
        """The close code, or ``None`` while open."""
        return self._close_code

    @property
    def close_reason(self) -> str:
        """The close reason, empty while open."""
        return self._close_reason

    def on_close(self, callback: CloseCallback) -> None:
        """Register ``callback(code, reason)``, called once when the connection closes.

        A callback registered after the close runs at the next close call, which
        never comes, so register before awaiting anything that may close it.
        """
        self._callbacks.append(callback)

    async def send(self, message: Any) -> None:
        """Deliver ``message`` to the other end.

        Raises:
            ConnectionClosedError: the connection is closed.
        """
        if self.closed or self._peer is None:
            raise ConnectionClosedError(
                f"connection {self._id} to instance {self._instance_id!r} is closed "
                f"({self._close_code} {self._close_reason!r}); open a new one with connect()"
            )
        await self._peer._deliver(message)

    async def receive(self) -> Any:
        """Return the next message sent by the other end.

        Raises:
            ConnectionClosedError: the connection closed and every message was received.
        """
        while not self._inbox:
            if self.closed:
                raise ConnectionClosedError(
                    f"connection {self._id} to instance {self._instance_id!r} is closed "
                    f"({self._close_code} {self._close_reason!r})"
                )
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._inbox.popleft()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                message = await self.receive()
            except ConnectionClosedError:
                return
            yield message

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close both ends and run each end's close callbacks once; closing again does nothing."""
        if self.closed:
            return
        peer = self._peer
        self._mark_closed(code, reason)
        if peer is not None:
            peer._mark_closed(code, reason)
        await self._run_callbacks()
        if peer is not None:
            await peer._run_callbacks()

    def _mark_closed(self, code: int, reason: str) -> None:
        self._state = ConnectionState.CLOSED
        self._close_code = code
        self._close_reason = reason
        self._wakeup.set()

    async def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                result = callback(self._close_code or CLOSE_NORMAL, self._close_reason)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._swallow(f"close callback of connection {self._id}", exc)

    async def _deliver(self, message: Any) -> None:
        if self._handler is not None:
            result = self._handler(message)
            if inspect.isawaitable(result):
                await result
            return
        self._inbox.append(message)
        self._wakeup.set()

    def __repr__(self) -> str:
        return f"<Connection {self._id} instance={self._instance_id!r} state={self._state.value}>"


def connect_pair(
    connection_id: str,
    instance_id: str,
    meta: dict[str, Any],
    caller_wakeup: Event,
    instance_wakeup: Event,
) -> tuple[Connection, Connection]:
    """Return a linked ``(caller_end, instance_end)`` pair."""
    caller = Connection(connection_id, instance_id, meta, caller_wakeup)
    instance = Connection(connection_id, instance_id, meta, instance_wakeup)
    caller._peer = instance
    instance._peer = caller
    return caller, instance


class IncomingState(enum.Enum):
    """The decision ``on_connect`` made about an incoming connection."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class IncomingConnection:
    """A connection request handed to ``on_connect``; accept or reject it exactly once."""

    def __init__(self, connection_id: str, instance_id: str, meta: dict[str, Any]) -> None:
        self._id = connection_id
        self._instance_id = instance_id
        self._meta = meta
        self._state = IncomingState.PENDING
        self._reject_reason = ""
        self._handler: MessageHandler | None = None
        self._accepted_end: Connection | None = None
        self._accept_hook: Callable[[MessageHandler | None], Connection] | None = None

    @property
    def id(self) -> str:
        """The connection id."""
        return self._id

    @property
    def meta(self) -> dict[str, Any]:
        """The meta the caller passed to ``connect``."""
        return self._meta

    @property
    def state(self) -> IncomingState:
        """Whether the request is pending, accepted or rejected."""
        return self._state

    @property
    def reject_reason(self) -> str:
        """The reason given to :meth:`reject`, empty otherwise."""
        return self._reject_reason

    def accept(self, on_message: MessageHandler | None = None) -> Connection:
        """Accept the connection and return the instance's end.

        Args:
            on_message: called with each message from the caller, in arrival order and
                taking turns with the instance's other handlers. Without it, messages go
                to the instance class's ``on_message`` or, failing that, to
                :meth:`Connection.receive`.

        Raises:
            LifecycleError: the connection was already accepted or rejected.
        """
        self._decide(IncomingState.ACCEPTED)
        assert self._accept_hook is not None
        self._accepted_end = self._accept_hook(on_message)
        return self._accepted_end

    def reject(self, reason: str = "rejected") -> None:
        """Reject the connection; the caller's ``connect`` raises ``ConnectionRejectedError``.

        Raises:
            LifecycleError: the connection was already accepted or rejected.
        """
        self._decide(IncomingState.REJECTED)
        self._reject_reason = reason

    def _decide(self, state: IncomingState) -> None:
        if self._state is not IncomingState.PENDING:
            raise LifecycleError(
                f"connection {self._id} to instance {self._instance_id!r} was already "
                f"{self._state.value}; accept() or reject() may be called once"
            )
        self._state = state
