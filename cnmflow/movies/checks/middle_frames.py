"""The frames from a movie's middle that the channel check and the defective-pixel check judge, read in one pass:
each frame's level, a regular grid of its pixels, and each pixel's mean and sd over the frames."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnmflow.movies.checks.memo import chunk_frames
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import iter_range

#: Frames read from the middle of a movie.
MIDDLE_FRAMES = 64
#: Pixels of each of those frames kept on a regular grid (the channel test's).
GRID_PIXELS = 8192
#: Fewest frames anything is judged on.
MIN_FRAMES = 16


@dataclass(frozen=True)
class MiddleFrames:
    """What the channel check and the defective-pixel check read of the movie's middle frames, in one pass."""

    start: int
    levels: np.ndarray  # (n,) each frame's mean
    grid: np.ndarray  # (n, m) float64: each frame's pixels on a regular grid of about GRID_PIXELS
    mean: np.ndarray  # (rows, cols) each pixel's mean over the frames
    sd: np.ndarray  # (rows, cols) each pixel's sd, summed about the first frame (0 exactly where it never changes)


def read_middle(info: MovieInfo) -> MiddleFrames | None:
    """:class:`MiddleFrames` of the movie, read a chunk at a time; None for fewer than MIN_FRAMES frames."""
    n = min(MIDDLE_FRAMES, info.n_frames - info.n_frames % 2)
    if n < MIN_FRAMES:
        return None
    first = (info.n_frames - n) // 2
    step = max(1, int(math.sqrt(info.frame_shape[0] * info.frame_shape[1] / GRID_PIXELS)))
    step_frames = chunk_frames(info)
    levels, grid, origin, sums, squares = [], [], None, None, None
    for _, chunk in iter_range(info, first, first + n, chunk_frames=step_frames):  # an AVI decoded once
        levels.append(chunk.mean(axis=(1, 2)))
        grid.append(chunk[:, ::step, ::step].reshape(len(chunk), -1).astype(np.float64))
        if origin is None:
            origin = chunk[0].astype(np.float64)
            sums, squares = np.zeros_like(origin), np.zeros_like(origin)
        for frame in chunk:
            deviation = frame - origin
            sums += deviation
            squares += deviation * deviation
    mean = sums / n
    return MiddleFrames(start=first, levels=np.concatenate(levels), grid=np.concatenate(grid), mean=origin + mean,
                         sd=np.sqrt(np.maximum(squares / n - mean * mean, 0.0)))
