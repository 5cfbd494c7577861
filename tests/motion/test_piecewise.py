"""Piecewise-rigid registration follows a smooth non-rigid displacement that a rigid shift cannot."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cnmflow.motion import correct_motion, motion_params
from cnmflow.motion.piecewise import FieldInterpolator, patch_grid
from tests.motion.conftest import rms, textured_image


def _sinusoidal_field(shape, amplitude):
    """(2, rows, cols) displacement, half a sine period across the frame: the middle columns move
    down by ``amplitude`` while the edges stay, the top rows move right and the bottom ones left."""
    rows, cols = np.indices(shape, dtype=np.float64)
    dy = amplitude * np.sin(np.pi * cols / (shape[1] - 1))
    dx = amplitude * np.cos(np.pi * rows / (shape[0] - 1))
    return np.stack([dy, dx])


def _displaced(image, field):
    """Content moved by ``field``: out(r, c) = image(r - dy, c - dx)."""
    rows, cols = np.indices(image.shape, dtype=np.float64)
    return ndimage.map_coordinates(image, [rows - field[0], cols - field[1]], order=3, mode="nearest").astype(np.float32)


@pytest.fixture(scope="module")
def nonrigid_movie():
    rng = np.random.default_rng(11)
    image = textured_image((128, 128), rng=12)
    amplitudes = 3.0 * np.sin(np.linspace(0, 4 * np.pi, 40))
    fields = np.stack([_sinusoidal_field(image.shape, a) for a in amplitudes])
    movie = np.stack([_displaced(image, f) for f in fields]) + rng.normal(0, 0.5, (40, 128, 128)).astype(np.float32)
    return image, fields, movie


def test_patch_grid_follows_caiman_layout():
    grid = patch_grid((256, 256), strides=(96, 96), overlaps=(32, 32))
    assert grid.row_starts == (0, 96, 128) and grid.size == (128, 128) and grid.n_patches == 9
    np.testing.assert_allclose(grid.centers()[1], [63.5, 159.5])
    assert patch_grid((60, 50), strides=(96, 96), overlaps=(32, 32)).shape == (1, 1)


def test_field_interpolation_reproduces_patch_shifts_at_the_centres_and_is_smooth():
    grid = patch_grid((128, 128), strides=(32, 32), overlaps=(16, 16))
    interpolate = FieldInterpolator.for_grid(grid, (128, 128))
    rng = np.random.default_rng(0)
    shifts = rng.normal(size=(grid.n_patches, 2))
    field = interpolate(shifts)
    centres = grid.centers()
    # centres are at half pixels: the mean of the four surrounding pixels' values
    for k in (0, 5, grid.n_patches - 1):
        r, c = (int(v) for v in centres[k])
        np.testing.assert_allclose(field[:, r:r + 2, c:c + 2].mean(axis=(1, 2)), shifts[k], atol=0.05)
    assert np.abs(np.diff(field, axis=1)).max() < 0.5 and np.abs(np.diff(field, axis=2)).max() < 0.5
    np.testing.assert_allclose(FieldInterpolator.for_grid(grid, (128, 128))(np.ones((grid.n_patches, 2))), 1.0)


def test_piecewise_recovers_a_sinusoidal_field_where_rigid_cannot(nonrigid_movie):
    image, fields, movie = nonrigid_movie
    common = dict(max_shifts=6, strides=(32, 32), overlaps=(16, 16), max_deviation_rigid=4, border_nan="copy")
    out_pw, out_rig = np.empty_like(movie), np.empty_like(movie)
    pw = correct_motion(movie, out_pw, params=motion_params(motion_correction="piecewise_rigid", **common))
    correct_motion(movie, out_rig, params=motion_params(motion_correction="rigid", **common))
    grid = pw.grid
    assert pw.shifts_els.shape == (40, grid.n_patches, 2)
    centres = np.rint(grid.centers()).astype(int)
    true = -fields[:, :, centres[:, 0], centres[:, 1]].transpose(0, 2, 1)      # (T, patches, 2) to apply
    error = pw.shifts_els - true
    error -= error.mean(axis=(0, 1))            # the template's own frame
    assert rms(error) <= 0.3
    # the corrected movie is still: every frame close to the mean corrected frame
    inner = (slice(None), slice(16, -16), slice(16, -16))
    spread_pw = np.abs(out_pw - out_pw.mean(axis=0))[inner].mean()
    spread_rig = np.abs(out_rig - out_rig.mean(axis=0))[inner].mean()
    assert spread_pw < 0.5 * spread_rig


def test_patch_shifts_stay_within_max_deviation_of_the_rigid_shift(nonrigid_movie):
    _, _, movie = nonrigid_movie
    params = motion_params(motion_correction="piecewise_rigid", max_shifts=6, strides=(32, 32), overlaps=(16, 16),
                           max_deviation_rigid=1)
    result = correct_motion(movie, None, params=params)
    deviation = np.abs(result.shifts_els - result.shifts_rig[:, None, :])
    assert deviation.max() <= 1.0 + 1e-5
    layout = result.caiman_shifts()
    assert isinstance(layout, list) and layout[0].shape == (40, result.grid.n_patches)
