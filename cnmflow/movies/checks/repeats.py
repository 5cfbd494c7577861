"""One recording given twice under files whose bytes differ: a copy saved again (compressed, converted to 32-bit,
re-exported). The run's byte hashes (:func:`cnmflow.movies.series.refuse_repeated_bytes`) miss it, and the series
analysed the recording followed by itself. Two recordings never hold the same pixel values over their middle frames,
so a digest of those frames' per-pixel means tells a copy."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from cnmflow.movies.info import MovieInfo


def content_digest(n_frames: int, pixel_means: np.ndarray) -> str:
    """The digest of a part's frame count and its middle frames' per-pixel means (as float64, whatever the file's
    pixel type: a uint16 movie and its float32 copy read alike)."""
    means = np.ascontiguousarray(pixel_means, dtype=np.float64)
    return hashlib.sha256(np.int64(n_frames).tobytes() + means.tobytes()).hexdigest()


def repeat_problem(movies: Sequence[MovieInfo], digests: Sequence[str]) -> str | None:
    """The refusal of a series two of whose parts hold the same frames, else None."""
    seen: dict[str, MovieInfo] = {}
    for movie, digest in zip(movies, digests):
        if digest in seen:
            return (f"{seen[digest].path} and {movie.path} hold the same frames (the same pixel values: one is a "
                    "copy of the other, perhaps saved again, compressed or converted): the series would analyse one "
                    "recording twice; list each movie once")
        seen[digest] = movie
    return None
