"""HostClock: readings under offset, drift and steps, their inverse, and input checks."""

import math

import pytest

from simsi.core.errors import ConfigError
from simsi.sim.clock import DEFAULT_EPOCH, HostClock


def test_default_reads_epoch_plus_true_time():
    clock = HostClock()
    assert clock.read(0.0) == DEFAULT_EPOCH
    assert clock.read(12.5) == DEFAULT_EPOCH + 12.5
    assert clock.rate == 1.0


def test_constant_parameters_follow_formula():
    clock = HostClock(epoch=1000.0, offset=-3.0, drift_ppm=250.0)
    for true_time in (0.0, 1.0, 400.0, 86_400.0):
        expected = 1000.0 - 3.0 + (1 + 250.0e-6) * true_time
        assert clock.read(true_time) == pytest.approx(expected, abs=1e-9)


def test_step_forward_from_given_time():
    clock = HostClock(epoch=0.0)
    clock.step(30.0, at=10.0)
    assert clock.read(9.0) == 9.0
    assert clock.read(10.0) == 40.0
    assert clock.read(15.0) == 45.0
    assert clock.steps == 30.0


def test_step_backward_repeats_readings():
    clock = HostClock(epoch=0.0)
    clock.step(-5.0, at=20.0)
    assert clock.read(19.0) == 19.0
    assert clock.read(20.0) == 15.0
    assert clock.read(24.0) == 19.0
    assert clock.steps == -5.0


def test_steps_accumulate():
    clock = HostClock(epoch=0.0)
    clock.step(2.0, at=1.0)
    clock.step(3.0, at=2.0)
    clock.step(-1.0, at=3.0)
    assert clock.steps == 4.0
    assert clock.read(10.0) == 14.0


def test_set_offset_jumps_by_difference():
    clock = HostClock(epoch=0.0, offset=1.0)
    clock.set_offset(5.0, at=10.0)
    assert clock.offset == 5.0
    assert clock.read(9.0) == 10.0
    assert clock.read(10.0) == 15.0
    assert clock.read(11.0) == 16.0


def test_drift_change_is_continuous():
    clock = HostClock(epoch=0.0)
    clock.set_drift_ppm(1000.0, at=100.0)
    assert clock.drift_ppm == 1000.0
    assert clock.rate == pytest.approx(1.001)
    assert clock.read(100.0) == 100.0
    assert clock.read(200.0) == pytest.approx(200.1)


def test_changes_at_same_time_combine():
    clock = HostClock(epoch=0.0)
    clock.step(1.0, at=5.0)
    clock.set_drift_ppm(100_000.0, at=5.0)
    clock.step(2.0, at=5.0)
    assert clock.read(4.0) == 4.0
    assert clock.read(5.0) == 8.0
    assert clock.read(15.0) == pytest.approx(19.0)


def test_read_before_changes_uses_history():
    clock = HostClock(epoch=0.0, drift_ppm=100_000.0)
    clock.step(10.0, at=10.0)
    clock.set_drift_ppm(0.0, at=20.0)
    assert clock.read(5.0) == pytest.approx(5.5)
    assert clock.read(10.0) == pytest.approx(21.0)
    assert clock.read(20.0) == pytest.approx(32.0)
    assert clock.read(30.0) == pytest.approx(42.0)
    assert clock.read(-10.0) == pytest.approx(-11.0)


def test_change_before_previous_rejected():
    clock = HostClock()
    clock.step(1.0, at=10.0)
    with pytest.raises(ConfigError, match=r"at=9\.0") as info:
        clock.step(1.0, at=9.0)
    assert "10.0" in str(info.value)


def test_true_duration_divides_by_rate():
    clock = HostClock(drift_ppm=-200_000.0)
    assert clock.true_duration(8.0) == pytest.approx(10.0)


def test_true_time_at_inverts_read():
    clock = HostClock(offset=7.0, drift_ppm=-30_000.0)
    clock.step(-2.0, at=50.0)
    now_true = 60.0
    host_time = clock.read(now_true) + 97.0
    true_time = clock.true_time_at(host_time, now_true)
    assert clock.read(true_time) == pytest.approx(host_time)
    assert true_time == pytest.approx(now_true + 97.0 / 0.97)


def test_true_time_at_past_reading_is_now():
    clock = HostClock()
    assert clock.true_time_at(DEFAULT_EPOCH - 100.0, 40.0) == 40.0


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"offset": math.nan}, "nan"),
        ({"offset": math.inf}, "inf"),
        ({"epoch": math.nan}, "nan"),
        ({"drift_ppm": math.nan}, "nan"),
        ({"drift_ppm": -1_000_000.0}, "-1000000.0"),
        ({"drift_ppm": -2_000_000}, "-2000000"),
    ],
)
def test_constructor_rejects_invalid(kwargs, shown):
    with pytest.raises(ConfigError) as info:
        HostClock(**kwargs)
    assert shown in str(info.value)


def test_setters_reject_invalid():
    clock = HostClock()
    with pytest.raises(ConfigError, match="nan"):
        clock.step(math.nan, at=1.0)
    with pytest.raises(ConfigError, match="inf"):
        clock.set_offset(-math.inf, at=1.0)
    with pytest.raises(ConfigError, match="-1000000"):
        clock.set_drift_ppm(-1_000_000, at=1.0)
    with pytest.raises(ConfigError, match="nan"):
        clock.step(1.0, at=math.nan)
    with pytest.raises(ConfigError, match="nan"):
        clock.true_time_at(math.nan, 0.0)
    assert clock.read(5.0) == DEFAULT_EPOCH + 5.0


def test_drift_just_above_limit_accepted():
    clock = HostClock(epoch=0.0, drift_ppm=-999_999.0)
    assert clock.rate == pytest.approx(1e-6)
    assert clock.read(1_000_000.0) == pytest.approx(1.0)


def test_repr_shows_parameters():
    clock = HostClock(offset=1.5, drift_ppm=20.0)
    clock.step(3.0, at=0.0)
    text = repr(clock)
    assert "offset=1.5" in text
    assert "drift_ppm=20.0" in text
    assert "steps=3.0" in text
