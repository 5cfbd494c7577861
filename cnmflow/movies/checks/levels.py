"""Parts of a series on different scales: one part processed apart (dF/F, normalised to 0..1, background-subtracted)
or exported at another bit depth (12-bit counts beside the same counts shifted to 16 bits). Joined, every pixel
steps at the boundary: the fit reads the step as the background's and the parts' cells as noise, with no error.

A part's level is the spread of its pixels' means over its middle frames (1st to 99th percentile). Bleaching over a
session and a change of LED power between sessions scale it by well under a factor of three, and the spread of a
1P field (vignetting) overlaps what is left; a scale apart moves the whole spread beyond that."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cnmflow.movies.info import MovieInfo

#: How far apart two parts' spreads must lie to be refused: one's top below the other's bottom by this factor.
SCALE_FACTOR = 3.0


def level_range(pixel_means: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of a part's pixel means (hot pixels and dark corners aside)."""
    lo, hi = np.percentile(np.asarray(pixel_means, dtype=np.float64), [1.0, 99.0])
    return float(lo), float(hi)


def _apart(low: tuple[float, float], high: tuple[float, float]) -> bool:
    """``low``'s spread lies a scale below ``high``'s."""
    return high[0] > 0 and low[1] * SCALE_FACTOR < high[0]


def scale_problem(movies: Sequence[MovieInfo], ranges: Sequence[tuple[float, float] | None]) -> str | None:
    """The refusal of a series whose parts' levels (``ranges``, None: not read) lie a scale apart, else None."""
    known = [(m, r) for m, r in zip(movies, ranges) if r is not None]
    if len(known) < 2:
        return None
    first, first_range = known[0]
    for movie, found in known[1:]:
        if _apart(found, first_range) or _apart(first_range, found):
            return (f"{movie.path} and {first.path} are on different scales: their pixels' mean levels span "
                    f"{found[0]:.4g} to {found[1]:.4g} and {first_range[0]:.4g} to {first_range[1]:.4g}; is one a "
                    "processed copy (dF/F, normalised, background-subtracted) or exported at another bit depth? "
                    "Joined, every pixel would step where one ends; give all parts as the same kind of recording "
                    "(all raw, or all processed alike), or analyse them separately")
    return None
