"""Hooks through which drivers see what the core does.

The core never logs or measures. Drivers subclass :class:`ManagerObserver` and
pass it to the :class:`~simsi.core.manager.InterfaceManager`: the production host
turns the calls into log lines and Prometheus metrics, the simulator into trace
events. Every method is a no-op here, and an observer must not block or raise.
"""

from __future__ import annotations

from simsi.core.alarms import Alarm, DoneReason


class ManagerObserver:
    """No-op base class for the manager's observation hooks."""

    def started(self, host_id: str, shards: int) -> None:
        """The manager started and owns ``shards`` shards."""

    def ready(self, host_id: str, alarms_loaded: int) -> None:
        """The first page of every owned shard is loaded."""

    def stopped(self, host_id: str) -> None:
        """The manager finished closing."""

    def activated(self, instance_id: str, internal_id: str, shard: int) -> None:
        """A live instance was created."""

    def deactivated(self, instance_id: str, internal_id: str, shard: int) -> None:
        """A live instance was shut down and dropped."""

    def request_finished(
        self, instance_id: str, seconds: float, error: BaseException | None
    ) -> None:
        """A request completed; ``error`` is the handler's exception, if any."""

    def handler_failed(self, instance_id: str, handler: str, error: BaseException) -> None:
        """A user handler raised; the error was returned to the caller or retried."""

    def shard_loaded(self, shard: int, alarms: int, exhausted: bool) -> None:
        """A page of ``alarms`` alarms of ``shard`` was loaded from the store."""

    def alarm_set(self, shard: int, alarm: Alarm) -> None:
        """An alarm was written to the store."""

    def alarm_fired(self, shard: int, alarm: Alarm, lag: float) -> None:
        """An alarm's handler is about to run; ``lag`` is host-clock seconds past its time."""

    def alarm_handled(self, shard: int, alarm: Alarm) -> None:
        """An alarm's handler succeeded, and ``mark_alarm_done`` has not been called yet."""

    def alarm_retry(self, shard: int, alarm: Alarm, error: BaseException, next_at: float) -> None:
        """An alarm's handler failed and the alarm was rescheduled for ``next_at``."""

    def alarm_done(self, shard: int, alarm: Alarm, reason: DoneReason) -> None:
        """An alarm left the store."""

    def store_failed(
        self, operation: str, shard: int, error: BaseException, *, detail: str = ""
    ) -> None:
        """A store call failed; the manager retries it or leaves the alarm to fire again."""

    def error_swallowed(self, where: str, error: BaseException, *, detail: str = "") -> None:
        """An error was caught and not re-raised (close callbacks, observer bugs, ...)."""
