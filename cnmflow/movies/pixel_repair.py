"""Defective sensor pixels (stuck or hot, found by :func:`cnmflow.movies.checks.find_defective_pixels`)
replaced in every frame read by the median of their neighbours: the one place a movie's frames are mended, so the
fit, the motion correction and the "auto" estimate all see the same pixels.

Left as they are, such a pixel leaks into the trace of a cell over it (a stuck pixel on a simulated 2P cell took
the trace's correlation with the truth from .99 to .79, a noisy one on a 1P cell to .57) or seeds a false cell (a
pixel of 3x gain); sensors' own defective-pixel correction does the same replacement.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Pixel = tuple[int, int]


def mended(block: np.ndarray, pixels: Sequence[Pixel]) -> np.ndarray:
    """``block`` (frames, rows, cols) with each of ``pixels`` replaced, frame by frame, by the median of its
    neighbours within one pixel that are not themselves listed (in place where the block is the reader's own copy;
    returned)."""
    if not pixels or block.shape[0] == 0:
        return block
    block = writable(block)
    rows, cols = block.shape[1:]
    listed = set(map(tuple, pixels))
    for r, c in listed:
        around = [(i, j) for i in range(r - 1, r + 2) for j in range(c - 1, c + 2)
                  if 0 <= i < rows and 0 <= j < cols and (i, j) not in listed]
        if around:
            at_rows, at_cols = zip(*around)
            block[:, r, c] = np.median(block[:, at_rows, at_cols], axis=1)
    return block


def writable(block: np.ndarray) -> np.ndarray:
    """``block``, or a copy of it where it is a reader's view of its file (read-only or memory-mapped): a block is
    mended in place, and a user's file is never written through."""
    return np.array(block) if not block.flags.writeable or isinstance(block, np.memmap) else block
