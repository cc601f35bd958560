"""The tables of a scenario as frozen dataclasses, with their defaults.

:mod:`simsi.sim.scenario` combines them into a :class:`~simsi.sim.scenario.Scenario`
and :mod:`simsi.sim.scenario_read` reads them from TOML. All are importable from
:mod:`simsi.sim.scenario`.
"""

from __future__ import annotations

from dataclasses import dataclass

from simsi.core.alarm_engine import AlarmOptions

VERDICTS = ("holds", "violated")
"""Allowed values of the invariant expectations."""

STORE_KINDS = ("sim", "foundationdb")
"""Values of ``[store] kind``."""


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
    """The ``[store]`` table: the alarm store kind, its latency, faults and preloaded alarms.

    Attributes:
        kind: ``"sim"`` (an in-memory store) or ``"foundationdb"`` (the real
            FoundationDB alarm store running on ``SimKV``).
        latency_ms: each call's latency in milliseconds, uniform in ``[min, max]``.
        conflict_probability: FoundationDB only: chance that a commit fails with
            ``not_committed`` (1020) and is retried.
        commit_unknown_probability: FoundationDB only: chance that a commit raises
            ``commit_unknown_result`` (1021).
        unknown_applied_probability: FoundationDB only: chance that a commit that
            raised ``commit_unknown_result`` was applied anyway.
        preload_alarms: alarms written to the store before the run starts, spread
            over the workload's instances, as a store that already contains a backlog.
        preload_due_s: the preloaded alarms are due at true times uniform in ``[min, max]``.
    """

    kind: str = "sim"
    latency_ms: tuple[float, float] = (1.0, 3.0)
    conflict_probability: float = 0.0
    commit_unknown_probability: float = 0.0
    unknown_applied_probability: float = 0.5
    preload_alarms: int = 0
    preload_due_s: tuple[float, float] = (60.0, 120.0)


_DEFAULT_OPTIONS = AlarmOptions()


@dataclass(frozen=True)
class AlarmsSpec:
    """The ``[alarms]`` table: alarm delivery tuning of every host, as :class:`AlarmOptions`.

    Attributes:
        max_attempts: deliveries before an alarm is dropped as ``attempts_exhausted``.
        backoff_s: ``(base, cap)``: seconds before the first retry, doubling up to the cap.
        jitter: fraction of a retry delay removed at random (0 to 1).
        page_size: alarms read per store call.
        load_concurrency: shards whose pages one host loads at once.
        max_concurrent: alarm handlers that may run at once on one host.
        handler_timeout_s: seconds an alarm handler may take.
        store_retry_delay_s: seconds between retries of a failed store call.
        store_attempts: tries of a store call made while completing an alarm.
    """

    max_attempts: int = _DEFAULT_OPTIONS.max_attempts
    backoff_s: tuple[float, float] = (_DEFAULT_OPTIONS.backoff_base, _DEFAULT_OPTIONS.backoff_cap)
    jitter: float = _DEFAULT_OPTIONS.jitter
    page_size: int = _DEFAULT_OPTIONS.page_size
    load_concurrency: int = _DEFAULT_OPTIONS.load_concurrency
    max_concurrent: int = _DEFAULT_OPTIONS.max_concurrent
    handler_timeout_s: float = 60.0
    store_retry_delay_s: float = _DEFAULT_OPTIONS.store_retry_delay
    store_attempts: int = _DEFAULT_OPTIONS.store_attempts

    def options(self) -> AlarmOptions:
        """Return the :class:`AlarmOptions` every host manager gets."""
        return AlarmOptions(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_s[0],
            backoff_cap=self.backoff_s[1],
            jitter=self.jitter,
            page_size=self.page_size,
            load_concurrency=self.load_concurrency,
            max_concurrent=self.max_concurrent,
            handler_timeout=self.handler_timeout_s,
            store_retry_delay=self.store_retry_delay_s,
            store_attempts=self.store_attempts,
        )


@dataclass(frozen=True)
class WorkloadSpec:
    """The ``[workload]`` table.

    Attributes:
        instances: number of instance ids, ``inst-0`` to ``inst-{instances-1}``.
        request_rate: requests per second over the whole cluster (Poisson arrivals).
        alarms_per_request: alarms the instance sets per request.
        alarm_delay_s: each alarm is due this many host-clock seconds after the request.
        request_timeout_s: a client gives up on a request after this many true seconds.
        handler_s: host-clock seconds the built-in interface's request handler
            sleeps, uniform in ``[min, max]``.
        alarm_handler_s: host-clock seconds its alarm handler sleeps, uniform in
            ``[min, max]``; long handlers make graceful stops drain for a while.
    """

    instances: int = 20
    request_rate: float = 10.0
    alarms_per_request: int = 1
    alarm_delay_s: tuple[float, float] = (1.0, 10.0)
    request_timeout_s: float = 5.0
    handler_s: tuple[float, float] = (0.0, 0.0)
    alarm_handler_s: tuple[float, float] = (0.0, 0.0)


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
        phantom_alarms: the exact number of phantom fires (an alarm fired that was
            never set, or after it was cancelled or done).
        min_availability: the smallest fraction of sent requests that got an ``ok`` response.
        max_availability: the largest such fraction, for scenarios that show an outage.
        max_concurrent_store_reads: the most store reads in flight at once.
        min_alarm_duplicates: the fewest duplicate handler runs, for scenarios
            that show at-least-once delivery.
        min_early_fires: the fewest early fires, for scenarios that show clock skew.
        max_early_s: the most seconds by which any fire may be early.
        max_alarm_lag_s: the most true seconds from an alarm's due time to its first fire.
        alarm_delivery: ``"holds"`` (no alarm lost) or ``"violated"``.
    """

    single_instance: str | None = None
    routing: str | None = None
    alarms_lost: int | None = None
    max_alarm_duplicates: int | None = None
    max_early_fires: int | None = None
    min_requests_served: int | None = None
    alarm_grace_s: float = 10.0
    phantom_alarms: int | None = None
    min_availability: float | None = None
    max_availability: float | None = None
    max_concurrent_store_reads: int | None = None
    min_alarm_duplicates: int | None = None
    min_early_fires: int | None = None
    max_early_s: float | None = None
    max_alarm_lag_s: float | None = None
    alarm_delivery: str | None = None
