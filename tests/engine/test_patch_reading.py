"""A patch is read in pieces: the noise sample and chunked downsampling equal the whole-array versions."""

from __future__ import annotations

import numpy as np

from cnmflow.engine import patch_job
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_job import BoxView, downsample, downsample_in_chunks
from cnmflow.engine.patches import PatchBox


def test_box_view_reads_exactly_the_box():
    movie = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    view = BoxView(movie, PatchBox(1, 5, 2, 6))
    assert view.shape == (5, 4, 4)
    np.testing.assert_array_equal(view[1:3, 1:3, :], movie[1:3, 2:4, 2:6])
    np.testing.assert_array_equal(view[:, :, :], movie[:, 1:5, 2:6])


def test_chunked_downsampling_and_noise_equal_the_whole_patch(monkeypatch):
    movie = np.random.default_rng(0).random((1001, 30, 40), dtype=np.float32)
    box = PatchBox(3, 25, 5, 33)
    monkeypatch.setattr(patch_job, "READ_CHUNK_BYTES", 4 * 22 * 28 * 10)  # 10 frames per chunk
    view = BoxView(movie, box)
    whole = movie[:, 3:25, 5:33]
    for tsub, ssub in ((1, 1), (2, 2), (3, 1)):
        np.testing.assert_array_equal(downsample_in_chunks(view, tsub=tsub, ssub=ssub),
                                      downsample(whole, tsub=tsub, ssub=ssub))
    np.testing.assert_array_equal(pixel_noise(view), pixel_noise(whole))
