"""The 2P patch job's reads of its box: noise and downsampled copy from one read of the file."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.patch_job import two_photon
from cnmflow.engine.patch_job.box_io import BoxView
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.resample import downsample
from cnmflow.engine.sections import EngineSettings
from cnmflow.params import PRESETS, build_params


class _CountingMovie:
    """A (T, rows, cols) array that counts the frames read from it."""

    def __init__(self, array: np.ndarray):
        self.array, self.shape, self.ndim, self.frames_read = array, array.shape, 3, 0

    def __getitem__(self, key):
        out = self.array[key]
        self.frames_read += out.shape[0]
        return out


@pytest.mark.parametrize("tsub, ssub, n_frames", [(1, 1, 300), (2, 1, 300), (2, 2, 301), (2, 1, 3200)])
def test_noise_and_downsampled_copy_are_those_of_the_box(tsub, ssub, n_frames):
    movie = np.random.default_rng(6).normal(100.0, 5.0, size=(n_frames, 30, 28)).astype(np.float32)
    box = PatchBox(row0=3, row1=25, col0=4, col1=20)
    counting = _CountingMovie(movie)
    init = EngineSettings.from_params(build_params({**PRESETS["2p"], "K": 2, "tsub": tsub, "ssub": ssub,
                                                    "gSig": 2, "gSiz": 5})).patch_job.init
    noise, Y = two_photon._noise_and_downsampled(BoxView(counting, box), init, PatchStorage())
    with Y:
        patch = movie[:, 3:25, 4:20]
        np.testing.assert_array_equal(noise, pixel_noise(patch))
        np.testing.assert_array_equal(Y[:], downsample(patch, tsub=tsub, ssub=ssub))
    reads = 2 if n_frames > 3072 and (tsub, ssub) != (1, 1) else 1  # a long recording's noise samples frames
    assert counting.frames_read <= reads * n_frames
