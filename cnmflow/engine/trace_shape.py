"""Telling neurons from slowly fluctuating background sources by how fast their traces forget.

A neuron's calcium is sparse transients that decay within a few ``decay_time``; out-of-focus
neuropil and blood-flow sources drift over seconds. So the autocorrelation of a trace at a lag
of 2.5 decay times (where an isolated transient has fallen to ~8 %) is low for neurons and high
for such sources. On the project's 1P simulator matched neurons have a median of 0.1 there and
background blobs 0.79–0.90.
"""

from __future__ import annotations

import math

import numpy as np

#: Autocorrelation at the test lag above which a trace is a slow background source.
MAX_SLOW_AUTOCORRELATION = 0.7
#: Lag of the test, in decay times.
LAG_DECAY_TIMES = 2.5
#: The test needs this many lags' worth of samples to say anything.
MIN_LAGS_OBSERVED = 10


def forgetting_lag(*, fr: float, decay_time: float, tsub: int = 1) -> int:
    """Samples (at the ``tsub`` rate) spanning ``LAG_DECAY_TIMES`` decay times."""
    return max(1, math.ceil(LAG_DECAY_TIMES * decay_time * fr / tsub))


def lagged_autocorrelation(traces: np.ndarray, lag: int) -> np.ndarray:
    """(K,) autocorrelation of each (K, T) trace at ``lag`` samples (0 for a constant trace)."""
    centred = np.asarray(traces, dtype=np.float64)
    centred = centred - centred.mean(axis=1, keepdims=True)
    power = (centred ** 2).sum(axis=1)
    lagged = (centred[:, :-lag] * centred[:, lag:]).sum(axis=1)
    return np.where(power > 0, lagged / np.where(power > 0, power, 1.0), 0.0)


def transient_like(traces: np.ndarray, *, lag: int, threshold: float = MAX_SLOW_AUTOCORRELATION) -> np.ndarray:
    """(K,) whether each trace forgets fast enough to be calcium transients.

    With fewer than ``MIN_LAGS_OBSERVED`` lags of data the test cannot tell, and every trace passes.
    """
    traces = np.atleast_2d(traces)
    if traces.shape[1] < MIN_LAGS_OBSERVED * lag:
        return np.ones(traces.shape[0], dtype=bool)
    return lagged_autocorrelation(traces, lag) <= threshold
