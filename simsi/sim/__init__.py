"""The deterministic simulator: simulated host clocks and the SimPy Runtime."""

from simsi.sim.checkers import CheckResults, check_all
from simsi.sim.clock import DEFAULT_EPOCH, HostClock
from simsi.sim.faults import FAULT_KINDS, Fault, FaultKind, register
from simsi.sim.kv import SimKV
from simsi.sim.runtime import SimEvent, SimLock, SimRuntime, SimTask, wait_event
from simsi.sim.scenario import Scenario, load_scenario, validate_scenario
from simsi.sim.trace import Trace, TraceEvent
from simsi.sim.world import SimResult, World, run_scenario

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
__all__ += [
    "FAULT_KINDS",
    "CheckResults",
    "Fault",
    "FaultKind",
    "Scenario",
    "SimResult",
    "Trace",
    "TraceEvent",
    "World",
    "check_all",
    "load_scenario",
    "register",
    "run_scenario",
    "validate_scenario",
]
