"""Scenarios: a simulated cluster, its workload, a fault schedule and expectations.

A :class:`Scenario` is built in Python or loaded from TOML with
:func:`load_scenario`. Both paths go through :func:`scenario_from_dict`, which
checks every value and rejects unknown keys, so a scenario built in Python is
checked the same way as a file (see :func:`validate_scenario`)::

    name = "crash one host"
    [cluster]
    hosts = "host-{0..2}"        # host pattern, every host starts at true time 0
    shards = 64
    interface = "counter"        # the built-in counter, or "pkg.module:Class"
    [network]
    latency_ms = [1, 5]          # one-way latency, uniform in [min, max]
    loss = 0.0                   # probability that a message is lost
    [store]
    kind = "sim"
    latency_ms = [1, 3]
    [workload]
    instances = 20               # ids inst-0 .. inst-19
    request_rate = 10            # requests per second, Poisson arrivals
    alarms_per_request = 1
    alarm_delay_s = [2, 10]
    request_timeout_s = 5
    [[faults]]
    at = 10
    kind = "crash"
    host = "host-1"
    [run]
    duration_s = 60              # the workload sends requests until then
    drain_s = 30                 # then the run goes on this long so alarms can finish
    seed = 0
    [expect]
    single_instance = "holds"
    alarms_lost = 0
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsi.core.errors import ConfigError, ScenarioError
from simsi.core.placement import Placement
from simsi.sim.faults import Fault, check_schedule, read_fault
from simsi.sim.fields import Table, format_toml
from simsi.sim.workload import BUILTIN_INTERFACES, resolve_interface

VERDICTS = ("holds", "violated")
"""Allowed values of the invariant expectations."""


@dataclass(frozen=True)
class ClusterSpec:
    """The ``[cluster]`` table: hosts, shards and the interface class."""

    hosts: str = "host-{0..2}"
    shards: int = 64
    interface: str = "counter"


@dataclass(frozen=True)
class NetworkSpec:
    """The ``[network]`` table: one-way latency in milliseconds and loss probability."""

    latency_ms: tuple[float, float] = (1.0, 5.0)
    loss: float = 0.0


@dataclass(frozen=True)
class StoreSpec:
    """The ``[store]`` table: the alarm store kind and its per-call latency in milliseconds."""

    kind: str = "sim"
    latency_ms: tuple[float, float] = (1.0, 3.0)


@dataclass(frozen=True)
class WorkloadSpec:
    """The ``[workload]`` table.

    Attributes:
        instances: number of instance ids, ``inst-0`` to ``inst-{instances-1}``.
        request_rate: requests per second over the whole cluster (Poisson arrivals).
        alarms_per_request: alarms the instance sets per request.
        alarm_delay_s: each alarm is due this many host-clock seconds after the request.
        request_timeout_s: a client gives up on a request after this many true seconds.
    """

    instances: int = 20
    request_rate: float = 10.0
    alarms_per_request: int = 1
    alarm_delay_s: tuple[float, float] = (1.0, 10.0)
    request_timeout_s: float = 5.0


@dataclass(frozen=True)
class RunSpec:
    """The ``[run]`` table: durations in true seconds and the seed."""

    duration_s: float = 60.0
    drain_s: float = 30.0
    seed: int = 0

    @property
    def end_s(self) -> float:
        """True time at which the run stops."""
        return self.duration_s + self.drain_s


@dataclass(frozen=True)
class Expectations:
    """The ``[expect]`` table; ``None`` leaves a property unchecked.

    Attributes:
        single_instance: ``"holds"`` or ``"violated"``.
        routing: ``"holds"`` (no request served by a non-owner) or ``"violated"``.
        alarms_lost: the exact number of lost alarms.
        max_alarm_duplicates: the maximum number of successful alarm handler runs beyond
            the first one of each alarm.
        max_early_fires: the maximum number of fires before their alarm's due true time.
        min_requests_served: the minimum number of requests served successfully.
        alarm_grace_s: true seconds after its due time at which an alarm not done
            counts as lost. An alarm due later than that before the end is only pending.
    """

    single_instance: str | None = None
    routing: str | None = None
    alarms_lost: int | None = None
    max_alarm_duplicates: int | None = None
    max_early_fires: int | None = None
    min_requests_served: int | None = None
    alarm_grace_s: float = 10.0


@dataclass(frozen=True)
class Scenario:
    """A complete simulation scenario; see the module docstring for the TOML form."""

    name: str = "scenario"
    description: str = ""
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    store: StoreSpec = field(default_factory=StoreSpec)
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    faults: tuple[Fault, ...] = ()
    run: RunSpec = field(default_factory=RunSpec)
    expect: Expectations = field(default_factory=Expectations)
    path: str | None = None

    def with_seed(self, seed: int) -> Scenario:
        """Return a copy that runs with ``seed``."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, seed=seed))

    def to_dict(self) -> dict[str, Any]:
        """Return the scenario as nested tables, in the shape a TOML file has."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        for section in ("cluster", "network", "store", "workload", "run"):
            values = dataclasses.asdict(getattr(self, section))
            data[section] = {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items()
            }
        expect = dataclasses.asdict(self.expect)
        data["expect"] = {key: value for key, value in expect.items() if value is not None}
        data["faults"] = [fault.to_dict() for fault in self.faults]
        return data

    def to_toml(self) -> str:
        """Return the scenario as the text of a TOML file that :func:`load_scenario` reads back."""
        text = format_toml(self.to_dict())
        if not self.description:
            return text
        header = "\n".join(f"# {line}".rstrip() for line in self.description.splitlines())
        return f"{header}\n\n{text}"


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a TOML scenario file.

    Raises:
        ScenarioError: the file is missing, is not valid TOML, or has a missing,
            unknown or invalid key. The message names the file, key, value and fix.
    """
    name = str(path)
    try:
        with open(path, "rb") as source:
            data = tomllib.load(source)
    except FileNotFoundError as exc:
        raise ScenarioError(
            "file not found; pass the path of a scenario file, like scenarios/quickstart.toml",
            path=name,
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"invalid TOML: {exc}", path=name) from exc
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror}", path=name) from exc
    return scenario_from_dict(data, path=name)


def validate_scenario(scenario: Scenario) -> Scenario:
    """Check a scenario built in Python as :func:`load_scenario` checks a file; return it.

    Raises:
        ScenarioError: a value is invalid; the key is named as in a TOML file.
    """
    checked = scenario_from_dict(scenario.to_dict(), path=scenario.path)
    return dataclasses.replace(checked, description=scenario.description)


def scenario_from_dict(data: Mapping[str, Any], path: str | None = None) -> Scenario:
    """Build a :class:`Scenario` from nested tables, checking every value.

    Raises:
        ScenarioError: a key is missing, unknown or invalid.
    """
    top = Table(data, "", path)
    name = top.string("name", Path(path).stem if path else "scenario", example='name = "my test"')
    description = top.raw("description", "")
    if not isinstance(description, str):
        raise top.error("description", f"invalid value {description!r}: expected a string")
    cluster = _read_cluster(top.table("cluster"))
    hosts = Placement(cluster.hosts, cluster.shards).hosts
    network = _read_network(top.table("network"))
    store = _read_store(top.table("store"))
    workload = _read_workload(top.table("workload"))
    run = _read_run(top.table("run"))
    expect = _read_expect(top.table("expect"))
    fault_tables = top.tables("faults", example='[[faults]] at = 10, kind = "crash"')
    faults = tuple(read_fault(table, hosts, run.end_s) for table in fault_tables)
    for index, problem in check_schedule(faults, hosts):
        raise fault_tables[index].error(None, problem)
    top.finish()
    return Scenario(name, description, cluster, network, store, workload, faults, run, expect, path)


def _read_cluster(table: Table) -> ClusterSpec:
    hosts = table.string("hosts", ClusterSpec.hosts, example='hosts = "host-{0..2}"')
    shards = table.integer("shards", ClusterSpec.shards, minimum=1, example="shards = 64")
    interface = table.string("interface", ClusterSpec.interface, example='interface = "counter"')
    table.finish()
    try:
        Placement(hosts, shards)
    except ConfigError as exc:
        key = "shards" if "shards" in str(exc) else "hosts"
        raise table.error(key, str(exc)) from exc
    try:
        resolve_interface(interface)
    except ConfigError as exc:
        builtins = ", ".join(sorted(BUILTIN_INTERFACES))
        raise table.error(
            "interface", f"{exc}; use a built-in ({builtins}) or 'pkg.module:Class'"
        ) from exc
    return ClusterSpec(hosts, shards, interface)


def _read_network(table: Table) -> NetworkSpec:
    latency = table.number_range(
        "latency_ms", NetworkSpec.latency_ms, unit="milliseconds", example="latency_ms = [1, 5]"
    )
    loss = table.number(
        "loss",
        NetworkSpec.loss,
        minimum=0,
        maximum=1,
        below=True,
        unit="probability",
        example="loss = 0.01",
    )
    table.finish()
    return NetworkSpec(latency, loss)


def _read_store(table: Table) -> StoreSpec:
    kind = table.string("kind", StoreSpec.kind, example='kind = "sim"')
    if kind != "sim":
        raise table.error(
            "kind",
            f"invalid value {kind!r}: only the simulated store 'sim' is available so far; "
            'write kind = "sim"',
        )
    latency = table.number_range(
        "latency_ms", StoreSpec.latency_ms, unit="milliseconds", example="latency_ms = [1, 3]"
    )
    table.finish()
    return StoreSpec(kind, latency)


def _read_workload(table: Table) -> WorkloadSpec:
    defaults = WorkloadSpec()
    instances = table.integer("instances", defaults.instances, minimum=1, example="instances = 20")
    rate = table.number(
        "request_rate",
        defaults.request_rate,
        minimum=0,
        above=True,
        unit="requests per second",
        example="request_rate = 10",
    )
    alarms = table.integer(
        "alarms_per_request",
        defaults.alarms_per_request,
        minimum=0,
        example="alarms_per_request = 1",
    )
    delay = table.number_range(
        "alarm_delay_s", defaults.alarm_delay_s, unit="seconds", example="alarm_delay_s = [2, 10]"
    )
    timeout = table.number(
        "request_timeout_s",
        defaults.request_timeout_s,
        minimum=0,
        above=True,
        unit="seconds",
        example="request_timeout_s = 5",
    )
    table.finish()
    return WorkloadSpec(instances, rate, alarms, delay, timeout)


def _read_run(table: Table) -> RunSpec:
    duration = table.number(
        "duration_s",
        RunSpec.duration_s,
        minimum=0,
        above=True,
        unit="seconds",
        example="duration_s = 60",
    )
    drain = table.number(
        "drain_s", RunSpec.drain_s, minimum=0, unit="seconds", example="drain_s = 30"
    )
    seed = table.integer("seed", RunSpec.seed, example="seed = 0")
    table.finish()
    return RunSpec(duration, drain, seed)


def _read_expect(table: Table) -> Expectations:
    def verdict(name: str) -> str | None:
        return table.optional_string(name, choices=VERDICTS, example=f'{name} = "holds"')

    def count(name: str) -> int | None:
        if not table.has(name):
            table.raw(name, None)
            return None
        return table.integer(name, minimum=0, example=f"{name} = 0")

    result = Expectations(
        single_instance=verdict("single_instance"),
        routing=verdict("routing"),
        alarms_lost=count("alarms_lost"),
        max_alarm_duplicates=count("max_alarm_duplicates"),
        max_early_fires=count("max_early_fires"),
        min_requests_served=count("min_requests_served"),
        alarm_grace_s=table.number(
            "alarm_grace_s",
            Expectations.alarm_grace_s,
            minimum=0,
            unit="seconds",
            example="alarm_grace_s = 10",
        ),
    )
    table.finish()
    return result
