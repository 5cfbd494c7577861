"""Rigid registration recovers known sub-pixel shifts (CaImAn's sign: the shift applied to the frame)."""

from __future__ import annotations

import numpy as np

from cnmflow.motion import correct_motion, motion_params
from cnmflow.motion.crosscorr import register_spectra, spectra
from tests.motion.conftest import aligned_error, rms, shifted, textured_image


def test_sign_and_axis_convention_is_caimans():
    """A frame whose content moved down 3.4 px and left 1.7 px is registered by (-3.4, +1.7)."""
    image = textured_image((96, 96), rng=0)
    frame = shifted(image[None], np.array([[3.4, -1.7]]))
    found = register_spectra(spectra(image[None], margin=(6, 6))[0], spectra(frame), width=96,
                             centers=np.zeros((1, 2)), max_shift=(5, 5), upsample_factor=10)
    np.testing.assert_allclose(found[0], [-3.4, 1.7], atol=0.11)


def test_textured_image_shifts_up_to_10_px_recovered_within_a_fifth_of_a_pixel():
    rng = np.random.default_rng(1)
    image = textured_image((128, 128), rng=2)
    true = rng.uniform(-10, 10, size=(60, 2))
    movie = shifted(np.repeat(image[None], 60, axis=0), true) + rng.normal(0, 1.0, (60, 128, 128)).astype(np.float32)
    result = correct_motion(movie, None, params=motion_params(motion_correction="rigid", max_shifts=12))
    assert result.shifts_rig.shape == (60, 2) and result.shifts_rig.dtype == np.float32
    assert rms(aligned_error(result.shifts_rig, true)) <= 0.2


def test_one_photon_movie_shifts_up_to_10_px_recovered_within_a_fifth_of_a_pixel(sim_1p):
    rng = np.random.default_rng(5)
    true = rng.uniform(-10, 10, size=(sim_1p.movie.shape[0], 2))
    movie = shifted(sim_1p.movie, true)
    params = motion_params(motion_correction="rigid", max_shifts=12, gSig_filt=3)
    result = correct_motion(movie, None, params=params, chunk_frames=64)
    assert rms(aligned_error(result.shifts_rig, true)) <= 0.2


def test_a_motion_free_movie_gets_about_zero_shifts(sim_1p):
    """Zero up to the single-frame precision: exact on a clean texture, ~0.1 px on noisy 1P frames."""
    rng = np.random.default_rng(8)
    still = np.repeat(textured_image((96, 96), rng=9)[None], 30, axis=0) + rng.normal(0, 1, (30, 96, 96)).astype(np.float32)
    clean = correct_motion(still, None, params=motion_params(motion_correction="rigid"))
    assert np.abs(clean.shifts_rig).max() <= 0.1
    assert clean.crop.max <= 1
    one_photon = correct_motion(sim_1p.movie, None, params=motion_params(motion_correction="rigid", gSig_filt=3))
    assert np.abs(one_photon.shifts_rig.mean(axis=0)).max() <= 0.05      # no drift
    assert rms(one_photon.shifts_rig) <= 0.2


def test_shifts_stay_within_max_shifts():
    rng = np.random.default_rng(3)
    image = textured_image((96, 96), rng=4)
    true = np.array([[9.0, -9.0]] * 4 + [[0.0, 0.0]] * 20)
    movie = shifted(np.repeat(image[None], len(true), axis=0), true) + rng.normal(0, 1, (len(true), 96, 96)).astype(np.float32)
    result = correct_motion(movie, None, params=motion_params(motion_correction="rigid", max_shifts=4))
    assert np.abs(result.shifts_rig).max() <= 4.0 + 1e-6


def test_corrected_frames_line_up_with_the_template_frame():
    rng = np.random.default_rng(6)
    image = textured_image((96, 96), rng=7)
    true = np.vstack([np.zeros((10, 2)), rng.uniform(-5, 5, size=(30, 2))])
    movie = shifted(np.repeat(image[None], 40, axis=0), true)
    out = np.empty_like(movie)
    correct_motion(movie, out, params=motion_params(motion_correction="rigid", max_shifts=8, border_nan="copy"))
    inner = (slice(12, -12), slice(12, -12))
    before = np.abs(movie[10:][:, inner[0], inner[1]] - image[inner]).mean()
    after = np.abs(out[10:][:, inner[0], inner[1]] - image[inner]).mean()
    assert after < 0.1 * before
