"""The simsi exception tree.

Every error simsi raises on purpose derives from :class:`SimsiError`::

    SimsiError
    ├── ConfigError                 invalid host pattern, shard count, option or scenario
    │   └── ScenarioError           a scenario file or value is invalid (names file, key, value)
    ├── NotOwnerError               this host does not own the instance's shard (carries the owner)
    ├── HandlerError                a user handler raised (the original is ``__cause__``)
    │   └── HandlerTimeoutError     a handler ran past its timeout and was cancelled
    ├── LifecycleError              an object was used in the wrong lifecycle state
    │   ├── ManagerClosedError      the manager is closing or closed
    │   └── InstanceShutdownError   the instance is shutting down and takes no new work
    ├── ConnectionRejectedError     ``on_connect`` rejected the connection or left it unhandled
    ├── ConnectionClosedError       ``send`` on a connection that is already closed
    ├── AlarmError                  an alarm could not be set
    │   └── InvalidAlarmMetaError   alarm meta is not JSON-serialisable or is too large
    ├── StoreError                  an alarm store operation failed
    │   ├── StoreUnavailableError   the store could not be reached (retryable)
    │   └── CorruptStoreDataError   the store holds a row simsi cannot decode
    └── RuntimeMisuseError          core code awaited something its runtime does not drive,
        └── DeadIncarnationError    a crashed simulated host tried to affect the world

``ConnectionClosed`` is kept as an alias of :class:`ConnectionClosedError`, the
name used in the design notes.
"""

from __future__ import annotations


class SimsiError(Exception):
    """Base class of every error simsi raises on purpose."""


class ConfigError(SimsiError, ValueError):
    """A configuration value is invalid; the message names the value and the fix."""


class ScenarioError(ConfigError):
    """A scenario is invalid.

    Attributes:
        path: the scenario file, or ``None`` for a scenario built in Python.
        key: the dotted key of the bad value, or ``None`` when the file as a whole is bad.
    """

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}: "
        if key is not None:
            where += f"{key}: "
        super().__init__(where + message)
        self.path = path
        self.key = key


class NotOwnerError(SimsiError):
    """This host does not own the shard of the requested instance.

    Attributes:
        instance_id: the requested instance id.
        shard: the instance's shard.
        owner: the host id that owns the shard.
        host_id: the host that received the request.
    """

    def __init__(self, instance_id: str, shard: int, owner: str, host_id: str) -> None:
        super().__init__(
            f"instance {instance_id!r} (shard {shard}) is owned by {owner!r}, "
            f"not by this host {host_id!r}; send the request to {owner!r}"
        )
        self.instance_id = instance_id
        self.shard = shard
        self.owner = owner
        self.host_id = host_id


class HandlerError(SimsiError):
    """A user handler raised; the original exception is ``__cause__``.

    Attributes:
        instance_id: the instance whose handler raised.
        handler: ``"on_request"``, ``"on_connect"``, ``"on_alarm"`` or ``"on_message"``.
    """

    def __init__(self, instance_id: str, handler: str, cause: BaseException) -> None:
        super().__init__(
            f"{handler} of instance {instance_id!r} raised {type(cause).__name__}: {cause}"
        )
        self.instance_id = instance_id
        self.handler = handler


class HandlerTimeoutError(HandlerError):
    """A handler ran longer than its timeout and was cancelled.

    A handler that raises ``TimeoutError`` itself gets a plain :class:`HandlerError`.

    Attributes:
        timeout: the timeout in seconds.
    """

    def __init__(self, instance_id: str, handler: str, timeout: float) -> None:
        SimsiError.__init__(
            self,
            f"{handler} of instance {instance_id!r} did not finish within {timeout} s "
            "and was cancelled",
        )
        self.instance_id = instance_id
        self.handler = handler
        self.timeout = timeout


class LifecycleError(SimsiError):
    """An object was used in a lifecycle state that does not allow the operation."""


class ManagerClosedError(LifecycleError):
    """The interface manager is closing or closed and accepts no new work."""


class InstanceShutdownError(LifecycleError):
    """The instance is shutting down and accepts no new work; retry to re-activate it."""


class ConnectionRejectedError(SimsiError):
    """The instance rejected a connection, or its ``on_connect`` neither accepted nor rejected.

    Attributes:
        reason: the rejection reason given by the handler, or a default text.
        unhandled: ``True`` when ``on_connect`` returned without deciding.
    """

    def __init__(self, instance_id: str, reason: str, *, unhandled: bool = False) -> None:
        super().__init__(f"connection to instance {instance_id!r} rejected: {reason}")
        self.instance_id = instance_id
        self.reason = reason
        self.unhandled = unhandled


class ConnectionClosedError(SimsiError):
    """An operation was attempted on a connection that is already closed."""


ConnectionClosed = ConnectionClosedError


class AlarmError(SimsiError):
    """An alarm could not be set."""


class InvalidAlarmMetaError(AlarmError, ValueError):
    """Alarm meta is not JSON-serialisable or exceeds the size limit."""


class StoreError(SimsiError):
    """An alarm store operation failed."""


class StoreUnavailableError(StoreError):
    """The alarm store could not be reached; the operation may be retried."""


class CorruptStoreDataError(StoreError):
    """The store returned a row or key that simsi cannot decode; nothing was changed."""


class RuntimeMisuseError(SimsiError):
    """Core or handler code awaited an object its runtime does not drive."""


class DeadIncarnationError(RuntimeMisuseError):
    """A crashed simulated host incarnation attempted an effect; the effect was refused."""
