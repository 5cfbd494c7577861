"""2P components that took up the neuropil are rejected; somata, rings or discs, are kept (engine/soma_compactness)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter

from cnmflow.engine import fit
from cnmflow.engine.soma_compactness import SOMA_MIN_SKEW, compact_shares, not_compact
from cnmflow.engine.trace_shape import skewness
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


def _calcium(seed: int, n_frames: int = 1500) -> np.ndarray:
    """A cell's raw trace: sparse transients decaying over ~25 frames on a resting level, with noise."""
    gen = np.random.default_rng(seed)
    spikes = (gen.random(n_frames) < 0.01) * gen.uniform(1, 3, n_frames)
    calcium = np.convolve(spikes, np.exp(-np.arange(100) / 25.0))[:n_frames]
    return calcium + 0.1 * gen.standard_normal(n_frames)


def _population(seed: int, n_frames: int = 1500) -> np.ndarray:
    """The neuropil's raw trace: the sum of many cells' calcium, smooth and about as far below its mean as above."""
    return sum(_calcium(seed * 100 + k, n_frames) for k in range(60)) / 60.0


def _traces(n_cells: int, n_neuropil: int) -> np.ndarray:
    return np.array([_calcium(k) for k in range(n_cells)] + [_population(k + 1) for k in range(n_neuropil)])


def test_rings_and_discs_hold_their_weight_near_their_centre_neuropil_texture_does_not():
    cells = [_ring((20, 20), 4.5), _ring((60, 25), 5.0), _disc((40, 60), 3.5)] * 4
    A = _columns(cells + [_neuropil_patch(1), _neuropil_patch(2)])
    shares, radius = compact_shares(A, DIMS, gsig=5)
    assert 7.5 <= radius < 8.5   # 1.5 × the larger of gSig and the typical footprint radius (~5 px rings)
    assert np.all(shares[:12] > 0.9)
    assert np.all(shares[12:] < 0.5)
    traces = _traces(12, 2)
    assert list(not_compact(A, DIMS, gsig=5, compact_thr=0.7, raw_traces=traces)) == [12, 13]
    assert not_compact(A, DIMS, gsig=5, compact_thr=0.0, raw_traces=traces).size == 0   # 0: off


def test_a_gsig_set_below_the_cells_radius_does_not_reject_them():
    """The disc's radius follows the fit's typical footprint where that is larger than gSig."""
    cells = [_ring((20 + 10 * (k % 4), 20 + 12 * (k // 4)), 6.0) for k in range(12)]
    A = _columns(cells + [_neuropil_patch(3)])
    shares, radius = compact_shares(A, DIMS, gsig=3)
    assert radius > 1.5 * 6.0
    assert list(not_compact(A, DIMS, gsig=3, compact_thr=0.7, raw_traces=_traces(12, 1))) == [12]
    few = _columns(cells[:3])   # too few footprints for a typical radius: gSig's alone
    assert compact_shares(few, DIMS, gsig=3)[1] == pytest.approx(4.5)


def test_a_spread_footprint_with_a_cells_trace_is_kept():
    """A cell whose footprint took up a skirt of background the patch could not follow still rises as a cell does;
    a spread footprint whose trace follows the population is neuropil."""
    cells = [_ring((20, 20), 4.5), _ring((60, 25), 5.0), _disc((40, 60), 3.5)] * 4
    skirted = _ring((40, 40), 4.5) + 0.05 * (np.mgrid[:DIMS[0], :DIMS[1]][1] > 40)   # a half-plane of background
    A = _columns(cells + [skirted, _neuropil_patch(1)])
    shares, _ = compact_shares(A, DIMS, gsig=5)
    assert shares[12] < 0.7 and shares[13] < 0.7                 # both spread out
    traces = np.vstack([_traces(13, 0), _population(7)[None]])   # the skirted one with a cell's trace
    assert list(not_compact(A, DIMS, gsig=5, compact_thr=0.7, raw_traces=traces)) == [13]
    assert skewness(traces[12]) >= SOMA_MIN_SKEW > skewness(traces[13])


def test_neuropil_components_in_the_majority_do_not_widen_the_somas_disc():
    """The typical radius is the cells' (skewed-up traces): the median over every component would be neuropil's."""
    cells = [_ring((20, 20), 4.5), _ring((60, 25), 5.0), _disc((40, 60), 3.5)] * 4
    A = _columns(cells + [_neuropil_patch(seed) for seed in range(15)])
    assert compact_shares(A, DIMS, gsig=5)[1] > 15            # every component's median: the neuropil's
    traces = _traces(12, 15)
    assert compact_shares(A, DIMS, gsig=5, somata=skewness(traces) >= SOMA_MIN_SKEW)[1] < 8.5
    assert list(not_compact(A, DIMS, gsig=5, compact_thr=0.7, raw_traces=traces)) == list(range(12, 27))


def test_a_2p_fit_of_a_realistic_movie_rejects_its_neuropil_components_and_keeps_its_cells():
    # all of the neuropil's light in focus: its texture is sharpest, so the search takes the most pieces of it
    sim = simulate_realistic_2p(shape=(128, 128), n_frames=800, rng=13, neuropil_haze=0.0)
    params = {**PRESETS["2p"], "gSig": 5, "gSiz": 11, "fr": 30, "decay_time": 0.8, "rf": 25, "stride": 12, "K": 5,
              "n_processes": 1}
    est = fit(sim.movie, build_params(params))   # on by default
    footprints = est.footprints()
    accepted = np.setdiff1d(np.arange(est.K), est.idx_components_bad)
    every, kept = shape_score(sim.truth.footprints, footprints), shape_score(sim.truth.footprints, footprints[accepted])
    assert kept.precision_iou50 >= every.precision_iou50 + 0.25   # the neuropil components went
    assert kept.recall_iou50 == every.recall_iou50                 # no cell with them
    assert est.idx_components_bad.size >= 4
    unchanged = fit(sim.movie, build_params({**params, "compact_thr": 0.0}))
    assert unchanged.idx_components_bad.size == 0   # 0: off
    assert np.array_equal(unchanged.C, est.C)       # it only marks: the model is the same
