"""Telling neurons from slowly fluctuating background sources by how fast their traces forget.

A neuron's calcium is sparse transients that decay within a few ``decay_time``; out-of-focus
neuropil and blood-flow sources drift over seconds. So the autocorrelation of a trace at a lag
of 2.5 decay times (where an isolated transient has fallen to ~8 %) is low for neurons and high
for such sources. On the project's 1P simulator matched neurons have a median of 0.1 there and
background blobs 0.79–0.90.

A neuron's trace also *rests*: between transients its calcium sits at its baseline, so the median
frame of the denoised trace lies at the rest level (its lowest values). A component fitted to noise
or to a mixture of faint sources (seeded at a low ``min_pnr``) has a denoised trace that wanders
all the time, at a level its deconvolution cannot tell from the baseline: its median frame lies well
above its rest level and no stretch of its raw trace is exceptional (CaImAn's trace SNR low).
``never_at_rest`` marks traces with both (issue #18, benchmarks/findings/auto_params.md h18over).

A neuron's denoised trace is *skewed up*: sparse transients rise far above a baseline it rests at most of the time.
A component that follows a blood vessel carries the vessel's pulsing (vasomotion, the heartbeat aliased), which
swings about as far below its mean as above it, so its trace is skewed much less (suite2p's cell classifier reads the
same statistic among a ROI's features). ``skewed_up`` marks the traces skewed at least ``min_skew``, a parameter
that is off by default: ``VESSEL_MIN_SKEW`` is the value measured for it (issue #16,
benchmarks/findings/footprint_fidelity.md h21vessel). On short real clips (the IDEAS files, 34–63 frames) a skewness
is too noisy to judge by: 1.4 took 14–21% of the components the other tests accept there.
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
#: A trace's rest level: this percentile of its values (its baseline, robust to a stray low sample).
REST_PERCENTILE = 1.0
#: Never at rest: the median frame at least this fraction of the trace's range above its rest level
#: (realistic cortex seed 1 at auto's thresholds: matched cells whose SNR is below RESTLESS_MAX_SNR
#: reach 0.066, the components fitted to mixtures and noise 0.087–0.225) ...
RESTLESS_MEDIAN_FRACTION = 0.075
#: ... and the trace SNR (engine/quality's, CaImAn's) below this: the restless matched cells (fast-firing
#: cells) read 4.5–7.6, the mixtures 1.4–3.8.
RESTLESS_MAX_SNR = 4.0


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


def rest_fraction(traces: np.ndarray) -> np.ndarray:
    """(K,) how far each (K, T) trace's median lies above its rest level, as a fraction of its range."""
    traces = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    if traces.shape[1] == 0:
        return np.zeros(traces.shape[0])
    rest = np.percentile(traces, REST_PERCENTILE, axis=1)
    span = traces.max(axis=1) - rest
    return np.where(span > 0, (np.median(traces, axis=1) - rest) / np.where(span > 0, span, 1.0), 0.0)


def never_at_rest(traces: np.ndarray, snr: np.ndarray) -> np.ndarray:
    """(K,) whether each denoised trace never returns to its rest level and its raw trace's SNR is low: a
    component fitted to noise or a mixture of faint sources, not a neuron (module docstring)."""
    return (rest_fraction(traces) >= RESTLESS_MEDIAN_FRACTION) & (np.asarray(snr) < RESTLESS_MAX_SNR)


#: ``min_skew`` where vessels show: the middle of the gap, 1.29–1.53, between the vessel-following components and the
#: true cells on the realistic training seeds 1 / 4 with strong vessels (h21vessel).
VESSEL_MIN_SKEW = 1.4


def skewness(traces: np.ndarray) -> np.ndarray:
    """(K,) sample skewness of each (K, T) trace, E[(x − mean)³] / sd³ (0 for a constant trace)."""
    centred = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    centred = centred - centred.mean(axis=1, keepdims=True)
    variance = (centred ** 2).mean(axis=1)
    third = (centred ** 3).mean(axis=1)
    return np.where(variance > 0, third / np.where(variance > 0, variance, 1.0) ** 1.5, 0.0)


def skewed_up(traces: np.ndarray, min_skew: float) -> np.ndarray:
    """(K,) whether each denoised trace is skewed up as calcium transients are (module docstring); a trace that
    follows a vessel's pulsing is not."""
    return skewness(traces) >= min_skew
