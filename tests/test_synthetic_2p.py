"""The realistic two-photon simulator (cnmflow/synthetic/realistic_2p.py, two_photon.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from cnmflow.errors import ParameterError
from cnmflow.synthetic import simulate_realistic_2p
from cnmflow.synthetic.two_photon import SectionOptics, photomultiplier, section_image

SMALL = dict(shape=(96, 96), n_frames=200)


@pytest.fixture(scope="module")
def small():
    return simulate_realistic_2p(rng=7, **SMALL)


def _ring_and_centre(img: np.ndarray) -> tuple[float, float]:
    """Mean of the image at its centre pixel's 3×3 and its maximum (the ring)."""
    c = img.shape[0] // 2
    return float(img[c - 1:c + 2, c - 1:c + 2].mean()), float(img.max())


def test_a_soma_cut_through_its_middle_is_a_ring_and_one_grazed_is_a_smaller_dimmer_disc():
    optics = SectionOptics()
    kw = dict(half_width_px=10, nucleus_fraction=0.6, nucleus_contrast=0.85)
    middle = section_image(optics, (5.5, 5.5), 6.5, 0.0, 0.0, **kw)
    grazed = section_image(optics, (5.5, 5.5), 6.5, 0.0, 8.0, **kw)
    centre, ring = _ring_and_centre(middle)
    assert centre < 0.4 * ring  # the nucleus holds little of a cytosolic indicator
    g_peak = float(grazed.max())
    assert grazed[10, 10] == pytest.approx(g_peak, rel=0.02)  # a cap of cytosol: brightest in its middle
    assert g_peak < 0.5 * ring
    assert (grazed > 0.5 * g_peak).sum() < (middle > 0.5 * ring).sum()
    assert np.count_nonzero(section_image(optics, (5.5, 5.5), 6.5, 0.0, 20.0, **kw) > 1e-6) == 0  # out of reach


def test_photomultiplier_noise_is_poisson_times_its_excess_factor():
    draw = photomultiplier(np.random.default_rng(0), excess_noise=1.3, electronic_noise=0.0)
    lam = np.full((200_000,), 4.0)
    frames = draw(lam)
    assert frames.dtype == np.float32
    assert frames.mean() == pytest.approx(4.0, rel=0.01)
    assert frames.var() == pytest.approx(1.3 * 4.0, rel=0.03)
    assert np.all(draw(np.zeros(10)) == 0)


def test_ground_truth_cells_are_rings_in_the_plane_and_grazing_cells_sit_in_the_background(small):
    t = small.truth
    assert t.kind == "2p-realistic" and t.footprints.shape[1:] == (96, 96)
    assert np.all(np.abs(t.defocus_um) <= 4.5)
    assert np.all((np.abs(t.out_of_focus_defocus_um) >= 7.0) & (np.abs(t.out_of_focus_defocus_um) <= 10.0))
    assert np.allclose(t.footprints.reshape(t.n_neurons, -1).max(axis=1), 1.0)
    rows, cols = np.round(t.centers).astype(int).T
    centres = t.footprints[np.arange(t.n_neurons), rows, cols]   # the nucleus, darker than the ring around it
    through_nucleus = np.abs(t.defocus_um) < 2.0   # further out the plane passes above or below the nucleus
    assert through_nucleus.any() and np.all(centres[through_nucleus] < 0.4) and np.median(centres) < 0.5
    labels = np.array(t.background_labels)
    assert labels[0] == "resting" and np.char.startswith(labels, "cell").sum() == len(t.out_of_focus_defocus_um)
    assert t.calcium.shape == (t.n_neurons, 200) and np.all(t.calcium.max(axis=1) > 0)


def test_movie_is_the_scene_through_the_photomultiplier(small):
    t = small.truth
    expected = np.tensordot(t.calcium.T, t.footprints, axes=1) + t.background()
    assert small.movie.mean() == pytest.approx(float(expected.mean()), rel=0.01)
    residual = small.movie - expected
    assert abs(float(residual.mean())) < 0.02
    bright = expected > np.percentile(expected, 90)
    dim = expected < np.percentile(expected, 10)
    # shot noise: variance grows with the expected count, by the tube's excess factor
    assert residual[bright].var() / expected[bright].mean() == pytest.approx(1.3, rel=0.1)
    assert residual[dim].var() < residual[bright].var()


def test_same_rng_same_movie_and_motion_and_bleaching(small):
    again = simulate_realistic_2p(rng=7, **SMALL)
    assert np.array_equal(again.movie, small.movie)
    moved = simulate_realistic_2p(rng=7, motion_px=1.0, bleach_fraction=0.3, **SMALL)
    assert np.array_equal(moved.truth.footprints, small.truth.footprints)
    assert np.abs(moved.truth.shifts).max() > 0.5
    assert moved.truth.bleaching[-1] == pytest.approx(0.7)
    assert moved.movie[-20:].mean() < 0.8 * moved.movie[:20].mean()


def test_cells_scale_with_the_field_and_keep_their_distance():
    sim = simulate_realistic_2p(rng=1, shape=(128, 128), n_frames=50, n_neurons=40)
    t = sim.truth
    assert t.n_neurons == 10   # 40 per 256², a quarter of the area
    d = np.hypot(*(t.centers[:, None, :] - t.centers[None, :, :]).transpose(2, 0, 1)) * t.pixel_um
    dz = t.defocus_um[:, None] - t.defocus_um[None, :]
    distance = np.hypot(d, dz)[~np.eye(t.n_neurons, dtype=bool)]
    assert distance.min() >= 11.0


def _neuropil_over_somata(truth) -> np.ndarray:
    """Per cell: the neuropil's fluctuation (sd over its modes) on its bright ring over that in an annulus around it."""
    modes = truth.background_spatial[np.char.startswith(np.array(truth.background_labels), "neuropil")]
    sd = np.sqrt((modes ** 2).sum(axis=0))
    ratios = []
    for footprint in truth.footprints:
        body = footprint > 0.01
        annulus = ndi.binary_dilation(body, iterations=8) & ~ndi.binary_dilation(body, iterations=3)
        ratios.append(sd[footprint > 0.5].mean() / sd[annulus].mean())
    return np.asarray(ratios)


def test_haze_lays_the_neuropils_out_of_focus_light_over_the_somata_and_keeps_the_rest_of_the_scene():
    kw = dict(shape=(128, 128), n_frames=20, rng=5)
    plain, hazy = simulate_realistic_2p(neuropil_haze=0.0, **kw), simulate_realistic_2p(**kw)
    # a soma displaces the neuropil in its plane: without haze its ring carries little of the surround's fluctuation;
    # the preset's haze gives it about suite2p's contamination ratio (0.7), as somata in tissue carry
    assert np.median(_neuropil_over_somata(plain.truth)) < 0.25
    assert 0.5 < np.median(_neuropil_over_somata(hazy.truth)) < 0.8
    # the same cells and activity (no extra random draw), the neuropil's total light unchanged
    assert np.array_equal(plain.truth.footprints, hazy.truth.footprints)
    assert np.array_equal(plain.truth.calcium, hazy.truth.calcium)
    rest = [sim.truth.background_spatial[0].sum() for sim in (plain, hazy)]
    assert rest[1] == pytest.approx(rest[0], rel=0.01)


@pytest.mark.parametrize("kwargs", [dict(configuration="ca1"), dict(neuropil=0.2), dict(n_frames=0),
                                    dict(bleach_fraction=1.0), dict(motion_px=-1.0), dict(neuropil_haze=1.0),
                                    dict(neuropil_haze=-0.1), dict(haze_um=0.0)])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ParameterError):
        simulate_realistic_2p(**{**SMALL, **kwargs})
