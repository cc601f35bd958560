"""Simulated host clocks: offset, drift and steps relative to true simulated time.

True time is the SimPy environment's ``env.now`` (seconds since the start of the
simulation). A :class:`HostClock` maps it to what one host's ``time.time()``
would return: with the offset, drift and steps set at true time 0 and never
changed, ``read(t) = epoch + offset + (1 + drift_ppm * 1e-6) * t + steps``.

Changes made later take effect at a given true time and keep earlier readings as
they were. A drift change bends the clock without a jump, while an offset change
or a step jumps it by the difference. The clock stores one linear segment per
change, so :meth:`HostClock.read` also returns the readings of true times before
the last change.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from simsi.core.errors import ConfigError

DEFAULT_EPOCH = 1_700_000_000.0
"""Host clock reading at true time 0 (2023-11-14 22:13:20 UTC), so readings look like Unix time."""

MIN_DRIFT_PPM = -1_000_000.0
"""Drift at which the clock would stop; valid drift must be greater than this."""


class HostClock:
    """One host's clock as a function of true simulated time.

    Args:
        epoch: host reading at true time 0 before offset, in seconds since the
            Unix epoch.
        offset: seconds added to every reading (positive means the host runs ahead).
        drift_ppm: rate error in parts per million; ``+100`` gains 100 µs per
            true second. Must be greater than ``-1_000_000`` so the clock moves forward.

    Raises:
        ConfigError: a value is NaN or infinite, or ``drift_ppm`` is not greater
            than ``-1_000_000``.

    Sleeping ``s`` host seconds takes ``s / rate`` true seconds, computed with
    the rate in force when the sleep starts (see :meth:`true_duration`). A step
    or offset change during a sleep does not shorten or lengthen it, as with
    monotonic sleeps on real machines, whose clocks ignore wall-clock steps.
    """

    __slots__ = ("_drift_ppm", "_epoch", "_offset", "_rate", "_segments", "_starts", "_steps")

    def __init__(
        self, *, epoch: float = DEFAULT_EPOCH, offset: float = 0.0, drift_ppm: float = 0.0
    ) -> None:
        _require_finite("epoch", epoch)
        _require_finite("offset", offset)
        _require_drift(drift_ppm)
        self._epoch = float(epoch)
        self._offset = float(offset)
        self._drift_ppm = float(drift_ppm)
        self._rate = 1.0 + self._drift_ppm * 1e-6
        self._steps = 0.0
        # Segment i covers true times from _starts[i] on and is (anchor true time,
        # host reading at the anchor, rate). The first segment covers all earlier
        # times and is anchored at true time 0. Later ones are anchored at their start.
        self._starts: list[float] = [-math.inf]
        self._segments: list[tuple[float, float, float]] = [
            (0.0, self._epoch + self._offset, self._rate)
        ]

    def __repr__(self) -> str:
        return (
            f"HostClock(epoch={self._epoch!r}, offset={self._offset!r}, "
            f"drift_ppm={self._drift_ppm!r}, steps={self._steps!r})"
        )

    @property
    def epoch(self) -> float:
        """Host reading at true time 0 before the offset, in seconds since the Unix epoch."""
        return self._epoch

    @property
    def offset(self) -> float:
        """Current offset in seconds, as last set by the constructor or :meth:`set_offset`."""
        return self._offset

    @property
    def drift_ppm(self) -> float:
        """Current rate error in parts per million."""
        return self._drift_ppm

    @property
    def rate(self) -> float:
        """Host seconds per true second, ``1 + drift_ppm * 1e-6``."""
        return self._rate

    @property
    def steps(self) -> float:
        """Sum of all :meth:`step` amounts in seconds."""
        return self._steps

    def read(self, true_time: float) -> float:
        """Return the host clock reading at ``true_time``, in seconds since the Unix epoch.

        Args:
            true_time: simulated true time (``env.now``).
        """
        if true_time >= self._starts[-1]:
            anchor, host_at_anchor, rate = self._segments[-1]
        else:
            anchor, host_at_anchor, rate = self._segments[bisect_right(self._starts, true_time) - 1]
        return host_at_anchor + rate * (true_time - anchor)

    def set_offset(self, offset: float, *, at: float) -> None:
        """Change the offset from true time ``at`` on, jumping the clock by the difference.

        Args:
            offset: the new offset in seconds.
            at: true time of the change, not earlier than the previous change.

        Raises:
            ConfigError: ``offset`` or ``at`` is NaN or infinite, or ``at`` is
                earlier than the previous change.
        """
        _require_finite("offset", offset)
        self._jump(float(offset) - self._offset, at)
        self._offset = float(offset)

    def step(self, seconds: float, *, at: float) -> None:
        """Jump the clock by ``seconds`` (negative steps it back) from true time ``at`` on.

        Readings before ``at`` are unchanged. Ongoing sleeps are not shortened.

        Args:
            seconds: the step in seconds, forward if positive.
            at: true time of the step, not earlier than the previous change.

        Raises:
            ConfigError: ``seconds`` or ``at`` is NaN or infinite, or ``at`` is
                earlier than the previous change.
        """
        _require_finite("step seconds", seconds)
        self._jump(float(seconds), at)
        self._steps += float(seconds)

    def set_drift_ppm(self, drift_ppm: float, *, at: float) -> None:
        """Change the rate error from true time ``at`` on, without a jump in the reading.

        Sleeps already running keep the rate they started with.

        Args:
            drift_ppm: the new rate error in parts per million, greater than ``-1_000_000``.
            at: true time of the change, not earlier than the previous change.

        Raises:
            ConfigError: a value is NaN or infinite, ``drift_ppm`` is not greater
                than ``-1_000_000``, or ``at`` is earlier than the previous change.
        """
        _require_drift(drift_ppm)
        self._check_at(at)
        rate = 1.0 + float(drift_ppm) * 1e-6
        self._add_segment(at, self.read(at), rate)
        self._drift_ppm = float(drift_ppm)
        self._rate = rate

    def true_duration(self, host_seconds: float) -> float:
        """Return the true seconds that ``host_seconds`` of this clock take at the current rate."""
        return host_seconds / self._rate

    def true_time_at(self, host_time: float, now_true: float) -> float:
        """Return the true time at which the clock will read ``host_time``.

        Assumes the current offset, rate and steps stay as they are. A reading
        already reached at ``now_true`` gives ``now_true``.

        Args:
            host_time: a host reading in seconds since the Unix epoch.
            now_true: the current true time (``env.now``).

        Raises:
            ConfigError: ``host_time`` or ``now_true`` is NaN or infinite.
        """
        _require_finite("host_time", host_time)
        _require_finite("now_true", now_true)
        remaining = host_time - self.read(now_true)
        if remaining <= 0.0:
            return float(now_true)
        return now_true + remaining / self._rate

    def _jump(self, seconds: float, at: float) -> None:
        self._check_at(at)
        self._add_segment(at, self.read(at) + seconds, self._rate)

    def _check_at(self, at: float) -> None:
        _require_finite("at", at)
        last = self._starts[-1]
        if at < last:
            raise ConfigError(
                f"invalid clock change time at={at!r}: it is before the previous change "
                f"at {last!r}; apply clock changes in true-time order"
            )

    def _add_segment(self, at: float, host_at_start: float, rate: float) -> None:
        segment = (float(at), host_at_start, rate)
        if at == self._starts[-1]:
            self._segments[-1] = segment
            return
        self._starts.append(float(at))
        self._segments.append(segment)


def _require_finite(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"invalid clock {name} {value!r}: expected a finite number of seconds")


def _require_drift(drift_ppm: float) -> None:
    if not isinstance(drift_ppm, int | float) or not math.isfinite(drift_ppm):
        raise ConfigError(f"invalid drift_ppm {drift_ppm!r}: expected a finite number")
    if drift_ppm <= MIN_DRIFT_PPM:
        raise ConfigError(
            f"invalid drift_ppm {drift_ppm!r}: it must be greater than -1000000 "
            "(at -1000000 the clock stops); use a value like 50 or -50"
        )
