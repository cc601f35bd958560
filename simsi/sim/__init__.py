"""The deterministic simulator: simulated host clocks and the SimPy Runtime."""

from simsi.sim.clock import DEFAULT_EPOCH, HostClock
from simsi.sim.kv import SimKV
from simsi.sim.runtime import SimEvent, SimLock, SimRuntime, SimTask, wait_event

__all__ = [
    "DEFAULT_EPOCH",
    "HostClock",
    "SimEvent",
    "SimKV",
    "SimLock",
    "SimRuntime",
    "SimTask",
    "wait_event",
]
