"""Prometheus metrics of one host, in a registry of its own.

Each :class:`HostMetrics` owns a ``CollectorRegistry``, so several hosts in one
process (tests, benchmarks) never share or clash over metric names.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

#: Buckets of the alarm lag histogram in seconds: fine below 10 ms, where a
#: healthy host fires, and coarse up to a minute for a host catching up.
ALARM_LAG_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    5.0,
    30.0,
    60.0,
)

#: Buckets of the request duration histogram in seconds.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)

#: Prometheus text exposition content type.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class HostMetrics:
    """Every metric one host exports, registered in :attr:`registry`.

    Args:
        host_id: the host's id, exported as the ``host`` label of ``simsi_host_info``.
        process_metrics: whether to add the standard ``process_*`` metrics (CPU,
            memory, open files) to the registry.
    """

    def __init__(self, host_id: str, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        if process_metrics:
            ProcessCollector(registry=registry)
        self.info = Gauge(
            "simsi_host_info",
            "Constant 1, labelled with this host's id.",
            ["host"],
            registry=registry,
        )
        self.info.labels(host=host_id).set(1)

        # Requests and connections.
        self.http_requests = Counter(
            "simsi_http_requests",
            "HTTP responses sent, by route and status code.",
            ["route", "status"],
            registry=registry,
        )
        self._http_children: dict[tuple[str, int], Counter] = {}
        self.requests = Counter(
            "simsi_requests",
            "Instance requests handled on this host, by outcome (ok, error, timeout).",
            ["outcome"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "simsi_request_seconds",
            "Time from admitting a request to its handler's return, in seconds.",
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.forwarded = Counter(
            "simsi_forwarded_requests",
            "Requests and connections forwarded to their owner host, by outcome.",
            ["kind", "outcome"],
            registry=registry,
        )

        # Instances and ownership.
        self.activations = Counter(
            "simsi_activations", "Instances activated on this host.", registry=registry
        )
        self.deactivations = Counter(
            "simsi_deactivations", "Instances shut down on this host.", registry=registry
        )
        self.live_instances = Gauge(
            "simsi_live_instances", "Instances live on this host now.", registry=registry
        )
        self.live_connections = Gauge(
            "simsi_live_connections",
            "Open WebSocket connections, local and proxied to other hosts.",
            registry=registry,
        )
        self.handler_errors = Counter(
            "simsi_handler_errors",
            "User handler calls that raised or timed out, by handler.",
            ["handler"],
            registry=registry,
        )
        self.owned_shards = Gauge("simsi_owned_shards", "Shards this host owns.", registry=registry)
        self.ready = Gauge(
            "simsi_ready", "1 once the owned shards' alarms are loaded, else 0.", registry=registry
        )

        # Alarms.
        self.alarms_loaded = Counter(
            "simsi_alarms_loaded", "Alarms read from the store in pages.", registry=registry
        )
        self.alarms_set = Counter("simsi_alarms_set", "Alarms written.", registry=registry)
        self.alarms_fired = Counter(
            "simsi_alarms_fired", "Alarm deliveries started (retries included).", registry=registry
        )
        self.alarms_retried = Counter(
            "simsi_alarms_retried", "Failed alarm deliveries rescheduled.", registry=registry
        )
        self.alarms_exhausted = Counter(
            "simsi_alarms_exhausted",
            "Alarms dropped because their attempts ran out.",
            registry=registry,
        )
        self.alarms_done = Counter(
            "simsi_alarms_done",
            "Alarms removed from the store, by reason.",
            ["reason"],
            registry=registry,
        )
        self.alarm_lag = Histogram(
            "simsi_alarm_lag_seconds",
            "Seconds between an alarm's due time and the start of its delivery.",
            buckets=ALARM_LAG_BUCKETS,
            registry=registry,
        )

        # Store failures and errors that reach no caller.
        self.store_errors = Counter(
            "simsi_store_errors",
            "Failed alarm store calls, by operation.",
            ["operation"],
            registry=registry,
        )
        self.errors_swallowed = Counter(
            "simsi_errors_swallowed",
            "Errors caught and logged without reaching a caller.",
            registry=registry,
        )

    def count_http(self, route: str, status: int) -> None:
        """Count one HTTP response; the labelled counters are cached because this runs per request."""
        key = (route, status)
        counter = self._http_children.get(key)
        if counter is None:
            counter = self.http_requests.labels(route=route, status=str(status))
            self._http_children[key] = counter
        counter.inc()

    def bind_live_instances(self, count: Callable[[], float]) -> None:
        """Read the live instance gauge from ``count`` at every scrape."""
        self.live_instances.set_function(count)

    def render(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)
