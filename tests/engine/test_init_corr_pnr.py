import os
import time

import numpy as np
import pytest

from cnmflow.engine.init import CorrPnrInit, initialize_corr_pnr, seed_candidates
from cnmflow.engine.init.corr_pnr import footprint_peaks
from cnmflow.errors import ParameterError
from tests.paths import CAIMAN_REFERENCE

REF = f"{CAIMAN_REFERENCE}/"

try:  # project-wide scorer (Hungarian on 1 - IoU of binarised footprints, centroid < 10 px)
    from cnmflow.scoring import score as _project_score
except ImportError:  # pragma: no cover
    _project_score = None


def _match(true_a, est_a, threshold=0.2):
    """(true, est) pairs with IoU of binarised footprints; Hungarian on 1 - IoU, centroids < 10 px."""
    from scipy.optimize import linear_sum_assignment

    if len(est_a) == 0:
        return [], np.zeros(0)
    g = true_a > threshold * true_a.reshape(len(true_a), -1).max(1)[:, None, None]
    e = est_a > threshold * est_a.reshape(len(est_a), -1).max(1)[:, None, None]
    inter = np.einsum("aij,bij->ab", g.astype(float), e.astype(float))
    iou = inter / (g.sum((1, 2))[:, None] + e.sum((1, 2))[None] - inter)
    yy, xx = np.mgrid[: true_a.shape[1], : true_a.shape[2]]

    def cent(x):
        s = x.sum((1, 2))
        return np.stack([(x * yy).sum((1, 2)) / s, (x * xx).sum((1, 2)) / s], 1)

    d = np.linalg.norm(cent(true_a)[:, None] - cent(est_a)[None], axis=2)
    cost = np.where(d < 10, 1 - iou, 10.0)
    ri, ci = linear_sum_assignment(cost)
    ok = cost[ri, ci] < 0.7
    return list(zip(ri[ok], ci[ok])), iou[ri[ok], ci[ok]]


def _dense(res: CorrPnrInit, dims):
    return res.A.reshape(dims[0], dims[1], -1, order="F").transpose(2, 0, 1)


def _synthetic(rng, T=400, dims=(48, 52), centers=((12, 14), (30, 36), (14, 38), (34, 12)), amp=60.0, noise=10.0):
    rows, cols = dims
    yy, xx = np.mgrid[:rows, :cols]
    A = np.stack([np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 2.5 ** 2)) for r, c in centers])
    g = 0.8
    C = np.zeros((len(centers), T))
    for k in range(len(centers)):
        s = (rng.random(T) < 0.03) * rng.uniform(0.5, 1.5, T)
        for t in range(1, T):
            C[k, t] = g * C[k, t - 1] + s[t]
    C *= amp
    # strong smooth fluctuating background
    bg_sp = 500 + 300 * np.exp(-((yy - rows / 2) ** 2 + (xx - cols / 3) ** 2) / (2 * 20.0 ** 2))
    bg_t = 1 + 0.2 * np.sin(np.arange(T) / 25.0) + 0.05 * np.cumsum(rng.normal(size=T)) / np.sqrt(T)
    tilt = (xx / cols)[None] * 40 * np.cos(np.arange(T) / 40.0)[:, None, None]
    mov = np.einsum("kij,kt->tij", A, C) + bg_sp[None] * bg_t[:, None, None] + tilt
    mov += rng.normal(0, noise, size=mov.shape)
    return mov.astype(np.float32), A, C


def test_synthetic_neurons_recovered():
    rng = np.random.default_rng(0)
    mov, A, C = _synthetic(rng)
    res = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8)
    K = res.A.shape[1]
    assert res.A.shape == (48 * 52, K) and res.C.shape == (K, mov.shape[0]) and res.center.shape == (K, 2)
    assert res.A.dtype == np.float32 and np.all(res.A >= 0)
    assert res.correlation.shape == res.pnr.shape == (48, 52)
    pairs, iou = _match(A, _dense(res, (48, 52)))
    assert len(pairs) == 4 and K <= 5
    assert np.all(iou > 0.5)
    for i, j in pairs:
        assert np.corrcoef(C[i], res.C[j])[0, 1] > 0.9
        # raw scale: a * c reproduces the neuron's peak contribution within 30 %
        est_peak = (res.A[:, j].max() * res.C[j]).max()
        true_peak = (A[i].max() * C[i]).max()
        assert 0.7 < est_peak / true_peak < 1.3
    # deterministic
    res2 = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8)
    np.testing.assert_array_equal(res.A, res2.A)
    np.testing.assert_array_equal(res.center, res2.center)


def test_movie_is_only_read():
    mov, _, _ = _synthetic(np.random.default_rng(0))
    before = mov.copy()
    assert initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8).A.shape[1] >= 4
    np.testing.assert_array_equal(mov, before)


def test_pure_noise_gives_no_components():
    rng = np.random.default_rng(1)
    mov = (100 + rng.normal(0, 5, size=(300, 40, 40))).astype(np.float32)
    res = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=10)
    assert res.A.shape == (1600, 0) and res.C.shape == (0, 300) and res.center.shape == (0, 2)


def test_max_components_and_border():
    rng = np.random.default_rng(2)
    mov, A, C = _synthetic(rng)
    res = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8, max_components=2)
    assert res.A.shape[1] == 2 and res.C.shape[0] == 2
    assert initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8, max_components=0).A.shape[1] == 0
    # border_pix=15 leaves only the neuron at (30, 36), clear of every border
    res_b = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8, border_pix=15)
    assert res_b.A.shape[1] >= 1
    assert np.all(res_b.center >= 15) and np.all(res_b.center < np.array([48 - 15, 52 - 15]))
    with pytest.raises(ParameterError):
        initialize_corr_pnr(mov, gsig=0, gsiz=13, min_corr=0.8, min_pnr=8)


def test_seed_candidates():
    cn = np.zeros((30, 30), np.float32)
    pnr = np.zeros((30, 30), np.float32)
    yy, xx = np.mgrid[:30, :30]
    for (r, c), v in (((10, 10), 20), ((20, 22), 30), ((3, 3), 40)):
        cn[r - 2:r + 3, c - 2:c + 3] = 0.9
        pnr = np.maximum(pnr, v * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 8.0))
    s = seed_candidates(cn, pnr, min_corr=0.8, min_pnr=10, gsiz=13)
    assert [tuple(x) for x in s] == [(3, 3), (20, 22), (10, 10)]
    s = seed_candidates(cn, pnr, min_corr=0.8, min_pnr=10, gsiz=13, border_pix=4)
    assert [tuple(x) for x in s] == [(20, 22), (10, 10)]
    assert len(seed_candidates(cn, pnr, min_corr=0.95, min_pnr=10, gsiz=13)) == 0


def test_synth1p_reference_seeds_and_footprints():
    movie = REF + "synth1p_128.tif"
    if not (os.path.exists(movie) and os.path.exists(REF + "synth1p_128_gt.npz")):
        pytest.skip("CaImAn reference data not available")
    import tifffile

    mov = tifffile.imread(movie).astype(np.float32)
    gt = np.load(REF + "synth1p_128_gt.npz")
    ds = mov.reshape(mov.shape[0] // 2, 2, *mov.shape[1:]).mean(1)  # tsub = 2, block means
    t0 = time.perf_counter()
    res = initialize_corr_pnr(ds, gsig=3, gsiz=13, min_corr=0.8, min_pnr=10)
    elapsed = time.perf_counter() - t0
    est = _dense(res, (128, 128))
    pairs, iou = _match(gt["A"], est)
    assert len(pairs) >= 22
    assert est.shape[0] - len(pairs) <= 2
    assert np.mean(iou > 0.5) >= 0.9
    c_true = gt["C"].reshape(len(gt["C"]), -1, 2).mean(2)
    assert np.median([np.corrcoef(c_true[i], res.C[j])[0, 1] for i, j in pairs]) > 0.95
    if _project_score is not None:
        s = _project_score(gt["A"], est)
        assert s.n_matched >= 22 and s.precision >= 0.9
    assert elapsed < 15  # ~1 s on a 2-core machine


def test_no_seed_on_a_neuron_found_before():
    """The residual search is told what the first search found: a seed whose trace follows a
    component found within gSiz of it is that neuron again (its halo left in the residual), not a
    new neuron; a component found before with other activity hides no neuron."""
    rng = np.random.default_rng(0)
    mov, A, C = _synthetic(rng)
    first = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8)
    pairs, _ = _match(A, _dense(first, (48, 52)))
    assert len(pairs) == 4
    i, j = pairs[0]
    same = (first.center[j:j + 1], first.C[j:j + 1])
    again = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8, found_before=same)
    found_again = {t for t, _ in _match(A, _dense(again, (48, 52)))[0]}
    assert i not in found_again and len(found_again) == 3
    other = (first.center[j:j + 1], rng.normal(size=(1, mov.shape[0])).astype(np.float32))
    unrelated = initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.8, min_pnr=8, found_before=other)
    assert len(_match(A, _dense(unrelated, (48, 52)))[0]) == 4


def test_footprint_peaks_are_the_largest_weights():
    dims = (6, 5)
    A = np.zeros((30, 2), np.float32)
    A[2 + 4 * 6, 0] = 1.0  # (row 2, col 4) in Fortran order
    A[5 + 0 * 6, 1] = 0.5
    A[5 + 1 * 6, 1] = 0.2
    np.testing.assert_array_equal(footprint_peaks(A, dims), [[2, 4], [5, 0]])
    assert footprint_peaks(np.zeros((30, 0)), dims).shape == (0, 2)


def _core_images(core_corr: float, core_pnr: float):
    """A 30x30 field far below 0.7 / 5 with one pixel at (15, 15) passing both and its 3x3 core at
    (``core_corr``, ``core_pnr``)."""
    cn = np.full((30, 30), 0.3, np.float32)
    pnr = np.full((30, 30), 2.0, np.float32)
    cn[14:17, 14:17], pnr[14:17, 14:17] = core_corr, core_pnr
    cn[15, 15], pnr[15, 15] = 0.72, 5.2
    return cn, pnr


def test_a_dim_core_straddling_min_corr_is_a_seed():
    """A dim soma's core pixels straddle min_corr: one pixel passing both thresholds, its
    neighbours' correlation just under min_corr, is a seed; the seed pixel itself must pass both."""
    seeds = seed_candidates(*_core_images(0.67, 5.3), min_corr=0.7, min_pnr=5, gsiz=13)
    assert [tuple(s) for s in seeds] == [(15, 15)]
    for image, value in ((0, 0.69), (1, 4.9)):  # the brightest pixel under either threshold: no seed
        images = _core_images(0.67, 5.3)
        images[image][15, 15] = value
        assert len(seed_candidates(*images, min_corr=0.7, min_pnr=5, gsiz=13)) == 0


def test_a_lone_passing_pixel_is_no_seed():
    """A pixel passing both thresholds among pixels well under min_corr, or under min_pnr (a noise
    excursion), has no core: no seed."""
    assert len(seed_candidates(*_core_images(0.55, 5.3), min_corr=0.7, min_pnr=5, gsiz=13)) == 0
    assert len(seed_candidates(*_core_images(0.67, 4.7), min_corr=0.7, min_pnr=5, gsiz=13)) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_gives_no_seed_at_a_users_thresholds(seed):
    """Filtered white noise over 600 frames peaks near 5 noise sds and its neighbours correlate
    through the filter: at 0.7 / 5 (realistic cortex L2/3 thresholds) the core test still finds nothing."""
    mov = (100 + np.random.default_rng(seed).normal(0, 5, size=(600, 48, 48))).astype(np.float32)
    assert initialize_corr_pnr(mov, gsig=3, gsiz=13, min_corr=0.7, min_pnr=5).A.shape[1] == 0


def _bright_and_dim(seed: int, dim_amplitude: float, T: int = 600, dims=(40, 44)):
    """A bright cell at (20, 16) and a dim one 9 px beside it at (20, 25), gSig ~2-3, white noise sd 10."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:dims[0], :dims[1]]
    centres = ((20, 16), (20, 25))
    A = np.stack([np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 2.0 ** 2)) for r, c in centres])
    C = np.zeros((2, T))
    for k in range(2):
        spikes = (rng.random(T) < 0.02) * rng.uniform(0.5, 1.5, T)
        for t in range(1, T):
            C[k, t] = 0.85 * C[k, t - 1] + spikes[t]
    C *= np.array([[60.0], [dim_amplitude]])
    movie = 200 + np.einsum("kij,kt->tij", A, C) + rng.normal(0, 10, size=(T, *dims))
    return movie.astype(np.float32), np.array(centres)


@pytest.mark.parametrize("seed", [2, 6])
def test_a_dim_cell_beside_a_bright_one_is_found(seed):
    """A dim cell whose core straddles min_corr = 0.7 (its brightest pixels pass, most of its core
    sits just under) is seeded beside a bright neighbour at a user's thresholds (0.7 / 5)."""
    movie, centres = _bright_and_dim(seed, 12.0)
    found = initialize_corr_pnr(movie, gsig=3, gsiz=13, min_corr=0.7, min_pnr=5)
    assert found.A.shape[1] == 2
    distance = np.linalg.norm(centres[:, None] - found.center[None], axis=2).min(axis=1)
    assert np.all(distance <= 1.5)
