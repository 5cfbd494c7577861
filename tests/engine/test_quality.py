"""Component quality (cnmflow.engine.quality): trace SNR, spatial consistency and the statuses."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.estimates import Estimates
from cnmflow.engine.quality import (MIN_SNR, RVAL_THR, component_statuses, evaluate_components,
                                    spatial_consistency, trace_snr)
from cnmflow.pixel_order import image_to_column

DIMS = (24, 24)
T = 400
FR, DECAY = 10.0, 0.4


def _blob(center: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[:DIMS[0], :DIMS[1]]
    return np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma ** 2))


def _transients(rng: np.random.Generator) -> np.ndarray:
    spikes = (rng.random(T) < 0.03) * rng.uniform(3.0, 6.0, T)
    decay = np.exp(-1.0 / (FR * DECAY))
    trace = np.zeros(T)
    for t in range(T):
        trace[t] = (trace[t - 1] * decay if t else 0.0) + spikes[t]
    return trace


def _scene(rng_seed: int = 0):
    """A firing neuron at (7, 7), and a component at (17, 17) where the movie is only noise."""
    rng = np.random.default_rng(rng_seed)
    cell, empty = _blob((7, 7)), _blob((17, 17))
    trace = _transients(rng)
    movie = (trace[:, None, None] * cell[None] + rng.normal(0, 0.3, (T, *DIMS))).astype(np.float32)
    columns = np.stack([image_to_column(cell), image_to_column(empty)], axis=1)
    A = sp.csc_matrix(columns / np.linalg.norm(columns, axis=0))
    C = np.vstack([trace, np.zeros(T)])
    YrA = rng.normal(0, 0.3, (2, T))
    zeros = np.zeros(2)
    estimates = Estimates(A=A, C=C, S=np.zeros((2, T)), YrA=YrA, bl=zeros, c1=zeros, g=np.zeros((2, 1)),
                          neurons_sn=zeros, lam=zeros, dims=DIMS, sn=np.zeros(DIMS[0] * DIMS[1]),
                          b0=np.zeros(DIMS[0] * DIMS[1]))
    return movie, estimates


def test_a_firing_component_has_a_higher_snr_than_noise():
    _, estimates = _scene()
    snr = trace_snr(estimates.C + estimates.YrA, window=int(np.ceil(FR * DECAY)))
    assert snr.shape == (2,)
    assert snr[0] > MIN_SNR > snr[1]


def test_a_footprint_that_shows_in_the_active_frames_is_spatially_consistent():
    movie, estimates = _scene()
    r_values = spatial_consistency(movie, estimates)
    assert r_values[0] > RVAL_THR
    assert r_values[1] < r_values[0] - 0.5


def test_streaming_in_small_chunks_gives_the_same_r_values():
    movie, estimates = _scene(1)
    np.testing.assert_allclose(spatial_consistency(movie, estimates, chunk_frames=7),
                               spatial_consistency(movie, estimates, chunk_frames=T), atol=1e-9)


def test_evaluation_accepts_the_neuron_and_rejects_the_noise():
    movie, estimates = _scene()
    quality = evaluate_components(movie, estimates, fr=FR, decay_time=DECAY)
    estimates.SNR_comp, estimates.r_values = quality.snr, quality.r_values
    assert component_statuses(estimates, evaluate=True) == ["accepted", "rejected"]
    assert component_statuses(estimates, evaluate=False) == ["undecided", "undecided"]


def test_no_components_give_empty_quality():
    movie, estimates = _scene()
    empty = Estimates(A=sp.csc_matrix((DIMS[0] * DIMS[1], 0)), C=np.zeros((0, T)), S=np.zeros((0, T)),
                      YrA=np.zeros((0, T)), bl=np.zeros(0), c1=np.zeros(0), g=np.zeros((0, 1)),
                      neurons_sn=np.zeros(0), lam=np.zeros(0), dims=DIMS, sn=estimates.sn, b0=estimates.b0)
    quality = evaluate_components(movie, empty, fr=FR, decay_time=DECAY)
    assert quality.snr.shape == (0,) and quality.r_values.shape == (0,)
    assert trace_snr(np.zeros((0, T)), window=4).shape == (0,)


def test_trace_snr_of_a_very_clean_transient_is_finite():
    """A window far beyond float64's smallest tail probability (a clean, bright trace) gets a
    large finite SNR, not inf (the fit's outputs must stay finite)."""
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((1, 500))
    raw[0, 100:120] += 80.0
    snr = trace_snr(raw, window=5)
    assert np.isfinite(snr).all() and snr[0] > 30
