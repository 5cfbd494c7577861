"""What the end-to-end output tests (export, NWB) share: one simulated 1P movie, cut into a series by each test."""

from __future__ import annotations

import pytest

from cnmflow.synthetic import simulate_1p


@pytest.fixture(scope="module")
def simulated():
    """300 frames, 48x56, 6 cells of radius 3 at 10 Hz: ``EXTRACT_PARAMS`` finds them in seconds."""
    return simulate_1p(shape=(48, 56), n_frames=300, n_neurons=6, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=3)
