"""Movies with known motion for the motion-correction tests (small, so the suite stays quick)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cnmflow.synthetic import simulate_1p


def textured_image(shape: tuple[int, int], *, rng) -> np.ndarray:
    """A plain 2P-like texture: smoothed noise (features ~2 px) on a baseline, float32."""
    gen = np.random.default_rng(rng)
    return (100.0 + 20.0 * ndimage.gaussian_filter(gen.normal(size=shape), 2.0)).astype(np.float32)


def shifted(frames: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each frame moved by its (row, col) shift in px with scipy.ndimage.shift (content moves by +d)."""
    return np.stack([ndimage.shift(f, d, order=3, mode="nearest") for f, d in zip(frames, shifts)]).astype(np.float32)


def aligned_error(estimated: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Estimated (applied) shifts minus the ideal -true, after removing the template's common offset."""
    error = np.asarray(estimated, dtype=np.float64) + true
    return error - error.mean(axis=0)


def rms(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(error))))


@pytest.fixture(scope="session")
def sim_1p():
    """A 128x128x160 one-photon movie (cells, vessel, smooth background) without motion."""
    return simulate_1p(shape=(128, 128), n_frames=160, n_neurons=60, gsig=3, rng=3, vessel=True, peak_snr=(4, 10))
