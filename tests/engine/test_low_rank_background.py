"""The 2P low-rank background: traces solved alongside it, footprints and b refined with it,
and patch backgrounds compressed into nb global components."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cnmflow.engine.low_rank_background import combine_patch_backgrounds, compress_factored
from cnmflow.engine.patch_job.result import PatchResult
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import EngineSettings
from cnmflow.engine.traces import LowRankBackground, TraceModel, refine_footprints, solve_traces
from cnmflow.params import build_params
from cnmflow.synthetic import simulate_2p


@pytest.fixture(scope="module")
def sim():
    return simulate_2p(shape=(40, 40), n_frames=400, n_neurons=6, nb=2, gsig=2.5, peak_snr=(6, 10), rng=3)


def _truth_model(sim, *, blur_b: bool = False) -> TraceModel:
    truth = sim.truth
    A = truth.footprints.transpose(0, 2, 1).reshape(truth.footprints.shape[0], -1).T  # Fortran pixels
    b = truth.background_spatial.transpose(0, 2, 1).reshape(truth.background_spatial.shape[0], -1).T
    if blur_b:
        b = b * (1 + 0.3 * np.linspace(-1, 1, b.shape[0]))[:, None]
    return TraceModel(A=sp.csc_matrix(A.astype(np.float32)), ring=None,
                      low_rank=LowRankBackground(b=b.astype(np.float32), f=np.ones_like(truth.background_temporal)))


def _params(**values):
    return EngineSettings.from_params(build_params(dict(method_init="greedy_roi", K=6, nb=2, p=1, fr=30,
                                                        decay_time=0.4, rf=None, n_processes=1, **values))).traces


def test_traces_and_background_traces_are_recovered_with_true_footprints(sim):
    model = _truth_model(sim)
    start = np.zeros_like(sim.truth.calcium)
    result = solve_traces(sim.movie, model, start, section=_params(), chunk_frames=64)
    for k in range(sim.truth.calcium.shape[0]):
        assert np.corrcoef(result.C[k], sim.truth.calcium[k])[0, 1] > 0.95
    assert result.f.shape == sim.truth.background_temporal.shape
    for j in range(2):
        assert np.corrcoef(result.f[j], sim.truth.background_temporal[j])[0, 1] > 0.95


def test_background_footprints_move_towards_the_truth_only_when_updated(sim):
    model = _truth_model(sim, blur_b=True)
    truth_b = _truth_model(sim).low_rank.b
    traces = solve_traces(sim.movie, model, np.zeros_like(sim.truth.calcium), section=_params(), chunk_frames=64)
    model = TraceModel(A=model.A, ring=None, low_rank=LowRankBackground(b=model.low_rank.b, f=traces.f))

    def error(b):
        return np.linalg.norm(b @ traces.f - truth_b @ sim.truth.background_temporal) / np.linalg.norm(truth_b @ sim.truth.background_temporal)

    updated = refine_footprints(sim.movie, model, traces.C, section=_params(), chunk_frames=64)
    kept = refine_footprints(sim.movie, model, traces.C, section=_params(update_background_components=False),
                             chunk_frames=64)
    assert np.array_equal(kept.low_rank.b, model.low_rank.b)
    assert error(updated.low_rank.b) < 0.8 * error(model.low_rank.b)
    assert (updated.low_rank.b >= 0).all() and updated.A.shape == model.A.shape


def test_compressing_a_rank_two_product_is_exact_and_non_negative():
    rng = np.random.default_rng(0)
    b_true = rng.uniform(0, 1, (300, 2))
    f_true = rng.uniform(0.5, 1.5, (2, 200))
    # six redundant pieces that sum to the rank-2 product
    weights = rng.uniform(0.1, 1, (2, 6))
    weights /= weights.sum(axis=1, keepdims=True)
    B = np.hstack([b_true[:, [j]] * weights[j, i] for i in range(6) for j in range(2)])
    F = np.vstack([f_true[[j]] for i in range(6) for j in range(2)])
    b, f = compress_factored(sp.csc_matrix(B), F, rank=2)
    assert (b >= 0).all() and (f >= 0).all()
    assert np.linalg.norm(b @ f - B @ F) / np.linalg.norm(B @ F) < 0.02


def _patch_result(box: PatchBox, b_value: float, f: np.ndarray) -> PatchResult:
    pixels = box.shape[0] * box.shape[1]
    empty = np.zeros(box.shape, np.float32)
    return PatchResult(box=box, A=np.zeros((pixels, 0), np.float32), C=np.zeros((0, f.shape[1]), np.float32),
                       noise=empty, correlation=empty, pnr=empty, b=np.full((pixels, 1), b_value, np.float32), f=f)


def test_overlapping_patch_backgrounds_are_not_counted_twice():
    f = np.ones((1, 10), np.float32)
    results = [_patch_result(PatchBox(0, 10, 0, 12), 5.0, f), _patch_result(PatchBox(0, 10, 8, 20), 5.0, f)]
    for low_rank, nb in [(False, 2), (True, 1)]:
        background = combine_patch_backgrounds(results, (10, 20), nb=nb, low_rank=low_rank)
        image = (background.b @ background.f)[:, 0].reshape((10, 20), order="F")
        assert np.allclose(image, 5.0, rtol=1e-3), (low_rank, image)
        assert background.nb == nb


def test_no_background_when_nb_is_zero():
    f = np.ones((1, 10), np.float32)
    background = combine_patch_backgrounds([_patch_result(PatchBox(0, 10, 0, 10), 1.0, f)], (10, 10), nb=0,
                                           low_rank=True)
    assert background.b.shape == (100, 0) and background.f.shape == (0, 10)
