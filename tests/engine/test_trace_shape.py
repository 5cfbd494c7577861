"""Slow background sources are told from calcium transients by how fast their traces forget."""

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

from cnmflow.engine.trace_shape import forgetting_lag, lagged_autocorrelation, transient_like


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
