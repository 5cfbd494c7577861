"""Frames a recording lost (an isxd's dropped or cropped frames: the file holds no data for them) filled by linear
interpolation between the nearest frames it kept: the one place such frames are made, so the fit's work copy, the
"auto" estimate's sample and validation's checks all see the same frames (read as they are stored, zeros, they had
set the seed search's sign-flipped null and every pixel's noise by a few blank frames).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cnmflow.movies.pixel_repair import writable


def filled(block: np.ndarray, start: int, invalid: tuple[int, ...], n_frames: int,
           read_one: Callable[[int], np.ndarray]) -> np.ndarray:
    """``block`` (frames ``start``… of a movie of ``n_frames``) with each frame in ``invalid`` replaced by the linear
    interpolation between the nearest valid frames before and after it (the nearest one at the movie's ends);
    ``read_one(i)`` reads valid frame i where it lies outside the block. Written in place where the block is the
    reader's own copy (:func:`~cnmflow.movies.pixel_repair.writable`); returned."""
    inside = [i for i in invalid if start <= i < start + block.shape[0]]
    if not inside:
        return block
    block = writable(block)
    bad = np.zeros(n_frames, dtype=bool)
    bad[list(invalid)] = True
    valid = np.flatnonzero(~bad)
    source = {}  # valid frames read before any is written over: interpolation reads the stored values only

    def frame(i: int) -> np.ndarray:
        if i not in source:
            source[i] = np.array(block[i - start]) if start <= i < start + block.shape[0] else read_one(i)
        return source[i]

    for i in inside:
        at = int(np.searchsorted(valid, i))
        before = int(valid[at - 1]) if at > 0 else None
        after = int(valid[at]) if at < valid.size else None
        if before is None or after is None:
            block[i - start] = frame(after if before is None else before)
        else:
            w = (i - before) / (after - before)
            block[i - start] = (1.0 - w) * frame(before) + w * frame(after)
    return block
