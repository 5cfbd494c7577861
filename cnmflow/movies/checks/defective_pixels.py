"""Isolated stuck or hot sensor pixels: a pixel constant while its neighbours change, or far noisier or brighter than
every pixel around it. Left in, such a pixel leaks into the trace of a cell over it or seeds a false cell; raw
miniscope sensors often have a few, so they are found here and mended as frames are read
(:mod:`cnmflow.movies.pixel_repair`), never refused."""

from __future__ import annotations

import numpy as np

from cnmflow.movies.checks.middle_frames import MiddleFrames
from cnmflow.movies.info import MovieInfo

#: A hot pixel's temporal sd over the median of its 8 neighbours': single-channel simulated and IDEAS movies read at
#: most 1.7, a pixel of uniform noise over a cell 380.
HOT_SD_RATIO = 8.0
#: A hot pixel's mean above the median of its 8 neighbours', in their median temporal sd: those movies read at most
#: 1.3, a pixel of 3x gain (which seeded a false cell) 43.
HOT_LEVEL_SDS = 20.0


def _around(image: np.ndarray) -> np.ndarray:
    """The median of each pixel's 8 neighbours (mirrored at the frame's edge, never the pixel itself)."""
    from scipy.ndimage import median_filter  # noqa: PLC0415

    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    return median_filter(image, footprint=ring, mode="mirror")


def defects(middle: MiddleFrames) -> tuple[tuple[int, int], ...]:
    """The defective pixels (row, col) the middle frames' moments show. A constant region (a motion-corrected
    movie's border) is no such pixel."""
    mean, sd = middle.mean, middle.sd
    around_mean, around_sd = _around(mean), _around(sd)
    live = around_sd > 0.25 * np.median(sd)  # among pixels that change as the frame's do (not a dark or padded area)
    stuck = live & (sd == 0)
    hot = live & ((sd > HOT_SD_RATIO * around_sd) | (mean - around_mean > HOT_LEVEL_SDS * around_sd))
    return tuple((int(r), int(c)) for r, c in np.argwhere(stuck | hot))


def defects_note(info: MovieInfo) -> str:
    """The note of a movie whose defective pixels are mended."""
    pixels = info.defective_pixels
    where = ", ".join(f"({r}, {c})" for r, c in pixels[:5]) + (", …" if len(pixels) > 5 else "")
    return (f"{info.path} has {len(pixels)} isolated defective pixel{'s' if len(pixels) > 1 else ''} (stuck while "
            f"the pixels around change, or far noisier or brighter than all of them) at (row, col) {where}: each is "
            "replaced in every frame by the median of its 8 neighbours before the fit, as a sensor's defective-pixel "
            "correction does; left in, such a pixel leaks into the trace of a cell over it or seeds a false cell")
