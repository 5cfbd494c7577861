"""Refuse movies whose pixels the engine cannot use: NaN, ±inf, values so large that float32
arithmetic overflows, values so far from zero that float32 (the engine's type) rounds the movie's
range to a handful of levels (a uint32/uint64 movie near 2**32, a float64 one on an offset), or values
spanning so little that float32 squares of their differences underflow.

Integer movies of at most 16 bits (uint8/uint16 avi, integer tif/isxd) cannot hold such values, so only
float and wider integer movies are read, in chunks of bounded size. Without this check a single NaN or inf
pixel makes the extraction find 0 components (and advise lowering min_corr / min_pnr) or fail deep inside
the patch fits. The scan is remembered per (file, size, modification time) for the life of the
process, so the CLI's pre-check and the flow's validate step read a movie once.

A movie in which no pixel changes over time (a file allocated and never written, one still image saved as a
movie) is refused too, whatever its type: no parameter finds a cell in it, and the fit ran to the end first. So is
one whose frames alternate between two images (two channels saved interleaved without channel metadata), which
the fit read as one movie at twice the frame rate. Isolated stuck or hot pixels, which leak into the traces of
cells over them or seed false cells, are recorded on the movie (every frame read has them mended) with a note.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import iter_chunks, read_frames
from cnmflow.movies.series import MovieSeries

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

#: Bytes of float32 frames read at a time by the scan.
CHUNK_BYTES = 64 * 2**20

_SCANNED: dict[tuple[str, str, int, int], Any] = {}
_LOCK = threading.Lock()
T = TypeVar("T")


def _remembered(check: str, info: MovieInfo, find: Callable[[], T]) -> T:
    """What ``find`` finds, found once per process for each check and (file, size,
    modification time): the CLI's pre-check, the flow's validate step and a sweep's combinations read the movie
    once."""
    stat = os.stat(info.path)
    key = (check, str(info.path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        known = key in _SCANNED
        problem = _SCANNED.get(key)
    if not known:
        problem = find()
        with _LOCK:
            _SCANNED[key] = problem
    return problem


def _refused(check: str, info: MovieInfo, find: Callable[[], str | None]) -> None:
    """Raise MovieError with the problem ``find`` describes, where it describes one (:func:`_remembered`)."""
    problem = _remembered(check, info, find)
    if problem is not None:
        raise MovieError(problem)


def _chunk_frames(info: MovieInfo) -> int:
    """Frames of ``info`` the checks read at a time: CHUNK_BYTES of float32 (a 2048² sensor's 64 frames are 1 GB)."""
    rows, cols = info.frame_shape
    return max(1, CHUNK_BYTES // max(1, rows * cols * 4))


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
    _refused("values", info, lambda: _describe(info, _scan(info)))


def check_not_blank(info: MovieInfo) -> None:
    """Raise MovieError when no pixel of the movie changes over time (every frame equals the first).

    Two frames decide it for a recording (a camera's noise changes every pixel); only where they are equal is the
    rest read, chunk by chunk, up to the first frame that differs."""
    _refused("blank", info, lambda: _blank_problem(info))


def _blank_problem(info: MovieInfo) -> str | None:
    """The refusal of a movie whose frames all equal its first, else None."""
    if info.n_frames < 2:
        return None
    first = read_frames(info, 0, 2)
    if not np.array_equal(first[0], first[1], equal_nan=True):
        return None
    for _, block in iter_chunks(info, chunk_frames=_chunk_frames(info)):
        if not np.array_equal(block, np.broadcast_to(first[0], block.shape), equal_nan=True):
            return None
    return (f"{info.path} does not change over time: every pixel keeps one value in all {info.n_frames} frames "
            "(a blank or never-written recording, or one still image saved as a movie), so no cell can be found "
            "in it; check the file against the acquisition, or copy it again if it was still being written")


#: Frames read from the middle of a movie to see whether they alternate between two channels.
CADENCE_FRAMES = 64
#: Pixels of each of those frames compared (a regular grid over the frame).
CADENCE_PIXELS = 8192
#: How many times more consecutive frames must differ than frames two apart, in their median and in nearly every
#: pair, to be two interleaved channels. Single-channel movies read 0.6–1.0 (simulated 1P/2P with bleaching,
#: motion to 4 px and bright transients; the IDEAS sample recordings); interleaved channels 2.6–1400 (two images of
#: one field 5 px apart; a dark second channel; a second channel of other cells).
INTERLEAVED_RATIO = 2.0


def check_single_channel(info: MovieInfo) -> None:
    """Raise MovieError when the movie's frames alternate between two images: two channels saved interleaved
    (channel 1, channel 2, channel 1, …) without the metadata that would say so. Read as one movie, each frame
    mixes into its neighbours' traces a second channel, at twice the frame rate."""
    problem, _ = _middle_findings(info)
    if problem is not None:
        raise MovieError(problem)


@dataclass(frozen=True)
class _MiddleFrames:
    """What the channel check and the defective-pixel check read of the movie's middle frames, in one pass."""

    start: int
    levels: np.ndarray  # (n,) each frame's mean
    grid: np.ndarray  # (n, m) float64: each frame's pixels on a regular grid of about CADENCE_PIXELS
    mean: np.ndarray  # (rows, cols) each pixel's mean over the frames
    sd: np.ndarray  # (rows, cols) each pixel's sd, summed about the first frame (0 exactly where it never changes)


def _middle_findings(info: MovieInfo) -> tuple[str | None, tuple[tuple[int, int], ...]]:
    """The channel check's refusal (None: one channel) and the defective pixels, judged on one read of an even
    number, at most CADENCE_FRAMES, of consecutive frames from the movie's middle, remembered per file (only the
    findings: the frames' moments are not kept). Nothing is judged on fewer than 16 frames."""
    def judged() -> tuple[str | None, tuple[tuple[int, int], ...]]:
        middle = _read_middle(info)
        return (None, ()) if middle is None else (_interleaved_problem(info, middle), _defects(middle))

    return _remembered("middle", info, judged)


def _read_middle(info: MovieInfo) -> _MiddleFrames | None:
    """:class:`_MiddleFrames` of the movie, read a chunk at a time; None for fewer than 16 frames."""
    n = min(CADENCE_FRAMES, info.n_frames - info.n_frames % 2)
    if n < 16:
        return None
    first = (info.n_frames - n) // 2
    step = max(1, int(math.sqrt(info.frame_shape[0] * info.frame_shape[1] / CADENCE_PIXELS)))
    chunk_frames = _chunk_frames(info)
    levels, grid, origin, sums, squares = [], [], None, None, None
    for f0 in range(first, first + n, chunk_frames):
        chunk = read_frames(info, f0, min(f0 + chunk_frames, first + n))
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
    return _MiddleFrames(start=first, levels=np.concatenate(levels), grid=np.concatenate(grid), mean=origin + mean,
                         sd=np.sqrt(np.maximum(squares / n - mean * mean, 0.0)))


def _interleaved_problem(info: MovieInfo, middle: _MiddleFrames) -> str | None:
    """The refusal of a movie whose consecutive frames differ far more than frames two apart, else None.

    Each frame is standardised (its mean and sd taken out), so a flicker or a bleaching level is not a channel;
    frames two apart are compared within one parity (one channel), the parity whose frames agree best."""
    z, levels, start = middle.grid, middle.levels, middle.start
    n = len(z)
    z -= z.mean(axis=1, keepdims=True)
    z /= np.maximum(z.std(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    next_frame = np.mean((z[1:] - z[:-1]) ** 2, axis=1)
    same = min(np.mean((z[2::2] - z[:-2:2]) ** 2, axis=1), np.mean((z[3::2] - z[1:-2:2]) ** 2, axis=1), key=np.median)
    ratio = float(np.median(next_frame) / max(float(np.median(same)), np.finfo(np.float64).tiny))
    if ratio < INTERLEAVED_RATIO or np.quantile(next_frame, 0.1) <= np.quantile(same, 0.9):
        return None
    return (f"{info.path}: its frames alternate between two images — consecutive frames differ {ratio:.0f} times "
            f"more than frames two apart in frames {start}–{start + n - 1} (mean level {levels[0::2].mean():.4g} in "
            f"one parity, {levels[1::2].mean():.4g} in the other): two channels saved interleaved (channel 1, channel "
            "2, …) without channel metadata, which would be analysed as one movie at twice the frame rate; split the "
            "channels and give one, e.g. Fiji: Image > Hyperstacks > Stack to Hyperstack (channels 2), then Image > "
            "Color > Split Channels; numpy: tifffile.imwrite(new_path, movie[0::2]) (movie[1::2] the other)")


#: A hot pixel's temporal sd over the median of its 8 neighbours': single-channel simulated and IDEAS movies read at
#: most 1.7, a pixel of uniform noise over a cell 380.
HOT_SD_RATIO = 8.0
#: A hot pixel's mean above the median of its 8 neighbours', in their median temporal sd: those movies read at most
#: 1.3, a pixel of 3x gain (which seeded a false cell) 43.
HOT_LEVEL_SDS = 20.0


def find_defective_pixels(info: MovieInfo) -> tuple[tuple[int, int], ...]:
    """The movie's isolated defective pixels (row, col): stuck (one value in every frame read while its neighbours
    change) or hot (far noisier or brighter than every pixel around it), read on frames from its middle. A constant
    region (a motion-corrected movie's border) is no such pixel."""
    return _middle_findings(info)[1]


def with_defective_pixels(series: MovieSeries) -> tuple[MovieSeries, tuple[str, ...]]:
    """``series`` with each movie's defective pixels recorded (every frame then read has them mended:
    :mod:`cnmflow.movies.pixel_repair`), and a note for each movie that has some."""
    movies = tuple(replace(info, defective_pixels=find_defective_pixels(info)) for info in series.movies)
    notes = tuple(_defects_note(info) for info in movies if info.defective_pixels)
    return replace(series, movies=movies), notes


def _around(image: np.ndarray) -> np.ndarray:
    """The median of each pixel's 8 neighbours (mirrored at the frame's edge, never the pixel itself)."""
    from scipy.ndimage import median_filter  # noqa: PLC0415

    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    return median_filter(image, footprint=ring, mode="mirror")


def _defects(middle: _MiddleFrames) -> tuple[tuple[int, int], ...]:
    """:func:`find_defective_pixels` of the middle frames' moments."""
    mean, sd = middle.mean, middle.sd
    around_mean, around_sd = _around(mean), _around(sd)
    live = around_sd > 0.25 * np.median(sd)  # among pixels that change as the frame's do (not a dark or padded area)
    stuck = live & (sd == 0)
    hot = live & ((sd > HOT_SD_RATIO * around_sd) | (mean - around_mean > HOT_LEVEL_SDS * around_sd))
    return tuple((int(r), int(c)) for r, c in np.argwhere(stuck | hot))


def _defects_note(info: MovieInfo) -> str:
    """The note of a movie whose defective pixels are mended."""
    pixels = info.defective_pixels
    where = ", ".join(f"({r}, {c})" for r, c in pixels[:5]) + (", …" if len(pixels) > 5 else "")
    return (f"{info.path} has {len(pixels)} isolated defective pixel{'s' if len(pixels) > 1 else ''} (stuck while "
            f"the pixels around change, or far noisier or brighter than all of them) at (row, col) {where}: each is "
            "replaced in every frame by the median of its 8 neighbours before the fit, as a sensor's defective-pixel "
            "correction does; left in, such a pixel leaks into the trace of a cell over it or seeds a false cell")


def checked_pixel_values(series: MovieSeries) -> tuple[MovieSeries, tuple[str, ...]]:
    """:func:`check_pixel_values`, :func:`check_not_blank` and :func:`check_single_channel` of each movie of a
    series, in its listed order, then the series with its defective pixels recorded and their notes
    (:func:`with_defective_pixels`): what a run's validation refuses and mends, ``cnmflow suggest`` too (a NaN pixel
    had made it print min_pnr nan), whatever gSig is (a blank movie had been refused only where gSig was "auto",
    else reported after the fit)."""
    for info in series.movies:
        check_pixel_values(info)
        check_not_blank(info)
        check_single_channel(info)
    return with_defective_pixels(series)


def _scan(info: MovieInfo) -> _Findings:
    """Per-frame minimum and maximum (NaN propagates through both), chunk by chunk."""
    skip = np.zeros(info.n_frames, dtype=bool)
    skip[list(info.invalid_frames)] = True  # dropped/cropped isxd frames are interpolated, never read
    found = _Findings()
    for first, block in iter_chunks(info, chunk_frames=_chunk_frames(info)):
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
