"""The bounded matrix-DFT correlation equals the FFT cross-correlation and honours its window."""

from __future__ import annotations

import numpy as np
import scipy.fft

from cnmflow.motion.crosscorr import _correlation_on_grid, edge_window, register_spectra, spectra
from tests.motion.conftest import shifted, textured_image


def test_grid_correlation_matches_the_inverse_fft_at_whole_pixels():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 24, 30)).astype(np.float32)     # odd half-width case: W even, H even
    product = scipy.fft.rfft2(a) * np.conj(scipy.fft.rfft2(b))
    full = scipy.fft.irfft2(product, s=a.shape)
    offsets_r, offsets_c = np.arange(-3, 4, dtype=float), np.arange(-2, 3, dtype=float)
    grid = _correlation_on_grid(product[None].astype(np.complex64), np.array([[1.0, -2.0]]), offsets_r, offsets_c, 30)
    expected = full[np.ix_((1 + offsets_r).astype(int) % 24, (-2 + offsets_c).astype(int) % 30)]
    np.testing.assert_allclose(grid[0] / (24 * 30), expected, rtol=1e-3, atol=1e-3 * np.abs(full).max())


def test_odd_width_uses_no_nyquist_column():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 20, 25)).astype(np.float32)
    product = scipy.fft.rfft2(a) * np.conj(scipy.fft.rfft2(b))
    full = scipy.fft.irfft2(product, s=a.shape)
    grid = _correlation_on_grid(product[None].astype(np.complex64), np.zeros((1, 2)), np.zeros(1), np.arange(3.0), 25)
    np.testing.assert_allclose(grid[0, 0] / (20 * 25), full[0, :3], rtol=1e-3, atol=1e-3 * np.abs(full).max())


def test_edge_window_is_zero_in_the_margin_and_one_inside():
    w = edge_window(64, 5)
    assert np.all(w[:6] == 0) and np.all(w[-6:] == 0)
    assert w[32] == 1.0 and np.all(np.diff(w[:32]) >= 0)


def test_search_window_is_centred_where_asked():
    image = textured_image((64, 64), rng=3)
    frame = shifted(image[None], np.array([[4.0, -4.0]]))         # needs (-4, +4)
    template = spectra(image[None], margin=(7, 7))[0]
    near = register_spectra(template, spectra(frame), width=64, centers=np.array([[-3.0, 3.0]]), max_shift=(2, 2),
                            upsample_factor=10)
    far = register_spectra(template, spectra(frame), width=64, centers=np.array([[3.0, -3.0]]), max_shift=(2, 2),
                           upsample_factor=10)
    np.testing.assert_allclose(near[0], [-4.0, 4.0], atol=0.11)
    assert np.all(np.abs(far[0] - [3.0, -3.0]) <= 2.0 + 1e-9)       # clipped to its window, not the true peak
