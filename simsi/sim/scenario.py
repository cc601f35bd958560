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
    kind = "sim"                 # or "foundationdb": the real store on SimKV
    latency_ms = [1, 3]
    [alarms]
    max_attempts = 5             # and backoff_s, page_size, load_concurrency, ...
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
    [faults_random]              # optional: faults drawn from the seed
    kinds = ["clock_step"]
    count = 2
    window_s = [5, 50]
    [run]
    duration_s = 60              # the workload sends requests until then
    drain_s = 30                 # then the run goes on this long so alarms can finish
    seed = 0
    [expect]
    single_instance = "holds"
    alarms_lost = 0

``scenarios/README.md`` documents every key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsi.core.errors import ScenarioError
from simsi.core.placement import Placement
from simsi.sim.budget import ChoiceSpace, FaultBudget, NumberSpace, ParamSpace, read_budget
from simsi.sim.faults import Fault, ReadContext, check_schedule, read_fault
from simsi.sim.fields import Table, format_toml
from simsi.sim.scenario_read import (
    read_alarms,
    read_cluster,
    read_expect,
    read_network,
    read_run,
    read_store,
    read_workload,
    scenario_hosts,
)
from simsi.sim.specs import (
    VERDICTS,
    AlarmsSpec,
    ClusterSpec,
    Expectations,
    NetworkSpec,
    RunSpec,
    StoreSpec,
    WorkloadSpec,
)


@dataclass(frozen=True)
class Scenario:
    """A complete simulation scenario; see the module docstring for the TOML form.

    Attributes:
        faults: the fixed fault schedule.
        faults_random: a budget of faults drawn from the seed, added to ``faults``
            when the run starts; see :class:`~simsi.sim.budget.FaultBudget`.
    """

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
    alarms: AlarmsSpec = field(default_factory=AlarmsSpec)
    faults_random: FaultBudget | None = None

    def with_seed(self, seed: int) -> Scenario:
        """Return a copy that runs with ``seed``."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, seed=seed))

    def to_dict(self) -> dict[str, Any]:
        """Return the scenario as nested tables, in the shape a TOML file has."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        for section in ("cluster", "network", "store", "alarms", "workload", "run"):
            values = dataclasses.asdict(getattr(self, section))
            data[section] = {
                key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items()
                if value is not None
            }
        expect = dataclasses.asdict(self.expect)
        data["expect"] = {key: value for key, value in expect.items() if value is not None}
        data["faults"] = [fault.to_dict() for fault in self.faults]
        if self.faults_random is not None:
            data["faults_random"] = self.faults_random.to_dict()
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
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"the file is not UTF-8 text (invalid byte at offset {exc.start}); "
            "save the scenario as UTF-8 TOML",
            path=name,
        ) from exc
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
    cluster = read_cluster(top.table("cluster"))
    hosts = Placement(cluster.hosts, cluster.shards).hosts
    network = read_network(top.table("network"))
    store = read_store(top.table("store"))
    alarms = read_alarms(top.table("alarms"))
    workload = read_workload(top.table("workload"))
    run = read_run(top.table("run"))
    expect = read_expect(top.table("expect"))
    fault_tables = top.tables("faults", example='[[faults]] at = 10, kind = "crash"')
    known = scenario_hosts(hosts, fault_tables)
    context = ReadContext(tuple(hosts), frozenset(known), run.end_s, cluster.shards)
    faults = tuple(read_fault(table, context) for table in fault_tables)
    for index, problem in check_schedule(faults, hosts, known):
        raise fault_tables[index].error(None, problem)
    budget: FaultBudget | None = None
    if top.has("faults_random"):
        budget = read_budget(top.table("faults_random"), hosts, run.end_s)
    top.finish()
    return Scenario(
        name,
        description,
        cluster,
        network,
        store,
        workload,
        faults,
        run,
        expect,
        path,
        alarms,
        budget,
    )


__all__ = [
    "VERDICTS",
    "AlarmsSpec",
    "ChoiceSpace",
    "ClusterSpec",
    "Expectations",
    "FaultBudget",
    "NetworkSpec",
    "NumberSpace",
    "ParamSpace",
    "RunSpec",
    "Scenario",
    "StoreSpec",
    "WorkloadSpec",
    "load_scenario",
    "scenario_from_dict",
    "validate_scenario",
]
