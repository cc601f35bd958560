"""The production observer: log lines and Prometheus metrics for the manager's events.

The core never logs. :class:`LoggingMetricsObserver` receives the manager's
hooks and writes them to named loggers (``simsi.host`` for lifecycle,
``simsi.host.alarms`` for alarms, ``simsi.host.store`` for store failures,
``simsi.host.handlers`` for user handler failures) and to :class:`HostMetrics`.
Store failures, handler failures and swallowed errors are counted in full but
logged at most once per kind and interval, with the number left out, so an
outage or a handler that always fails cannot flood the log. Every alarm retry
and every dropped alarm is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from simsi.core.alarms import Alarm, DoneReason
from simsi.core.errors import HandlerTimeoutError
from simsi.core.observer import ManagerObserver
from simsi.host.metrics import HostMetrics

log = logging.getLogger("simsi.host")
alarm_log = logging.getLogger("simsi.host.alarms")
store_log = logging.getLogger("simsi.host.store")
handler_log = logging.getLogger("simsi.host.handlers")


class RateLimiter:
    """Decides which of many repeated events to log: the first per key and interval.

    Args:
        interval: seconds during which further events of one key are only counted.
        clock: a monotonic clock in seconds (``time.monotonic`` by default).
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def admit(self, key: str) -> int | None:
        """Return how many events of ``key`` were suppressed since the last logged one.

        Returns ``None`` when this event should not be logged either.
        """
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


def _suppressed_note(count: int, interval: float) -> str:
    if not count:
        return ""
    return f" ({count} more like this in the last {interval:g} s were counted but not logged)"


class LoggingMetricsObserver(ManagerObserver):
    """Logs the manager's events and updates the host's Prometheus metrics.

    Args:
        metrics: the host's metrics.
        log_interval: seconds between two log lines about the same repeated error.
        clock: a monotonic clock for the rate limit and load timing.
    """

    def __init__(
        self,
        metrics: HostMetrics,
        *,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self._interval = log_interval
        self._limiter = RateLimiter(log_interval, clock)
        self._clock = clock
        self._started_at = 0.0
        # Labelled children looked up once, because request_finished runs per request.
        self._request_outcomes = {
            outcome: metrics.requests.labels(outcome=outcome)
            for outcome in ("ok", "error", "timeout")
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def started(self, host_id: str, shards: int) -> None:
        """Log the start and the number of owned shards."""
        self._started_at = self._clock()
        self.metrics.owned_shards.set(shards)
        self.metrics.ready.set(0)
        log.info("host %s started: owns %d shards; loading their alarms", host_id, shards)

    def ready(self, host_id: str, alarms_loaded: int) -> None:
        """Log readiness with the number of alarms held and the load time."""
        self.metrics.ready.set(1)
        seconds = self._clock() - self._started_at
        log.info(
            "host %s ready: first alarm page of every owned shard loaded in %.3f s "
            "(%d alarms held in memory)",
            host_id,
            seconds,
            alarms_loaded,
        )

    def stopped(self, host_id: str) -> None:
        """Log that the manager finished closing."""
        self.metrics.ready.set(0)
        log.info("host %s manager closed: every instance and alarm handler finished", host_id)

    def activated(self, instance_id: str, internal_id: str, shard: int) -> None:
        """Count an activation."""
        self.metrics.activations.inc()
        log.debug("activated instance %r (shard %d)", instance_id, shard)

    def deactivated(self, instance_id: str, internal_id: str, shard: int) -> None:
        """Count a deactivation."""
        self.metrics.deactivations.inc()
        log.debug("deactivated instance %r (shard %d)", instance_id, shard)

    # -- requests and handlers -----------------------------------------------------------------

    def request_finished(
        self, instance_id: str, seconds: float, error: BaseException | None
    ) -> None:
        """Count a request by outcome and record its duration."""
        if error is None:
            outcome = "ok"
        elif isinstance(error, HandlerTimeoutError):
            outcome = "timeout"
        else:
            outcome = "error"
        self._request_outcomes[outcome].inc()
        self.metrics.request_seconds.observe(seconds)

    def handler_failed(self, instance_id: str, handler: str, error: BaseException) -> None:
        """Count a failed handler call and log it, rate-limited per handler name."""
        self.metrics.handler_errors.labels(handler=handler).inc()
        suppressed = self._limiter.admit(f"handler:{handler}")
        if suppressed is None:
            return
        handler_log.warning(
            "%s of instance %r failed: %s: %s%s",
            handler,
            instance_id,
            type(error).__name__,
            error,
            _suppressed_note(suppressed, self._interval),
        )

    # -- alarms --------------------------------------------------------------------------------

    def shard_loaded(self, shard: int, alarms: int, exhausted: bool) -> None:
        """Count loaded alarms and log the page at debug level."""
        self.metrics.alarms_loaded.inc(alarms)
        alarm_log.debug(
            "loaded %d alarms of shard %d%s", alarms, shard, " (all)" if exhausted else ""
        )

    def alarm_set(self, shard: int, alarm: Alarm) -> None:
        """Count a stored alarm."""
        self.metrics.alarms_set.inc()

    def alarm_fired(self, shard: int, alarm: Alarm, lag: float) -> None:
        """Count a delivery and record its lag."""
        self.metrics.alarms_fired.inc()
        self.metrics.alarm_lag.observe(max(0.0, lag))

    def alarm_retry(self, shard: int, alarm: Alarm, error: BaseException, next_at: float) -> None:
        """Log every retry with the instance and alarm ids."""
        self.metrics.alarms_retried.inc()
        alarm_log.warning(
            "alarm %r of instance %r failed on attempt %d: %s: %s; retrying in %.3f s",
            alarm.alarm_id,
            alarm.instance_id,
            alarm.attempt,
            type(error).__name__,
            error,
            max(0.0, next_at - time.time()),
        )

    def alarm_done(self, shard: int, alarm: Alarm, reason: DoneReason) -> None:
        """Count a removed alarm; log an alarm dropped because its attempts ran out."""
        self.metrics.alarms_done.labels(reason=reason.value).inc()
        if reason is DoneReason.ATTEMPTS_EXHAUSTED:
            self.metrics.alarms_exhausted.inc()
            alarm_log.error(
                "alarm %r of instance %r dropped after %d failed attempts",
                alarm.alarm_id,
                alarm.instance_id,
                alarm.attempt + 1,
            )

    # -- errors --------------------------------------------------------------------------------

    def store_failed(
        self, operation: str, shard: int, error: BaseException, *, detail: str = ""
    ) -> None:
        """Count a store failure and log it, rate-limited per operation."""
        self.metrics.store_errors.labels(operation=operation).inc()
        suppressed = self._limiter.admit(f"store:{operation}")
        if suppressed is None:
            return
        store_log.warning(
            "alarm store %s failed for shard %d%s: %s: %s; retrying%s",
            operation,
            shard,
            f" ({detail})" if detail else "",
            type(error).__name__,
            error,
            _suppressed_note(suppressed, self._interval),
        )

    def error_swallowed(self, where: str, error: BaseException, *, detail: str = "") -> None:
        """Count an error that reached no caller and log it, rate-limited per place."""
        self.metrics.errors_swallowed.inc()
        suppressed = self._limiter.admit(f"swallowed:{where}")
        if suppressed is None:
            return
        log.error(
            "error in %s%s: %s: %s%s",
            where,
            f" ({detail})" if detail else "",
            type(error).__name__,
            error,
            _suppressed_note(suppressed, self._interval),
            exc_info=error,
        )
