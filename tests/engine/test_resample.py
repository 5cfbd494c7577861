"""Block means and upsampling (cnmflow.engine.resample): the edge rules on known arrays."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine import resample
from cnmflow.engine.resample import (block_means_along, downsample, downsample_in_chunks, downsampled_dims,
                                     downsampled_noise, downsampled_shape, frame_block_means, repeat_to_shape,
                                     resampling_operators, spatial_block_means, upsample_footprints, upsample_frames)
from cnmflow.pixel_order import frames_to_pixels, image_to_column

#: A 3 x 5 image: blocks of 2 leave a partial last row and a partial last column.
IMAGE = np.arange(15, dtype=np.float32).reshape(3, 5)


def test_partial_edge_blocks_are_the_means_of_the_pixels_they_hold():
    small = spatial_block_means(IMAGE[None], 2, edge="partial")[0]
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2],
                [(10 + 11) / 2, (12 + 13) / 2, 14]]
    np.testing.assert_allclose(small, expected, rtol=1e-6)
    assert small.dtype == np.float32


def test_replicated_edge_blocks_repeat_the_last_row_and_column():
    small = spatial_block_means(IMAGE[None].astype(np.float64), 2, edge="replicate")[0]
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 4 + 9 + 9) / 4],
                [(10 + 11) / 2, (12 + 13) / 2, 14]]
    np.testing.assert_allclose(small, expected)


def test_both_edge_rules_agree_on_whole_blocks_and_refuse_others():
    frames = np.random.default_rng(0).random((3, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(spatial_block_means(frames, 2, edge="partial"),
                               spatial_block_means(frames, 2, edge="replicate"), rtol=1e-6)
    assert spatial_block_means(frames, 1, edge="partial") is frames
    with pytest.raises(ValueError, match="edge"):
        spatial_block_means(frames, 2, edge="wrap")


def test_temporal_block_means_average_a_partial_last_block_over_its_frames():
    frames = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    np.testing.assert_array_equal(frame_block_means(frames, 2)[:, 0, 0], [0.5, 2.5, 4.0])
    traces = np.arange(10, dtype=np.float64).reshape(2, 5)
    np.testing.assert_array_equal(block_means_along(traces, 2, axis=1), [[0.5, 2.5, 4.0], [5.5, 7.5, 9.0]])
    np.testing.assert_array_equal(block_means_along(traces.T, 2, axis=0), [[0.5, 5.5], [2.5, 7.5], [4.0, 9.0]])


def test_downsample_shapes_and_chunked_downsampling_match():
    movie = np.random.default_rng(1).random((11, 7, 9)).astype(np.float32)
    assert downsampled_dims((7, 9), 2) == (4, 5)
    assert downsampled_shape(movie.shape, tsub=3, ssub=2) == (4, 4, 5)
    whole = downsample(movie, tsub=3, ssub=2)
    assert whole.shape == (4, 4, 5)
    out = np.empty(downsampled_shape(movie.shape, tsub=3, ssub=2), np.float32)
    chunked = downsample_in_chunks(movie, tsub=3, ssub=2, out=out, chunk_bytes=4 * 7 * 9 * 4)  # 3 frames a chunk
    np.testing.assert_array_equal(chunked, whole)


def test_downsampled_noise_is_the_root_of_the_block_mean_variance():
    noise = np.full((4, 4), 2.0, np.float32)
    np.testing.assert_allclose(downsampled_noise(noise, 2), np.full(4, 2.0))


@pytest.mark.parametrize("s", [2, 3])
def test_dense_upsampling_of_small_grids_equals_the_gathers(monkeypatch, s):
    x = np.random.default_rng(9).random((4, 7, 9), dtype=np.float32)
    dims = (7 * s - 1, 9 * s)  # a partial last block of rows
    dense = resample.upsample_frames(x, dims, s)
    monkeypatch.setattr(resample, "DENSE_UPSAMPLE_MAX_SIDE", 0)
    np.testing.assert_allclose(dense, resample.upsample_frames(x, dims, s), atol=1e-6)


def test_upsampling_restores_the_full_shape_and_keeps_a_constant():
    constant = np.full((2, 4, 5), 3.0, np.float32)
    up = upsample_frames(constant, (7, 9), 2)
    assert up.shape == (2, 7, 9)
    np.testing.assert_allclose(up, 3.0, rtol=1e-6)
    A = np.ones((4 * 5, 2), np.float32)
    assert upsample_footprints(A, (4, 5), (7, 9)).shape == (63, 2)
    assert repeat_to_shape(np.arange(20.0).reshape(4, 5), (7, 9)).shape == (7, 9)


def test_resampling_operators_match_the_frame_functions():
    frames = np.random.default_rng(2).random((3, 7, 9)).astype(np.float32)
    down, up = resampling_operators((7, 9), 2)
    small = spatial_block_means(frames, 2, edge="partial")
    np.testing.assert_allclose(frames_to_pixels(frames) @ down.T, frames_to_pixels(small), rtol=1e-5)
    np.testing.assert_allclose((up @ frames_to_pixels(small).T).T,
                               frames_to_pixels(upsample_frames(small, (7, 9), 2)), rtol=1e-5)
    np.testing.assert_allclose(image_to_column(small[0]), down @ image_to_column(frames[0]), rtol=1e-5)
