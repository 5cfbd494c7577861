"""2P components that took up the neuropil are rejected; somata, rings or discs, are kept (engine/soma_compactness)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter

from cnmflow.engine import fit
from cnmflow.engine.soma_compactness import compact_shares, not_compact
from cnmflow.params import PRESETS, build_params
from cnmflow.pixel_order import images_to_columns
from cnmflow.shape_scoring import shape_score
from cnmflow.synthetic import simulate_realistic_2p

DIMS = (80, 80)


def _ring(center, radius: float, width: float = 1.5) -> np.ndarray:
    rr, cc = np.mgrid[:DIMS[0], :DIMS[1]]
    d = np.hypot(rr - center[0], cc - center[1])
    return np.exp(-0.5 * ((d - radius) / width) ** 2) * (d < radius + 3 * width)


def _disc(center, radius: float) -> np.ndarray:
    rr, cc = np.mgrid[:DIMS[0], :DIMS[1]]
    return (np.hypot(rr - center[0], cc - center[1]) <= radius).astype(float)


def _neuropil_patch(seed: int) -> np.ndarray:
    """Texture over a 30 × 30 px square: what a component that took up the neuropil looks like."""
    img = np.zeros(DIMS)
    grain = gaussian_filter(np.random.default_rng(seed).standard_normal((30, 30)), 0.8)
    img[20:50, 25:55] = np.clip(grain + 0.5 * grain.std(), 0, None)
    return img


def _columns(images) -> sp.csc_matrix:
    return sp.csc_matrix(images_to_columns(np.asarray(images)))


def test_rings_and_discs_hold_their_weight_near_their_centre_neuropil_texture_does_not():
    cells = [_ring((20, 20), 4.5), _ring((60, 25), 5.0), _disc((40, 60), 3.5)] * 4
    A = _columns(cells + [_neuropil_patch(1), _neuropil_patch(2)])
    shares, radius = compact_shares(A, DIMS, gsig=5)
    assert 7.5 <= radius < 8.5   # 1.5 × the larger of gSig and the typical footprint radius (~5 px rings)
    assert np.all(shares[:12] > 0.9)
    assert np.all(shares[12:] < 0.5)
    assert list(not_compact(A, DIMS, gsig=5, compact_thr=0.7)) == [12, 13]
    assert not_compact(A, DIMS, gsig=5, compact_thr=0.0).size == 0   # 0: off


def test_a_gsig_set_below_the_cells_radius_does_not_reject_them():
    """The disc's radius follows the fit's typical footprint where that is larger than gSig."""
    cells = [_ring((20 + 10 * (k % 4), 20 + 12 * (k // 4)), 6.0) for k in range(12)]
    A = _columns(cells + [_neuropil_patch(3)])
    shares, radius = compact_shares(A, DIMS, gsig=3)
    assert radius > 1.5 * 6.0
    assert list(not_compact(A, DIMS, gsig=3, compact_thr=0.7)) == [12]
    few = _columns(cells[:3])   # too few footprints for a typical radius: gSig's alone
    assert compact_shares(few, DIMS, gsig=3)[1] == pytest.approx(4.5)


def test_a_2p_fit_of_a_realistic_movie_rejects_its_neuropil_components_and_keeps_its_cells():
    sim = simulate_realistic_2p(shape=(128, 128), n_frames=800, rng=13)
    params = {**PRESETS["2p"], "gSig": 5, "gSiz": 11, "fr": 30, "decay_time": 0.8, "rf": 25, "stride": 12, "K": 5,
              "n_processes": 1}
    est = fit(sim.movie, build_params({**params, "compact_thr": 0.7}))
    footprints = est.footprints()
    accepted = np.setdiff1d(np.arange(est.K), est.idx_components_bad)
    every, kept = shape_score(sim.truth.footprints, footprints), shape_score(sim.truth.footprints, footprints[accepted])
    assert kept.precision_iou50 >= every.precision_iou50 + 0.25   # the neuropil components went
    assert kept.recall_iou50 == every.recall_iou50                 # no cell with them
    assert est.idx_components_bad.size >= 4
    unchanged = fit(sim.movie, build_params(params))
    assert unchanged.idx_components_bad.size == 0   # off by default (0), as before it
    assert np.array_equal(unchanged.C, est.C)       # it only marks: the model is the same
