"""The deterministic core: placement, instances, connections and alarms.

Nothing here performs I/O or reads the wall clock; everything comes from the
:class:`~simsi.core.runtime.Runtime` a manager is given.
"""

from simsi.core.alarm_options import AlarmOptions
from simsi.core.alarms import (
    MAX_META_BYTES,
    Alarm,
    AlarmKey,
    AlarmStore,
    DoneReason,
    decode_meta,
    encode_meta,
    from_micros,
    to_micros,
)
from simsi.core.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_HANDLER_ERROR,
    CLOSE_NORMAL,
    Connection,
    ConnectionState,
    IncomingConnection,
    IncomingState,
)
from simsi.core.errors import (
    AlarmError,
    ConfigError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionRejectedError,
    CorruptStoreDataError,
    DeadIncarnationError,
    HandlerError,
    HandlerTimeoutError,
    InstanceShutdownError,
    InvalidAlarmMetaError,
    LifecycleError,
    ManagerClosedError,
    NotOwnerError,
    RuntimeMisuseError,
    ScenarioError,
    SimsiError,
    StoreError,
    StoreUnavailableError,
)
from simsi.core.instance import InstanceState
from simsi.core.interface import AlarmContext, InstanceContext, StableInterface
from simsi.core.manager import InterfaceFactory, InterfaceManager, ManagerState
from simsi.core.observer import ManagerObserver
from simsi.core.placement import Placement, expand_hosts, internal_id, murmur2
from simsi.core.runtime import Event, Lock, Runtime, Task

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_HANDLER_ERROR",
    "CLOSE_NORMAL",
    "MAX_META_BYTES",
    "Alarm",
    "AlarmContext",
    "AlarmError",
    "AlarmKey",
    "AlarmOptions",
    "AlarmStore",
    "ConfigError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionRejectedError",
    "ConnectionState",
    "CorruptStoreDataError",
    "DeadIncarnationError",
    "DoneReason",
    "Event",
    "HandlerError",
    "HandlerTimeoutError",
    "IncomingConnection",
    "IncomingState",
    "InstanceContext",
    "InstanceShutdownError",
    "InstanceState",
    "InterfaceFactory",
    "InterfaceManager",
    "InvalidAlarmMetaError",
    "LifecycleError",
    "Lock",
    "ManagerClosedError",
    "ManagerObserver",
    "ManagerState",
    "NotOwnerError",
    "Placement",
    "Runtime",
    "RuntimeMisuseError",
    "ScenarioError",
    "SimsiError",
    "StableInterface",
    "StoreError",
    "StoreUnavailableError",
    "Task",
    "decode_meta",
    "encode_meta",
    "expand_hosts",
    "from_micros",
    "internal_id",
    "murmur2",
    "to_micros",
]
