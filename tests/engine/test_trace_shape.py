"""Slow background sources are told from calcium transients by how fast their traces forget."""

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

from cnmflow.engine.quality import trace_snr
from cnmflow.engine.trace_shape import (VESSEL_MIN_SKEW, forgetting_lag, lagged_autocorrelation, never_at_rest,
                                        rest_fraction, skewed_up, skewness, transient_like)

MIN_SKEW = VESSEL_MIN_SKEW


def _calcium(rng, T, *, g=0.78, rate=0.03):
    spikes = (rng.random(T) < rate) * rng.uniform(0.5, 1.5, T)
    return lfilter([1.0], [1.0, -g], spikes) + 0.05 * rng.standard_normal(T)


def test_lag_spans_two_and_a_half_decay_times():
    assert forgetting_lag(fr=10.0, decay_time=0.4) == 10
    assert forgetting_lag(fr=10.0, decay_time=0.4, tsub=2) == 5
    assert forgetting_lag(fr=30.0, decay_time=1.0) == 75


def test_sparse_transients_pass_and_slow_drifts_do_not():
    rng = np.random.default_rng(0)
    transients = np.vstack([_calcium(rng, 2000) for _ in range(20)])
    drifts = np.vstack([np.exp(gaussian_filter1d(rng.standard_normal(2000), 30) * 8) for _ in range(20)])
    lag = forgetting_lag(fr=10.0, decay_time=0.4)
    assert transient_like(transients, lag=lag).all()
    assert not transient_like(drifts, lag=lag).any()


def test_too_short_to_judge_means_keep():
    rng = np.random.default_rng(1)
    slow = np.cumsum(rng.standard_normal((3, 60)), axis=1)
    assert transient_like(slow, lag=10).all()   # 60 samples < 10 lags of 10


def test_constant_trace_has_zero_autocorrelation():
    assert lagged_autocorrelation(np.ones((1, 50)), 5)[0] == 0.0


def _denoised(rng, T, *, g=0.9, rate=0.02):
    """A denoised calcium trace: sparse transients on a flat baseline."""
    spikes = (rng.random(T) < rate) * rng.uniform(0.5, 1.5, T)
    return 0.1 + lfilter([1.0], [1.0, -g], spikes)


def test_a_cell_rests_between_transients_and_is_kept_at_any_snr():
    rng = np.random.default_rng(2)
    cells = np.vstack([_denoised(rng, 1200) for _ in range(10)])
    assert (rest_fraction(cells) < 0.05).all()
    assert not never_at_rest(cells, np.full(10, 1.0)).any()     # a dim cell is not rejected for its SNR alone


def test_a_wandering_low_snr_trace_is_rejected_a_fast_firing_bright_cell_is_not():
    rng = np.random.default_rng(3)
    T = 1200
    wandering = np.vstack([0.2 + np.abs(gaussian_filter1d(rng.standard_normal(T), 2)) for _ in range(5)])
    assert (rest_fraction(wandering) > 0.1).all()
    noise = 0.3 * rng.standard_normal((5, T))
    snr = trace_snr(wandering + noise, window=8)
    assert (snr < 4).all() and never_at_rest(wandering, snr).all()
    busy = np.vstack([_denoised(rng, T, rate=0.3) for _ in range(5)])   # never back at baseline either
    assert (rest_fraction(busy) > 0.1).all()
    assert not never_at_rest(busy, np.full(5, 6.0)).any()   # but its transients stand out of the noise


def test_a_constant_trace_rests():
    assert rest_fraction(np.ones((2, 40)))[0] == 0.0
    assert rest_fraction(np.zeros((1, 0)))[0] == 0.0


def _vessel(rng, T, *, fr=10.0):
    """A trace that follows a vessel's pulsing: vasomotion, slow noise and the heartbeat aliased, over a baseline."""
    t = np.arange(T) / fr
    slow = gaussian_filter1d(rng.standard_normal(T), 2 * fr)
    return (1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t) + 0.08 * slow / slow.std()
            + 0.04 * np.sin(2 * np.pi * rng.uniform(8.0, 10.0) * t))


def test_calcium_is_skewed_up_a_vessels_pulsing_is_not():
    rng = np.random.default_rng(4)
    cells = np.vstack([_denoised(rng, 1200, rate=r) for r in (0.005, 0.01, 0.02) for _ in range(10)])  # ≤ 0.2 Hz
    vessels = np.vstack([_vessel(rng, 1200) for _ in range(10)])
    assert skewed_up(cells, MIN_SKEW).all()
    assert (np.abs(skewness(vessels)) < 1.0).all() and not skewed_up(vessels, MIN_SKEW).any()
    busy = np.vstack([_denoised(rng, 1200, rate=0.1) for _ in range(5)])   # 1 Hz at 10 Hz: transients overlap
    assert not skewed_up(busy, MIN_SKEW).any()   # the rule's cost: a cell that fires all the time is not skewed up


def test_skewness_is_the_third_standardised_moment():
    x = np.r_[np.zeros(8), 1.0, 3.0]
    centred = x - x.mean()
    assert np.isclose(skewness(x)[0], (centred ** 3).mean() / (centred ** 2).mean() ** 1.5)
    assert skewness(np.ones((2, 30)))[1] == 0.0 and skewness(-x)[0] == -skewness(x)[0]
