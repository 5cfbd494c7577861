"""Pixel values the engine cannot use: NaN, ±inf, values so large that float32 arithmetic overflows, values so far
from zero that float32 (the engine's type) rounds the movie's range to a handful of levels (a uint32/uint64 movie
near 2**32, a float64 one on an offset), or values spanning so little that float32 squares of their differences
underflow.

Integer movies of at most 16 bits (uint8/uint16 avi, integer tif/isxd) cannot hold such values, so only float and
wider integer movies are read, in chunks of bounded size. Without this check a single NaN or inf pixel makes the
extraction find 0 components (and advise lowering min_corr / min_pnr) or fail deep inside the patch fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnmflow.movies.checks.memo import chunk_frames, refused
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import iter_chunks

#: Largest pixel magnitude accepted. The engine works in float32 (largest value 3.4e38) and
#: forms squares (1e24 at this bound) summed over up to ~1e14 frame·pixel terms, which stays
#: below 3.4e38; real recordings (16-bit cameras, dF/F) are many orders of magnitude smaller.
MAX_ABS_VALUE = 1e12

#: Fewest distinct float32 levels a movie's range may keep once its values are beyond float32's exact
#: integers (2**24): a 12-bit camera's. A uint32 movie of a 16-bit signal on an offset near 2**32 keeps
#: 6 and was fitted into 44 components on 10 simulated neurons, with no word of the rounding.
MIN_LEVELS = 2**12

#: Smallest span (largest minus smallest value) a float movie's values may have: the engine's float32 squares of
#: differences that small underflow (float32's smallest normal number is 1.2e-38), so a movie of values near 1e-24
#: was fitted to 0 components ('lower min_corr / min_pnr'). As far above that limit as MAX_ABS_VALUE is below the
#: other; real recordings (counts, dF/F) span many orders of magnitude more.
MIN_SPAN = 1e-12

@dataclass
class _Findings:
    """Frames with unusable pixels, and what the first of them holds."""

    n_bad: int = 0
    first: int | None = None
    last: int | None = None
    first_counts: tuple[int, int, int] = (0, 0, 0)  # NaN, ±inf, too-large pixels of the first bad frame
    largest: float = 0.0  # largest finite magnitude beyond the bound, over all bad frames
    lo: float = np.inf  # smallest and largest value of the frames read (float32, as the engine sees them)
    hi: float = -np.inf


def check_pixel_values(info: MovieInfo) -> None:
    """Raise MovieError when a movie holds NaN, ±inf or |value| > MAX_ABS_VALUE, when float32 keeps
    fewer than MIN_LEVELS levels of its range, or when its values span less than MIN_SPAN.

    The message names the file, the first bad frame (or the values), how many frames are affected and the
    fix. Integer movies of at most 16 bits return at once; others are scanned once per process while unchanged.
    """
    dtype = np.dtype(info.dtype)
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        return
    refused("values", info, lambda: _describe(info, _scan(info)))


def _scan(info: MovieInfo) -> _Findings:
    """Per-frame minimum and maximum (NaN propagates through both), chunk by chunk."""
    skip = np.zeros(info.n_frames, dtype=bool)
    skip[list(info.invalid_frames)] = True  # dropped/cropped isxd frames are interpolated, never read
    found = _Findings()
    for first, block in iter_chunks(info, chunk_frames=chunk_frames(info)):
        hi = block.max(axis=(1, 2))
        lo = block.min(axis=(1, 2))
        bad = ~((hi <= MAX_ABS_VALUE) & (lo >= -MAX_ABS_VALUE))
        used = ~skip[first:first + block.shape[0]]
        bad &= used
        if (used & ~bad).any():
            found.lo = min(found.lo, float(lo[used & ~bad].min()))
            found.hi = max(found.hi, float(hi[used & ~bad].max()))
        if not bad.any():
            continue
        where = np.flatnonzero(bad)
        if found.first is None:
            found.first = first + int(where[0])
            found.first_counts = _counts(block[where[0]])
        found.last = first + int(where[-1])
        found.n_bad += int(where.size)
        finite = np.abs(np.concatenate([hi[where], lo[where]]))
        finite = finite[np.isfinite(finite)]
        if finite.size:
            found.largest = max(found.largest, float(finite.max()))
    return found


def _counts(frame: np.ndarray) -> tuple[int, int, int]:
    nan = int(np.isnan(frame).sum())
    inf = int(np.isinf(frame).sum())
    with np.errstate(invalid="ignore"):
        large = int((np.abs(frame[np.isfinite(frame)]) > MAX_ABS_VALUE).sum())
    return nan, inf, large


def _describe(info: MovieInfo, found: _Findings) -> str | None:
    """The one-line refusal for what the scan found, or None when every pixel is usable."""
    if found.first is None:
        return _levels_problem(info, found) or _span_problem(info, found)
    nan, inf, large = found.first_counts
    pixels = info.frame_shape[0] * info.frame_shape[1]
    infinite = "infinite" if np.dtype(info.dtype).itemsize <= 4 else "infinite (or beyond float32's ±3.4e38)"
    what = [f"{count} {name} pixel{'s' if count != 1 else ''}" for count, name in
            ((nan, "NaN"), (inf, infinite), (large, f"|value| > {MAX_ABS_VALUE:.0e}")) if count]
    span = (f"frame {found.first}" if found.n_bad == 1
            else f"{found.n_bad} of {info.n_frames} frames, frames {found.first} to {found.last}")
    message = (f"{info.path}: frame {found.first} holds {' and '.join(what)} (of {pixels}); "
               f"affected: {span}. ")
    if nan or inf:
        message += ("NaN and infinite pixels cannot be analysed: replace them (e.g. interpolate them from "
                    "neighbouring pixels or frames) or crop them away, then run again")
    else:
        message += (f"Values up to {found.largest:.3g} overflow the engine's float32 sums of squares "
                    f"(the limit is ±{MAX_ABS_VALUE:.0e}); rescale the movie (subtract a constant baseline, e.g. "
                    "its minimum, where the values sit on a large offset; else divide it by a constant), then run "
                    "again")
    return message


def _levels_problem(info: MovieInfo, found: _Findings) -> str | None:
    """The refusal of a movie whose values lie so far from zero that float32 rounds its range to fewer than
    MIN_LEVELS levels (the movie reads as a few steps of noise), else None.

    Below float32's step 1 an integer keeps its value, a float64 one need not: 1.0 + a 1e-5 signal read as a few
    float32 steps and was fitted without a word."""
    if not found.hi >= found.lo:
        return None
    step = float(np.spacing(np.float32(max(abs(found.lo), abs(found.hi)))))
    levels = (found.hi - found.lo) / step
    dtype = np.dtype(info.dtype)
    if levels >= MIN_LEVELS or (step <= 1.0 and not (dtype.kind == "f" and dtype.itemsize > 4)):
        return None
    return (f"{info.path}: its values ({found.lo:.10g} to {found.hi:.10g}, {np.dtype(info.dtype)}) lie so far from "
            f"zero that float32, the engine's type, rounds them to multiples of {step:g}: the movie's range keeps "
            f"{levels:.0f} distinct levels (at least {MIN_LEVELS} are needed). Subtract a constant baseline (e.g. the "
            "movie's minimum) and save it as uint16 or float32, then run again")


def _span_problem(info: MovieInfo, found: _Findings) -> str | None:
    """The refusal of a movie that changes, but whose values span less than MIN_SPAN (a blank one is
    :func:`check_not_blank`'s), else None."""
    span = found.hi - found.lo
    if not 0 < span < MIN_SPAN:
        return None
    return (f"{info.path}: its values span only {span:.3g} ({found.lo:.3g} to {found.hi:.3g}, {np.dtype(info.dtype)}), "
            f"below {MIN_SPAN:.0e}: the engine's float32 arithmetic underflows on differences that small and finds no "
            "cell. Multiply the movie by a constant (e.g. 1 / its span) and save it as float32, then run again")
