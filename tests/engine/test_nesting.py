"""Nested components (cnmflow.engine.nesting): a mask mostly inside another's, not two neighbours side by side."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.nesting import energy_masks, nested_pairs
from cnmflow.pixel_order import image_to_column

DIMS = (60, 60)


def _disc(center: tuple[int, int], radius: float, value: float = 1.0) -> np.ndarray:
    rows, cols = np.ogrid[:DIMS[0], :DIMS[1]]
    return np.where(np.hypot(rows - center[0], cols - center[1]) <= radius, value, 0.0)


def _A(images: list[np.ndarray]) -> sp.csc_matrix:
    return sp.csc_matrix(np.stack([image_to_column(image) for image in images], axis=1))


def test_energy_mask_holds_the_brightest_pixels_up_to_the_fraction():
    image = _disc((30, 30), 3) + _disc((30, 30), 10, 0.01)     # a bright core in a faint wide halo
    mask = energy_masks(_A([image]))
    core = image_to_column(_disc((30, 30), 3)) > 0
    assert mask.nnz < core.sum() + 60 and (mask.toarray().ravel()[core] == 1).mean() > 0.95


def test_a_small_component_inside_a_large_one_is_nested_and_side_by_side_neighbours_are_not():
    inner, outer = _disc((30, 30), 3), _disc((30, 31), 7)
    left, right = _disc((10, 10), 4), _disc((10, 15), 4)       # equal neighbours overlapping a little
    assert nested_pairs(_A([inner, outer, left, right]), DIMS) == [(0, 1)]


def test_peaks_too_far_apart_are_not_nested():
    inner = _disc((30, 22), 3, 2.0)
    outer = _disc((30, 30), 12) + _disc((30, 34), 2, 1.0)     # the outer's peak 12 px from the inner's
    A = _A([inner, outer])
    assert nested_pairs(A, DIMS) == [(0, 1)]
    assert nested_pairs(A, DIMS, max_peak_distance=5.0) == []
