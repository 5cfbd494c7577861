"""A movie in which no pixel changes over time: a file allocated and never written, or one still image saved as a
movie. No parameter finds a cell in it, and the fit would run to the end before saying so."""

from __future__ import annotations

import numpy as np

from cnmflow.movies.checks.memo import chunk_frames, refused
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import iter_chunks, read_frames


def check_not_blank(info: MovieInfo) -> None:
    """Raise MovieError when no pixel of the movie changes over time (every frame equals the first).

    Two frames decide it for a recording (a camera's noise changes every pixel); only where they are equal is the
    rest read, chunk by chunk, up to the first frame that differs."""
    refused("blank", info, lambda: _blank_problem(info))


def _blank_problem(info: MovieInfo) -> str | None:
    """The refusal of a movie whose frames all equal its first, else None."""
    if info.n_frames < 2:
        return None
    first = read_frames(info, 0, 2)
    if not np.array_equal(first[0], first[1], equal_nan=True):
        return None
    for _, block in iter_chunks(info, chunk_frames=chunk_frames(info)):
        if not np.array_equal(block, np.broadcast_to(first[0], block.shape), equal_nan=True):
            return None
    return (f"{info.path} does not change over time: every pixel keeps one value in all {info.n_frames} frames "
            "(a blank or never-written recording, or one still image saved as a movie), so no cell can be found "
            "in it; check the file against the acquisition, or copy it again if it was still being written")
