"""The 1P high-pass (gSig_filt) is what makes miniscope-like frames registrable."""

from __future__ import annotations

import numpy as np

from cnmflow.motion import correct_motion, motion_params
from cnmflow.motion.highpass import highpass, highpass_kernel
from tests.motion.conftest import aligned_error, rms, shifted


def test_kernel_is_zero_mean_and_symmetric():
    kernel = highpass_kernel((3, 3))
    assert kernel.shape == (11, 11)
    assert abs(float(kernel.sum())) < 1e-5
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])
    assert kernel[5, 5] == kernel.max()


def test_smooth_background_is_suppressed_and_cells_kept():
    rows, cols = np.indices((96, 96), dtype=np.float64)
    smooth = 1000.0 + 500.0 * np.exp(-((rows - 40) ** 2 + (cols - 50) ** 2) / (2 * 30.0 ** 2))
    cell = 50.0 * np.exp(-((rows - 48) ** 2 + (cols - 48) ** 2) / (2 * 3.0 ** 2))
    inner = (slice(10, -10), slice(10, -10))
    background = highpass(smooth[None].astype(np.float32), gsig_filt=(3, 3))[0][inner]
    filtered = highpass((smooth + cell)[None].astype(np.float32), gsig_filt=(3, 3))[0]
    assert np.unravel_index(np.argmax(filtered), filtered.shape) == (48, 48)
    # the cell stands out of the background: ~0.1x the background's range before, > 4x after
    assert cell.max() < 0.12 * np.ptp(smooth[inner])
    assert filtered.max() > 4 * np.abs(background).max()
    np.testing.assert_array_equal(highpass(smooth[None], gsig_filt=None)[0], smooth.astype(np.float32))


def test_miniscope_like_movie_registers_only_with_the_high_pass(sim_1p):
    """Cells and vessel move; a bright vignetting fixed to the sensor does not (as on a miniscope)."""
    movie = sim_1p.movie
    rng = np.random.default_rng(21)
    true = rng.uniform(-6, 6, size=(movie.shape[0], 2))
    rows, cols = np.indices(movie.shape[1:], dtype=np.float64)
    vignetting = 3.0 * float(movie.mean()) * np.exp(-((rows - 64) ** 2 + (cols - 64) ** 2) / (2 * 50.0 ** 2))
    moving = shifted(movie, true) + vignetting.astype(np.float32)
    raw = correct_motion(moving, None, params=motion_params(motion_correction="rigid", max_shifts=8))
    filtered = correct_motion(moving, None, params=motion_params(motion_correction="rigid", max_shifts=8, gSig_filt=3))
    assert rms(aligned_error(raw.shifts_rig, true)) > 1.0
    assert rms(aligned_error(filtered.shifts_rig, true)) <= 0.3
