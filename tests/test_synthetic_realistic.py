"""The realistic one-photon simulator (cnmflow/synthetic/realistic.py, optics.py, tissue.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnmflow.errors import ParameterError
from cnmflow.shape_scoring import energy_masks
from cnmflow.synthetic import GroundTruth, simulate_1p, simulate_realistic_1p
from cnmflow.synthetic.optics import Optics, cell_image, radial_profile, soma_image

#: Issue #16: radial profile of a CA1 footprint at gSig 6, relative to its peak, r = 0, 2, ..., 18 px.
CA1_PROFILE = np.array([1.0, 0.92, 0.75, 0.53, 0.34, 0.21, 0.12, 0.06, 0.03, 0.02])
RADII = np.arange(0, 20, 2)


def _cell(optics: Optics, radius_px: float, defocus_um: float = 0.0) -> np.ndarray:
    h = optics.support_px(defocus_um) + int(radius_px) + 2
    return cell_image(soma_image((radius_px, radius_px), 0.0, half_width_px=h), optics.psf(defocus_um, half_width_px=h))


def _within(img: np.ndarray, radius: float) -> float:
    c = np.unravel_index(np.argmax(img), img.shape)
    rr = np.hypot(np.arange(img.shape[0])[:, None] - c[0], np.arange(img.shape[1])[None, :] - c[1])
    return float(img[rr <= radius].sum() / img.sum())


@pytest.fixture(scope="module")
def ca1_geometry():
    """A full CA1 field of view; few frames, since only the geometry is looked at."""
    return simulate_realistic_1p("ca1", n_frames=20, rng=5)


def test_psf_radial_profile_matches_the_ca1_target():
    img = _cell(Optics(), 8.25 / 1.65)  # the CA1 preset's soma: 5 px
    c = img.shape[0] // 2
    profile = radial_profile(img, (c, c), RADII)
    np.testing.assert_allclose(profile, CA1_PROFILE, atol=0.03)
    assert 6.0 <= np.interp(0.5, profile[::-1], RADII[::-1]) <= 7.5  # half-max radius
    assert _within(img, 5) == pytest.approx(0.32, abs=0.04)
    assert _within(img, 10) == pytest.approx(0.75, abs=0.04)


def test_simulated_ca1_footprints_have_the_target_profile_and_energy(ca1_geometry):
    t = ca1_geometry.truth
    rows, cols = t.dims
    profiles, e5, e10 = [], [], []
    for fp in t.footprints:
        c = np.unravel_index(np.argmax(fp), fp.shape)
        if min(c[0], c[1], rows - 1 - c[0], cols - 1 - c[1]) < 25:  # the border clips the halo
            continue
        profiles.append(radial_profile(fp, c, RADII))
        e5.append(_within(fp, 5))
        e10.append(_within(fp, 10))
    assert len(profiles) > 50
    np.testing.assert_allclose(np.median(profiles, axis=0), CA1_PROFILE, atol=0.06)
    assert np.median(e5) == pytest.approx(0.32, abs=0.06)
    assert np.median(e10) == pytest.approx(0.75, abs=0.06)
    area = np.median(np.asarray(energy_masks(t.footprints).sum(axis=0)).ravel())
    assert 450 <= area <= 700  # issue #16: ~576 px


def test_densities_and_overlap(ca1_geometry):
    t = ca1_geometry.truth
    assert isinstance(t, GroundTruth) and t.n_neurons == 160
    assert sum(label.startswith("cell") for label in t.background_labels) == 100
    masks = energy_masks(t.footprints)
    inter = (masks.T @ masks).toarray()
    np.fill_diagonal(inter, 0)
    assert (inter.max(axis=1) > 0).mean() > 0.9  # dense: nearly every neuron's mask touches another's
    cortex = simulate_realistic_1p("cortex_l23", n_frames=5, shape=(128, 128), rng=5).truth
    assert cortex.n_neurons == 35  # 140 per 256², scaled to the area
    assert np.median(cortex.sigmas.mean(axis=1)) < 0.6 * np.median(t.sigmas.mean(axis=1))


def test_out_of_focus_cells_are_broader_and_dimmer(ca1_geometry):
    o = Optics()
    focus = _cell(o, 5.0)
    for dz in (-50.0, 25.0):  # the nearest off-plane cells of the presets
        off = _cell(o, 5.0, dz)
        assert (off > 0.5).sum() > 1.3 * (focus > 0.5).sum()
        assert o.excitation(dz) * focus.sum() / off.sum() < 0.8  # same photons, lower peak
    t = ca1_geometry.truth
    oof = np.array([lab.startswith("cell") for lab in t.background_labels])
    assert np.all(np.abs(t.out_of_focus_defocus_um) >= 25) and np.all(np.abs(t.defocus_um) <= 5)
    assert 0.15 < (t.out_of_focus_defocus_um < 0).mean() < 0.5  # a third above the focal plane
    peak_in = np.median(t.calcium.max(axis=1))
    peak_oof = np.median(t.background_temporal[oof].max(axis=1))
    assert peak_oof < 0.7 * peak_in
    area_in = np.median(np.asarray(energy_masks(t.footprints).sum(axis=0)).ravel())
    area_oof = np.median(np.asarray(energy_masks(t.background_spatial[oof]).sum(axis=0)).ravel())
    assert area_oof > 1.5 * area_in


def test_movie_is_the_truth_plus_shot_and_read_noise():
    sim = simulate_realistic_1p("ca1", shape=(64, 64), n_frames=200, rng=2)
    t = sim.truth
    expected = t.background(0, 200) + t.neurons(0, 200)
    resid = sim.movie - expected
    assert abs(resid.mean()) < 0.5
    # Poisson: variance = expected count, plus read noise
    lo, hi = expected < np.median(expected), expected >= np.median(expected)
    for sel in (lo, hi):
        assert resid[sel].var() == pytest.approx(expected[sel].mean() + t.read_noise**2, rel=0.05)
    assert t.noise_sd == pytest.approx(np.sqrt(600 + 25))
    assert t.peak_snr.min() >= 1.5 and t.peak_snr.max() <= 10.0
    np.testing.assert_allclose(t.calcium.max(axis=1), t.noise_sd * t.peak_snr, rtol=1e-5)


def test_motion_shifts_are_returned_and_applied():
    still = simulate_realistic_1p("ca1", shape=(96, 96), n_frames=40, rng=3)
    moving = simulate_realistic_1p("ca1", shape=(96, 96), n_frames=40, rng=3, motion_px=2.0)
    assert not np.any(still.truth.shifts)
    shifts = moving.truth.shifts
    assert shifts.shape == (40, 2) and 0.8 < shifts.std() < 4.0
    assert np.any(np.abs(shifts - np.round(shifts)) > 0.1)  # sub-pixel
    # the noise-free scene of each frame, shifted by the truth, explains the moving frame
    from scipy.ndimage import shift as nd_shift

    scene = still.truth.background(0, 40) + still.truth.neurons(0, 40)
    for t in range(0, 40, 8):
        good = nd_shift(scene[t], shifts[t], order=3, mode="nearest")
        wrong = nd_shift(scene[t], -shifts[t], order=3, mode="nearest")
        inner = (slice(8, -8), slice(8, -8))
        err_good = np.abs(moving.movie[t][inner] - good[inner]).mean()
        err_wrong = np.abs(moving.movie[t][inner] - wrong[inner]).mean()
        assert err_good < 25.0  # ~ the noise: sqrt(600) e-
        if np.abs(shifts[t]).max() > 0.7:
            assert err_good < err_wrong


def test_photobleaching_dims_the_movie():
    sim = simulate_realistic_1p("ca1", shape=(48, 48), n_frames=300, rng=4, bleach_fraction=0.3)
    b = sim.truth.bleaching
    assert b[0] == 1.0 and b[-1] == pytest.approx(0.7)
    ratio = sim.movie[-20:].mean() / sim.movie[:20].mean()
    assert ratio == pytest.approx(b[-20:].mean() / b[:20].mean(), abs=0.03)


def test_same_rng_same_movie_and_streaming_into_out(tmp_path):
    a = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=70, rng=7)
    b = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=70, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.truth.footprints, b.truth.footprints)
    out = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=(70, 64, 64))
    c = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=70, rng=7, out=out)
    assert c.movie is out
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), a.movie)
    d = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=70, rng=8)
    assert not np.array_equal(a.movie, d.movie)


def test_truth_without_rendering_is_the_rendered_runs_truth():
    kwargs = dict(shape=(48, 48), n_frames=30, rng=6, motion_px=1.0, bleach_fraction=0.2)
    rendered = simulate_realistic_1p("cortex_l23", **kwargs)
    bare = simulate_realistic_1p("cortex_l23", render=False, **kwargs)
    assert bare.movie.shape == (0, 48, 48) and bare.movie.dtype == np.float32
    for f in dataclasses.fields(rendered.truth):
        np.testing.assert_array_equal(getattr(bare.truth, f.name), getattr(rendered.truth, f.name), err_msg=f.name)
    out = np.full((30, 48, 48), 7.0, np.float32)
    given = simulate_realistic_1p("cortex_l23", render=False, out=out, **kwargs)
    assert given.movie is out and np.all(out == 7.0)  # given back untouched


def test_overrides_and_a_dim_nucleus():
    sim = simulate_realistic_1p("ca1", shape=(64, 64), n_frames=5, rng=1, n_neurons=64, n_vessels=0)
    assert sim.truth.n_neurons == 4  # 64 per 256², a 64² field
    assert not any(label.startswith("vessel") for label in sim.truth.background_labels)
    soma = soma_image((5.0, 5.0), 0.0, half_width_px=8, nucleus_fraction=0.55, nucleus_contrast=0.5)
    assert soma[8, 8] < soma[8, 11]  # the nucleus is dimmer than the cytosol around it


def test_a_slow_drift_settles_over_the_movie_on_top_of_the_motion():
    jitter = simulate_realistic_1p("ca1", shape=(48, 48), n_frames=60, rng=3, motion_px=0.5, render=False)
    drifting = simulate_realistic_1p("ca1", shape=(48, 48), n_frames=60, rng=3, motion_px=0.5, drift_px=3.0,
                                     render=False)
    drift = drifting.truth.shifts - jitter.truth.shifts  # the motion's draws are unchanged by the drift's
    assert np.allclose(drift[0], 0) and np.hypot(*drift[-1]) == pytest.approx(3.0)
    along = np.hypot(*drift.T)
    assert np.all(np.diff(along) > 0) and along[30] > 0.75 * 3.0  # always on, mostly early (a settling)
    assert np.allclose(drift[1:, 0] * drift[-1, 1] - drift[1:, 1] * drift[-1, 0], 0)  # one direction


@pytest.mark.parametrize("kwargs", [dict(configuration="hippocampus"), dict(n_frames=0), dict(motion_px=-1.0),
                                    dict(drift_px=-1.0),
                                    dict(bleach_fraction=1.0), dict(not_a_setting=1), dict(shape=(4, 4)),
                                    dict(out=np.zeros((3, 64, 64), np.float32))])
def test_bad_arguments_are_refused(kwargs):
    kwargs = {"shape": (64, 64), "n_frames": 5, **kwargs}
    with pytest.raises(ParameterError):
        simulate_realistic_1p(**kwargs)


def test_gaussian_simulator_is_unchanged():
    # the sum of simulate_1p's movie before cnmflow.synthetic became a package
    sim = simulate_1p(shape=(32, 32), n_frames=50, n_neurons=4, rng=0)
    assert sim.movie.shape == (50, 32, 32) and sim.truth.kind == "1p"
    assert float(sim.movie.astype(np.float64).sum()) == pytest.approx(44763834.74382019, rel=1e-9)
