"""The patch job stage package: the dispatcher, the 1P and 2P jobs on small simulated movies,
and the way back from the patch grid to the box."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_job.dispatch import fit_patch, patch_job_for
from cnmflow.engine.patch_job.one_photon import fit_patch_corr_pnr
from cnmflow.engine.patch_job.result import drop_border_components
from cnmflow.engine.patch_job.two_photon import fit_patch_low_rank
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import EngineSettings
from cnmflow.params import PRESETS, build_params
from cnmflow.synthetic import simulate_1p, simulate_2p


def _job(**values):
    return EngineSettings.from_params(build_params(dict(n_processes=1, **values))).patch_job


def _matched(found: np.ndarray, truth: np.ndarray, *, cosine: float) -> int:
    """How many true footprints (K, h, w) one found footprint (pixels, K', Fortran order) matches."""
    truth_columns = truth.transpose(0, 2, 1).reshape(truth.shape[0], -1)
    truth_columns = truth_columns / np.linalg.norm(truth_columns, axis=1, keepdims=True)
    norms = np.linalg.norm(found, axis=0)
    similarity = truth_columns @ (found / np.where(norms > 0, norms, 1))
    return int((similarity.max(axis=1) > cosine).sum()) if found.shape[1] else 0


@pytest.mark.parametrize("method_init, job", [("corr_pnr", fit_patch_corr_pnr), ("greedy_roi", fit_patch_low_rank),
                                              ("sparse_NMF", fit_patch_low_rank)])
def test_the_dispatcher_picks_the_job_for_the_initialisation(method_init, job):
    preset = PRESETS["1p" if method_init == "corr_pnr" else "2p"]
    assert patch_job_for(_job(**dict(preset, method_init=method_init)).init) is job


def test_the_1p_job_finds_the_simulated_cells():
    sim = simulate_1p(shape=(40, 40), n_frames=300, n_neurons=4, gsig=3.0, fr=10.0, min_distance=10, rng=0)
    job = _job(fr=10.0, gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, rf=None)
    result = fit_patch(MovieSource.of(sim.movie), PatchBox(0, 40, 0, 40), job, fov_dims=(40, 40))
    assert _matched(result.A, sim.truth.footprints, cosine=0.8) == 4
    assert result.C.shape == (result.A.shape[1], 150)               # tsub = 2
    assert result.noise.shape == result.correlation.shape == result.pnr.shape == (40, 40)
    assert result.b.shape == (0, 0) and result.f.shape == (0, 0)     # the ring model stays in the patch


def test_the_2p_job_finds_the_simulated_cells_and_its_own_background():
    sim = simulate_2p(shape=(40, 40), n_frames=300, n_neurons=4, gsig=2.5, nb=1, peak_snr=(6, 10),
                      min_distance=10, rng=1)
    job = _job(**dict(PRESETS["2p"], fr=30.0, gSig=3, gSiz=7, K=5, rf=None, nb=1))
    result = fit_patch(MovieSource.of(sim.movie), PatchBox(0, 40, 0, 40), job, fov_dims=(40, 40))
    assert _matched(result.A, sim.truth.footprints, cosine=0.8) >= 3
    assert result.b.shape == (1600, 1) and result.f.shape == (1, 150)


def test_a_downsampled_patch_comes_back_at_the_box_resolution():
    sim = simulate_1p(shape=(32, 36), n_frames=200, n_neurons=3, gsig=3.0, fr=10.0, rng=2)
    job = _job(fr=10.0, gSig=3, gSiz=13, min_corr=0.7, min_pnr=5, rf=None, ssub=2, tsub=2)
    box = PatchBox(0, 32, 0, 36)
    result = fit_patch(MovieSource.of(sim.movie), box, job, fov_dims=(32, 36))
    assert result.A.shape[0] == 32 * 36 and result.correlation.shape == (32, 36)


def test_border_pixels_are_zeroed_only_at_the_field_of_views_edge():
    A = np.ones((6 * 5, 1), np.float32)
    inner = drop_border_components(A, PatchBox(10, 16, 10, 15), (40, 40), border_pix=2)
    np.testing.assert_array_equal(inner, A)
    corner = drop_border_components(A, PatchBox(0, 6, 0, 5), (40, 40), border_pix=2)
    image = corner[:, 0].reshape((6, 5), order="F")
    assert not image[:2].any() and not image[:, :2].any() and image[2:, 2:].all()



def test_rings_are_completed_at_the_field_edge_only_after_the_seed_search(monkeypatch):
    """A patch in the field's corner: the seed searches read rings cut on all four sides (seeds as
    CaImAn's), every later ring fit completes the rings at the field's two edges and keeps them cut
    where the field goes on past the patch, so a cell at the edge keeps its halo."""
    import cnmflow.engine.patch_job.one_photon as one_photon

    sim = simulate_1p(shape=(80, 80), n_frames=300, n_neurons=8, gsig=3.0, fr=10.0, min_distance=10, rng=3)
    job = _job(fr=10.0, gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, rf=None)
    cut_per_fit = []
    fit_ring_model = one_photon.fit_ring_model

    def recording(*args, cut_sides=(), **kwargs):
        cut_per_fit.append(frozenset(cut_sides))
        return fit_ring_model(*args, cut_sides=cut_sides, **kwargs)

    monkeypatch.setattr(one_photon, "fit_ring_model", recording)
    result = fit_patch(MovieSource.of(sim.movie), PatchBox(0, 40, 0, 40), job, fov_dims=(80, 80))
    assert result.A.shape[1] > 0 and len(cut_per_fit) >= 2
    assert cut_per_fit[0] == {"top", "bottom", "left", "right"}      # the residual seed search's ring
    assert set(cut_per_fit[1:]) == {frozenset({"bottom", "right"})}   # the field goes on below and right
