"""Defective pixels replaced by their neighbours' median in every frame read."""

from __future__ import annotations

import numpy as np

from cnmflow.movies.pixel_repair import mended


def test_a_listed_pixel_takes_the_median_of_its_unlisted_neighbours_frame_by_frame():
    """Two hot pixels side by side: each one's median leaves the other out; a corner pixel uses the 3 it has."""
    rng = np.random.default_rng(0)
    block = rng.normal(100, 5, (4, 6, 6)).astype(np.float32)
    block[:, 2, 2] = block[:, 2, 3] = block[:, 0, 0] = 4000
    clean = block.copy()
    out = mended(block, [(2, 2), (2, 3), (0, 0)])
    around = [clean[:, i, j] for i in range(1, 4) for j in range(1, 4) if (i, j) not in ((2, 2), (2, 3))]
    np.testing.assert_array_equal(out[:, 2, 2], np.median(np.stack(around, axis=1), axis=1))
    np.testing.assert_array_equal(out[:, 0, 0], np.median(clean[:, [0, 1, 1], [1, 0, 1]], axis=1))
    assert out.max() < 200  # no listed value left
    untouched = np.ones((6, 6), bool)
    untouched[[2, 2, 0], [2, 3, 0]] = False
    np.testing.assert_array_equal(out[:, untouched], clean[:, untouched])


def test_a_read_only_block_is_copied_not_written():
    """A reader may hand over a view of its file: it is never written through."""
    block = np.full((2, 3, 3), 7.0, np.float32)
    block[:, 1, 1] = 99
    block.setflags(write=False)
    out = mended(block, [(1, 1)])
    assert block[0, 1, 1] == 99 and out[0, 1, 1] == 7
