"""Readers of the scenario tables, each checking every value and rejecting unknown keys."""

from __future__ import annotations

from collections.abc import Sequence

from simsi.core.errors import ConfigError
from simsi.core.placement import Placement, expand_hosts
from simsi.sim.fields import Table
from simsi.sim.specs import (
    STORE_KINDS,
    VERDICTS,
    AlarmsSpec,
    ClusterSpec,
    Expectations,
    NetworkSpec,
    RunSpec,
    StoreSpec,
    WorkloadSpec,
)
from simsi.sim.workload import BUILTIN_INTERFACES, resolve_interface

_FDB_ONLY = ("conflict_probability", "commit_unknown_probability", "unknown_applied_probability")


def scenario_hosts(hosts: Sequence[str], fault_tables: Sequence[Table]) -> list[str]:
    """Return the cluster's hosts and every host of a pattern that a fault names, in order.

    Fault tables are read later; a pattern that does not expand here is
    reported then, with its key.
    """
    known = dict.fromkeys(hosts)
    for table in fault_tables:
        if not table.has("hosts"):
            continue
        pattern = table.raw("hosts")
        if not isinstance(pattern, str):
            continue
        try:
            known.update(dict.fromkeys(expand_hosts(pattern)))
        except ConfigError:
            continue
    return list(known)


def read_cluster(table: Table) -> ClusterSpec:
    """Read ``[cluster]``."""
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


def _probability(table: Table, name: str, default: float, example: str) -> float:
    return table.number(name, default, minimum=0, maximum=1, unit="probability", example=example)


def read_network(table: Table) -> NetworkSpec:
    """Read ``[network]``."""
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


def read_store(table: Table) -> StoreSpec:
    """Read ``[store]``."""
    defaults = StoreSpec()
    kind = table.string("kind", defaults.kind, choices=STORE_KINDS, example='kind = "sim"')
    if kind != "foundationdb":
        for name in _FDB_ONLY:
            # Defaults are allowed, because Scenario.to_dict writes every field.
            if table.has(name) and table.raw(name) != getattr(defaults, name):
                raise table.error(
                    name,
                    f"{name} applies to the FoundationDB store only; remove it or write "
                    'kind = "foundationdb"',
                )

    latency = table.number_range(
        "latency_ms", defaults.latency_ms, unit="milliseconds", example="latency_ms = [1, 3]"
    )
    conflict = _probability(
        table, "conflict_probability", defaults.conflict_probability, "conflict_probability = 0.05"
    )
    unknown = _probability(
        table,
        "commit_unknown_probability",
        defaults.commit_unknown_probability,
        "commit_unknown_probability = 0.05",
    )
    applied = _probability(
        table,
        "unknown_applied_probability",
        defaults.unknown_applied_probability,
        "unknown_applied_probability = 0.5",
    )

    preload = table.integer(
        "preload_alarms", defaults.preload_alarms, minimum=0, example="preload_alarms = 10000"
    )
    due = table.number_range(
        "preload_due_s",
        defaults.preload_due_s,
        unit="true seconds from the start of the run",
        example="preload_due_s = [60, 120]",
    )
    table.finish()
    return StoreSpec(kind, latency, conflict, unknown, applied, preload, due)


def read_alarms(table: Table) -> AlarmsSpec:
    """Read ``[alarms]``."""
    defaults = AlarmsSpec()

    def count(name: str, default: int) -> int:
        return table.integer(name, default, minimum=1, example=f"{name} = {default}")

    max_attempts = count("max_attempts", defaults.max_attempts)
    backoff = table.number_range(
        "backoff_s", defaults.backoff_s, unit="seconds: base, cap", example="backoff_s = [0.1, 30]"
    )
    jitter = table.number(
        "jitter", defaults.jitter, minimum=0, maximum=1, unit="fraction", example="jitter = 0.2"
    )
    page_size = count("page_size", defaults.page_size)
    load_concurrency = count("load_concurrency", defaults.load_concurrency)
    max_concurrent = count("max_concurrent", defaults.max_concurrent)
    timeout = table.number(
        "handler_timeout_s",
        defaults.handler_timeout_s,
        minimum=0,
        above=True,
        unit="seconds",
        example="handler_timeout_s = 60",
    )
    retry_delay = table.number(
        "store_retry_delay_s",
        defaults.store_retry_delay_s,
        minimum=0,
        unit="seconds",
        example="store_retry_delay_s = 0.5",
    )
    store_attempts = count("store_attempts", defaults.store_attempts)
    table.finish()
    return AlarmsSpec(
        max_attempts,
        backoff,
        jitter,
        page_size,
        load_concurrency,
        max_concurrent,
        timeout,
        retry_delay,
        store_attempts,
    )


def read_workload(table: Table) -> WorkloadSpec:
    """Read ``[workload]``."""
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
    handler = table.number_range(
        "handler_s", defaults.handler_s, unit="seconds", example="handler_s = [0, 0.5]"
    )
    alarm_handler = table.number_range(
        "alarm_handler_s",
        defaults.alarm_handler_s,
        unit="seconds",
        example="alarm_handler_s = [10, 20]",
    )
    table.finish()
    return WorkloadSpec(instances, rate, alarms, delay, timeout, handler, alarm_handler)


def read_run(table: Table) -> RunSpec:
    """Read ``[run]``."""
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


def read_expect(table: Table) -> Expectations:
    """Read ``[expect]``."""

    def verdict(name: str) -> str | None:
        return table.optional_string(name, choices=VERDICTS, example=f'{name} = "holds"')

    def count(name: str) -> int | None:
        if not table.has(name):
            table.raw(name, None)
            return None
        return table.integer(name, minimum=0, example=f"{name} = 0")

    def seconds(name: str) -> float | None:
        return table.optional_number(name, minimum=0, unit="seconds", example=f"{name} = 1.5")

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
        phantom_alarms=count("phantom_alarms"),
        min_availability=table.optional_number(
            "min_availability",
            minimum=0,
            maximum=1,
            unit="fraction of sent requests",
            example="min_availability = 0.9",
        ),
        max_availability=table.optional_number(
            "max_availability",
            minimum=0,
            maximum=1,
            unit="fraction of sent requests",
            example="max_availability = 0.9",
        ),
        max_concurrent_store_reads=count("max_concurrent_store_reads"),
        min_alarm_duplicates=count("min_alarm_duplicates"),
        min_early_fires=count("min_early_fires"),
        max_early_s=seconds("max_early_s"),
        max_alarm_lag_s=seconds("max_alarm_lag_s"),
        alarm_delivery=verdict("alarm_delivery"),
    )
    table.finish()
    return result
