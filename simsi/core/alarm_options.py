"""Tuning of alarm delivery, retries and loading."""

from __future__ import annotations

from dataclasses import dataclass

from simsi.core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AlarmOptions:
    """Tuning of alarm delivery, retries and loading.

    Attributes:
        max_attempts: deliveries before an alarm is dropped as ``attempts_exhausted``.
        backoff_base: seconds before the first retry; doubles with each failed attempt.
        backoff_cap: the maximum retry delay in seconds.
        jitter: fraction of the delay removed at random (0 to 1), so retries spread out.
        page_size: alarms read per store call; each shard holds at most twice this many.
        load_concurrency: shards whose pages may load at once.
        max_concurrent: alarm handlers that may run at once on this host.
        handler_timeout: seconds an ``on_alarm`` call may take, or ``None`` for no limit.
        store_retry_delay: seconds between retries of a failed store call.
        store_attempts: tries of a store call made while completing an alarm before it
            is left to fire again.
        resync_interval: seconds between re-reads of each owned shard's first page,
            which pick up alarms another process wrote below the loaded frontier (an
            old owner during a hosts-pattern rollout, say); ``None`` turns it off.
    """

    max_attempts: int = 5
    backoff_base: float = 0.1
    backoff_cap: float = 30.0
    jitter: float = 0.2
    page_size: int = 256
    load_concurrency: int = 8
    max_concurrent: int = 64
    handler_timeout: float | None = 60.0
    store_retry_delay: float = 0.5
    store_attempts: int = 5
    resync_interval: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_attempts", "page_size", "load_concurrency", "max_concurrent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"AlarmOptions.{name} must be an integer >= 1, got {value!r}")
        if self.store_attempts < 1:
            raise ConfigError(
                f"AlarmOptions.store_attempts must be >= 1, got {self.store_attempts}"
            )
        if self.resync_interval is not None and not self.resync_interval > 0:
            raise ConfigError(
                f"AlarmOptions.resync_interval must be a positive number of seconds or None, "
                f"got {self.resync_interval!r}"
            )
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"AlarmOptions.jitter must be between 0 and 1, got {self.jitter!r}")
        if self.backoff_base < 0 or self.backoff_cap < self.backoff_base:
            raise ConfigError(
                f"AlarmOptions needs 0 <= backoff_base <= backoff_cap, got "
                f"backoff_base={self.backoff_base!r}, backoff_cap={self.backoff_cap!r}"
            )

    def retry_delay(self, failed_attempts: int, random: float) -> float:
        """Return the delay in seconds before the retry after ``failed_attempts`` failures."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (failed_attempts - 1))
        return delay * (1 - self.jitter * random)
