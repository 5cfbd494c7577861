"""``cnmflow.engine.fit`` on 2P movies: greedy_roi / sparse_NMF with the low-rank background.

The 2P preset (greedy_roi, nb 2, nb_patch 1, low_rank_background, normalize_init, bas_nonneg)
on small simulated 2P movies with ground truth; one test per 2P parameter showing its
documented effect. Fits are module-scoped and shared to keep the file short on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine import Estimates, fit
from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5, write_caiman_hdf5
from cnmflow.params import PRESETS, build_params
from cnmflow.scoring import score
from cnmflow.synthetic import simulate_2p

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: The 2P preset with what a user sets for these movies: the neuron size, the rate, K per patch.
BASE = dict(PRESETS["2p"], gSig=3, gSiz=7, fr=30, n_processes=1)


def _params(**values):
    return build_params({**BASE, **values})


def _score(sim, est: Estimates):
    return score(sim.truth.footprints, est.footprints(), truth_traces=sim.truth.calcium, estimated_traces=est.C)


def _background_error(sim, est: Estimates) -> float:
    """Relative error of the fitted b·f against the true background movie."""
    truth = sim.truth.background().reshape(sim.movie.shape[0], -1, order="C")
    rows, cols = est.dims
    fitted = (est.b @ est.f).T.reshape(-1, cols, rows).transpose(0, 2, 1).reshape(sim.movie.shape[0], -1)
    return float(np.linalg.norm(fitted - truth) / np.linalg.norm(truth))


@pytest.fixture(scope="module")
def sim():
    return simulate_2p(shape=(64, 64), n_frames=500, n_neurons=10, nb=2, gsig=3.0, rng=1)


@pytest.fixture(scope="module")
def one_patch(sim):
    return fit(sim.movie, _params(rf=None, K=12))


@pytest.fixture(scope="module")
def patched(sim):
    return fit(sim.movie, _params(rf=16, stride=8, K=4))


def test_one_patch_finds_the_neurons_and_their_traces(sim, one_patch):
    result = _score(sim, one_patch)
    print(f"2P one patch: K={one_patch.K} P={result.precision:.3f} R={result.recall:.3f} F1={result.f1:.3f} "
          f"trace corr {result.median_trace_corr:.3f}")
    assert result.f1 >= 0.85 and result.median_trace_corr >= 0.9
    assert one_patch.b.shape == (64 * 64, 2) and one_patch.f.shape == (2, 500)
    assert _background_error(sim, one_patch) < 0.2


def test_patches_find_the_neurons_once(sim, patched):
    result = _score(sim, patched)
    print(f"2P patches: K={patched.K} P={result.precision:.3f} R={result.recall:.3f} F1={result.f1:.3f} "
          f"trace corr {result.median_trace_corr:.3f}")
    assert result.f1 >= 0.85 and result.median_trace_corr >= 0.9
    assert patched.b.shape == (64 * 64, 2)
    assert _background_error(sim, patched) < 0.2


def test_the_same_movie_gives_the_same_result(sim, patched):
    again = fit(sim.movie, _params(rf=16, stride=8, K=4))
    assert np.array_equal(again.A.toarray(), patched.A.toarray()) and np.array_equal(again.C, patched.C)
    assert np.array_equal(again.b, patched.b) and np.array_equal(again.f, patched.f)


def test_without_low_rank_background_each_patch_keeps_its_background(sim, patched):
    kept = fit(sim.movie, _params(rf=16, stride=8, K=4, low_rank_background=False))
    n_patches = 9   # 64x64 in 33-px patches overlapping by 8: 3 x 3
    assert kept.b.shape == (64 * 64, n_patches) and kept.f.shape == (n_patches, 500)
    assert _background_error(sim, kept) < 0.2
    assert _score(sim, kept).f1 >= 0.85


def test_nb_patch_sets_each_patch_s_background_components(sim):
    two = fit(sim.movie, _params(rf=16, stride=8, K=4, low_rank_background=False, nb_patch=2))
    assert two.b.shape == (64 * 64, 18)


def test_nb_zero_fits_no_background(sim):
    est = fit(sim.movie, _params(rf=None, K=12, nb=0))
    assert est.b.size == 0 and est.f.size == 0 and est.K > 0


def test_k_caps_the_components_of_one_patch(sim):
    assert fit(sim.movie, _params(rf=None, K=3)).K <= 3


def test_k_auto_finds_every_neuron_of_a_patch_holding_more_than_the_presets_four(sim, patched):
    """K='auto': the greedy search runs until nothing stands out of its surround (bounded by the patch's area),
    so a patch with more cells than a guessed K loses none, and noise is not taken."""
    one = fit(sim.movie, _params(rf=None, K=None))          # 10 neurons in one 64 × 64 patch
    assert one.K <= 14
    found = _score(sim, one)
    assert found.recall == 1.0 and found.precision >= 0.8 and found.median_trace_corr >= 0.9, found.summary()
    guessed = _score(sim, fit(sim.movie, _params(rf=None, K=4)))
    assert guessed.recall <= 0.4                             # what the preset's K leaves behind here
    assert _score(sim, fit(sim.movie, _params(rf=16, stride=8, K=None))).f1 >= _score(sim, patched).f1


def test_refit_keeps_or_improves_accuracy(sim, patched):
    refit = fit(sim.movie, _params(rf=16, stride=8, K=4, refit=True))
    before, after = _score(sim, patched), _score(sim, refit)
    print(f"refit: F1 {before.f1:.3f} -> {after.f1:.3f}, trace corr {before.median_trace_corr:.3f} -> "
          f"{after.median_trace_corr:.3f}")
    assert after.f1 >= before.f1 - 1e-9 and after.median_trace_corr >= before.median_trace_corr - 0.01
    assert not np.array_equal(refit.A.toarray(), patched.A.toarray())


def test_bas_nonneg_keeps_baselines_non_negative(sim, one_patch):
    assert (one_patch.bl >= 0).all()
    free = fit(sim.movie, _params(rf=None, K=12, bas_nonneg=False))
    assert not np.array_equal(free.bl, one_patch.bl)


def test_caiman_hdf5_carries_the_2p_background(sim, patched, tmp_path):
    path = write_caiman_hdf5(tmp_path / "caiman_output.hdf5", patched, _params(rf=16, stride=8, K=4))
    back = read_caiman_hdf5(path)
    assert np.allclose(back.b, patched.b) and np.allclose(back.f, patched.f)
    assert back.A.shape == patched.A.shape and np.allclose(back.C, patched.C)


def test_del_duplicates_keeps_one_copy_per_neuron(sim):
    est = fit(sim.movie, _params(rf=16, stride=8, K=4, del_duplicates=True))
    assert _score(sim, est).f1 >= 0.85


def test_only_init_false_refines_and_updates_the_background_only_when_asked(sim, patched):
    refined = fit(sim.movie, _params(rf=16, stride=8, K=4, only_init=False))
    fixed_background = fit(sim.movie, _params(rf=16, stride=8, K=4, only_init=False,
                                              update_background_components=False))
    assert _score(sim, refined).f1 >= 0.85
    assert not np.array_equal(refined.A.toarray(), patched.A.toarray())
    assert np.allclose(fixed_background.b, patched.b, atol=1e-6)   # the background the patches gave
    assert not np.allclose(refined.b, patched.b, atol=1e-6)


def test_sparse_nmf_fit_keeps_long_thin_dendrites():
    from tests.engine.test_init_sparse_nmf import _best_cosine, _dendrites

    movie, shapes, _ = _dendrites(noise=1.0)
    est = fit(movie, build_params(dict(method_init="sparse_NMF", K=6, nb=1, rf=None, gSig=2, gSiz=5, fr=30,
                                       n_processes=1)))
    assert 4 <= est.K <= 6
    assert _best_cosine(shapes, est.A.toarray()).min() >= 0.8
