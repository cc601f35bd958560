"""The logging and metrics observer: log lines, counters and the rate limit."""

from __future__ import annotations

import logging

import pytest

from simsi.core.alarms import Alarm, DoneReason
from simsi.core.errors import HandlerError, StoreUnavailableError
from simsi.host.metrics import HostMetrics
from simsi.host.observer import LoggingMetricsObserver, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_observer() -> tuple[LoggingMetricsObserver, HostMetrics, FakeClock]:
    metrics = HostMetrics("host-0", process_metrics=False)
    clock = FakeClock()
    return LoggingMetricsObserver(metrics, log_interval=10.0, clock=clock), metrics, clock


def value(metrics: HostMetrics, name: str, **labels: str) -> float:
    result = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if result is None else result


ALARM = Alarm("inst-1", "INTERNAL", "alarm-7", 1_000_000, attempt=2)


def test_rate_limiter_counts_suppressed() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock)
    first = limiter.admit("k")
    repeats = [limiter.admit("k") for _ in range(4)]
    other = limiter.admit("other")
    clock.now += 10.0
    later = limiter.admit("k")
    assert first == 0
    assert repeats == [None, None, None, None]
    assert other == 0
    assert later == 4


def test_store_errors_counted_and_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    observer, metrics, clock = make_observer()
    error = StoreUnavailableError("database is locked")
    with caplog.at_level(logging.WARNING, logger="simsi.host.store"):
        for _ in range(5):
            observer.store_failed("mark_alarm_done", 3, error, detail="instance 'inst-1'")
        clock.now += 11
        observer.store_failed("mark_alarm_done", 3, error)
    lines = [r.getMessage() for r in caplog.records if r.name == "simsi.host.store"]
    assert value(metrics, "simsi_store_errors_total", operation="mark_alarm_done") == 6
    assert len(lines) == 2
    assert "mark_alarm_done failed for shard 3 (instance 'inst-1')" in lines[0]
    assert "database is locked" in lines[0]
    assert "4 more like this" in lines[1]


def test_alarm_retry_logged_with_ids(caplog: pytest.LogCaptureFixture) -> None:
    observer, metrics, _clock = make_observer()
    error = HandlerError("inst-1", "on_alarm", ValueError("boom"))
    with caplog.at_level(logging.WARNING, logger="simsi.host.alarms"):
        observer.alarm_retry(3, ALARM, error, next_at=0.0)
        observer.alarm_retry(3, ALARM, error, next_at=0.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "simsi.host.alarms"]
    assert value(metrics, "simsi_alarms_retried_total") == 2
    assert len(lines) == 2
    assert "alarm 'alarm-7' of instance 'inst-1' failed on attempt 2" in lines[0]


def test_exhausted_alarm_logged_as_error(caplog: pytest.LogCaptureFixture) -> None:
    observer, metrics, _clock = make_observer()
    with caplog.at_level(logging.ERROR, logger="simsi.host.alarms"):
        observer.alarm_done(3, ALARM, DoneReason.ATTEMPTS_EXHAUSTED)
        observer.alarm_done(3, ALARM, DoneReason.SUCCEEDED)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert value(metrics, "simsi_alarms_exhausted_total") == 1
    assert value(metrics, "simsi_alarms_done_total", reason="attempts_exhausted") == 1
    assert value(metrics, "simsi_alarms_done_total", reason="succeeded") == 1
    assert len(errors) == 1
    assert "dropped after 3 failed attempts" in errors[0].getMessage()


def test_alarm_lag_histogram() -> None:
    observer, metrics, _clock = make_observer()
    for lag in (0.0004, 0.003, 2.0, -0.1):
        observer.alarm_fired(3, ALARM, lag)
    assert value(metrics, "simsi_alarms_fired_total") == 4
    assert value(metrics, "simsi_alarm_lag_seconds_count") == 4
    assert value(metrics, "simsi_alarm_lag_seconds_bucket", le="0.0005") == 2
    assert value(metrics, "simsi_alarm_lag_seconds_bucket", le="0.005") == 3


def test_swallowed_errors_logged_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    observer, metrics, _clock = make_observer()
    try:
        raise RuntimeError("callback broke")
    except RuntimeError as exc:
        error = exc
    with caplog.at_level(logging.ERROR, logger="simsi.host"):
        observer.error_swallowed("close callback of connection host-0:1", error)
    [record] = [r for r in caplog.records if r.name == "simsi.host"]
    assert value(metrics, "simsi_errors_swallowed_total") == 1
    assert "close callback of connection host-0:1" in record.getMessage()
    assert record.exc_info is not None


def test_lifecycle_lines(caplog: pytest.LogCaptureFixture) -> None:
    observer, metrics, clock = make_observer()
    with caplog.at_level(logging.INFO, logger="simsi.host"):
        observer.started("host-0", 342)
        clock.now += 0.25
        observer.ready("host-0", 17)
        observer.stopped("host-0")
    lines = [r.getMessage() for r in caplog.records if r.name == "simsi.host"]
    assert lines[0] == "host host-0 started: owns 342 shards; loading their alarms"
    assert "loaded in 0.250 s (17 alarms held in memory)" in lines[1]
    assert "manager closed" in lines[2]
    assert value(metrics, "simsi_owned_shards") == 342
    assert value(metrics, "simsi_ready") == 0
