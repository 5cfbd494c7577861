"""Traces for fixed footprints: the deconvolving solve recovers known traces, the projections
are ``Aᵀ(Y − B)``, and normalisation keeps ``A·C``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.ring_projections import background_free_projections
from cnmflow.engine.sections import EngineSettings
from cnmflow.engine.traces import TraceModel, normalize, solve_traces
from cnmflow.params import build_params

DIMS = (30, 32)
T = 400


def _blob(row: float, col: float, sigma: float = 2.5) -> np.ndarray:
    rr, cc = np.mgrid[:DIMS[0], :DIMS[1]]
    return np.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * sigma ** 2)).ravel(order="F")


def _known_movie(rng: int = 0):
    """Y = A·C + noise with three separate Gaussian footprints and AR(1) traces (fr 30, decay 0.4 s)."""
    generator = np.random.default_rng(rng)
    A = np.column_stack([_blob(8, 8), _blob(20, 12), _blob(12, 24)]).astype(np.float32)
    g = np.exp(-1 / (0.4 * 30))
    spikes = (generator.random((3, T)) < 0.03) * generator.uniform(5, 10, (3, T))
    C = np.zeros((3, T))
    for t in range(T):
        C[:, t] = spikes[:, t] + (g * C[:, t - 1] if t else 0)
    pixels = (A @ C).T + generator.normal(scale=0.5, size=(T, A.shape[0]))
    movie = pixels.reshape(T, DIMS[1], DIMS[0]).transpose(0, 2, 1).astype(np.float32)
    return movie, A, C


def _section(**values):
    table = dict(fr=30.0, decay_time=0.4, p=1, n_processes=1) | values
    return EngineSettings.from_params(build_params(table)).traces


def test_the_solve_recovers_known_traces_for_known_footprints():
    movie, A, C = _known_movie()
    model = TraceModel(A=sp.csc_matrix(A), ring=None)
    result = solve_traces(movie, model, np.zeros_like(C, np.float32), section=_section(), chunk_frames=64)
    assert result.C.shape == result.S.shape == result.YrA.shape == (3, T)
    for k in range(3):
        assert np.corrcoef(result.C[k], C[k])[0, 1] > 0.95
    np.testing.assert_allclose(result.g[:, 0], np.exp(-1 / (0.4 * 30)))  # p = 1: the decay from fr, decay_time


def test_without_a_background_the_projections_are_the_footprints_times_the_movie():
    movie, A, C = _known_movie(1)
    U = background_free_projections(movie, sp.csc_matrix(A), None, C, chunk_frames=50)
    pixels = movie.transpose(0, 2, 1).reshape(T, -1).astype(np.float64)
    np.testing.assert_allclose(U, A.T.astype(np.float64) @ pixels.T, rtol=1e-5, atol=1e-3)


def test_no_components_give_empty_traces():
    movie, A, C = _known_movie(2)
    empty = TraceModel(A=sp.csc_matrix((A.shape[0], 0), dtype=np.float32), ring=None)
    result = solve_traces(movie, empty, np.zeros((0, T), np.float32), section=_section(p=2))
    assert result.C.shape == (0, T) and result.g.shape == (0, 2)


def test_normalized_estimates_keep_the_product_of_footprints_and_traces():
    movie, A, C = _known_movie(3)
    model = TraceModel(A=sp.csc_matrix(A * 3), ring=None)
    traces = solve_traces(movie, model, np.zeros_like(C, np.float32), section=_section(), chunk_frames=64)
    estimates = normalize(traces, model, dims=DIMS, sn=np.ones(DIMS), ssub_B=2)
    np.testing.assert_allclose(np.linalg.norm(estimates.A.toarray(), axis=0), 1, rtol=1e-5)
    np.testing.assert_allclose(estimates.A.toarray() @ estimates.C, (A * 3) @ traces.C, rtol=1e-3, atol=1e-3)
