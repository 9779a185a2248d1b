"""Smoothness metrics against signals with known answers."""

import numpy as np
import pytest

from smoothrl import metrics


def test_finite_differences_match_hand_computed_sequences():
    a = np.array([0.0, 1.0, 4.0, 9.0, 16.0, 25.0])  # t^2
    np.testing.assert_array_equal(metrics.finite_difference(a, 1), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(metrics.finite_difference(a, 2), [2, 2, 2, 2])
    np.testing.assert_array_equal(metrics.finite_difference(a, 3), [0, 0, 0])
    b = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    expected_jerk = [b[3] - 3 * b[2] + 3 * b[1] - b[0], b[4] - 3 * b[3] + 3 * b[2] - b[1]]
    np.testing.assert_allclose(metrics.finite_difference(b, 3), expected_jerk)


def test_constant_signal_is_perfectly_smooth():
    a = np.full((50, 3), 0.7)
    assert metrics.continuity_cost(a, -1, 1) == 0.0
    assert metrics.jerk_rms(a, -1, 1) == 0.0
    assert metrics.sm(a, -1, 1) == pytest.approx(0.0, abs=1e-15)


def test_ramp_has_constant_velocity_and_no_jerk():
    t = np.arange(101, dtype=float)
    a = -2.0 + 0.04 * t  # from -2 to 2 over 100 steps, bounds [-2, 2]
    # each step moves 0.04 / 4 = 1% of the range: squared 1e-4
    assert metrics.continuity_cost(a, -2.0, 2.0) == pytest.approx(1e-4)
    assert metrics.jerk_rms(a, -2.0, 2.0) == pytest.approx(0.0, abs=1e-12)
    assert metrics.smoothness_report(a, -2.0, 2.0)["continuity_cost"] == pytest.approx(1e-2)


def test_sine_of_known_frequency():
    n, k, amp = 256, 8, 0.25  # 8 cycles in 256 steps: f0 = 1/32 cycles per step, on a bin
    t = np.arange(n)
    u = 0.5 + amp * np.sin(2 * np.pi * k * t / n)
    f, mag = metrics.amplitude_spectrum(u)
    assert f[k] == pytest.approx(k / n)
    assert mag[k] == pytest.approx(amp)
    assert mag[0] == pytest.approx(0.5)
    n_bins = n // 2 + 1
    assert metrics.sm(u) == pytest.approx(2.0 / n_bins * amp * k / n)
    # Sm does not depend on the sampling frequency
    assert metrics.sm(u, fs=50.0) == pytest.approx(metrics.sm(u))
    # a sine at twice the frequency scores twice as high
    u2 = 0.5 + amp * np.sin(2 * np.pi * 2 * k * t / n)
    assert metrics.sm(u2) == pytest.approx(2 * metrics.sm(u))
    # continuity cost of a sine: mean of (A (sin(w(t+1)) - sin(wt)))^2 = 2 A^2 sin^2(w/2)
    w = 2 * np.pi * k / n
    full = 0.5 + amp * np.sin(w * np.arange(n + 1))
    assert metrics.continuity_cost(full) == pytest.approx(2 * amp**2 * np.sin(w / 2) ** 2, rel=1e-2)


def test_square_wave():
    # period-2 square wave over the full range: every step a full jump
    u = np.tile([0.0, 1.0], 64)
    assert metrics.continuity_cost(u) == pytest.approx(1.0)
    # jerk of +-1 alternation: 1 - 3(0) + 3(1) - 0 = 4 in magnitude every step
    assert metrics.jerk_rms(u) == pytest.approx(4.0)
    # all energy at Nyquist: M = 0.5 at f = 0.5, n = 65 bins
    assert metrics.sm(u) == pytest.approx(2.0 / 65 * 0.5 * 0.5)
    # period-16 square wave: 2 switches per period
    sq = np.tile(np.r_[np.zeros(8), np.ones(8)], 6)
    assert metrics.continuity_cost(sq) == pytest.approx(11 / 95)
    assert metrics.switches_per_day(sq, steps_per_day=48).tolist() == [11 / 2]


def test_switches_per_day_counts_each_equipment():
    on = np.array([[0, 1], [1, 1], [1, 0], [0, 0], [0, 1], [0, 1], [1, 1], [1, 1]])
    # equipment 0 switches 3 times, equipment 1 switches 2 times, over 8 steps = 2 days of 4 steps
    np.testing.assert_allclose(metrics.switches_per_day(on, steps_per_day=4), [1.5, 1.0])
    # from an initial state: a switch into the first sample counts too
    np.testing.assert_allclose(metrics.switches_per_day(on, steps_per_day=4, initial=[1, 1]), [2.0, 1.0])
    with pytest.raises(ValueError, match="steps_per_day"):
        metrics.switches_per_day(on, 0)


def test_normalization_and_multi_dimensional_bounds():
    a = np.array([[0.0, 10.0], [2.0, 20.0]])
    u = metrics.normalize_actions(a, low=[0.0, 0.0], high=[2.0, 20.0])
    np.testing.assert_allclose(u, [[0.0, 0.5], [1.0, 1.0]])
    # dimension 0 jumps the full range, dimension 1 half of it: mean of 1 and 0.25
    assert metrics.continuity_cost(a, [0.0, 0.0], [2.0, 20.0]) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="bounds"):
        metrics.normalize_actions(a, low=0.0, high=0.0)


def test_too_short_traces_give_nan_and_mean_ignores_them():
    assert np.isnan(metrics.continuity_cost([0.3]))
    assert np.isnan(metrics.jerk_rms([0.1, 0.2, 0.3]))
    assert np.isnan(metrics.sm([0.5]))
    reports = [{"jerk_rms": float("nan"), "x": 1.0}, {"jerk_rms": 2.0, "x": 3.0}]
    assert metrics.mean_report(reports) == {"jerk_rms": 2.0, "x": 2.0}
