"""The sample the estimate is read on: one contiguous block of at most :data:`MAX_SAMPLE_FRAMES` frames (after tsub)
from the middle of the series, block-mean downsampled by (tsub, ssub, ssub) as the engine downsamples a patch
(correlation needs time order, so the sample is contiguous). A field too large to hold :data:`MIN_SAMPLE_FRAMES`
frames within :data:`SAMPLE_BYTES` is sampled at its centre (:func:`sample_region`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cnmflow.errors import ParameterError


#: Bytes of downsampled frames held for the estimate (the sample is contiguous: correlation needs time order).
SAMPLE_BYTES = 1 << 27
#: Bytes of raw (full-rate) float32 frames read at once into the sample (a reader opens the file per read).
READ_BYTES = 1 << 25
#: Frames (after tsub) used at most: enough transients for the max projection and the PNR.
MAX_SAMPLE_FRAMES = 1500
#: Frames (after tsub) a sample holds at least where the movie has them. The cuts' nulls are read at the sample's
#: length, and 512 is what a 256² field holds within SAMPLE_BYTES, the size the estimate was checked on. A 512²
#: field's whole-field sample held 128 frames, and min_corr's null read .98 there against .86–.90 at 512 frames
#: (realistic CA1 512² × 1500: F1@0.5 .757; benchmarks/findings/auto_params.md, session 37).
MIN_SAMPLE_FRAMES = 512


@dataclass(frozen=True)
class SampleRegion:
    """Where the sample lies in the field (after ssub) and how many frames (after tsub) it holds."""

    rows: slice
    cols: slice
    n_frames: int
    field: tuple[int, int]  # the whole field's (rows, cols) after ssub
    ssub: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)

    @property
    def cropped(self) -> bool:
        return self.shape != self.field

    def describe(self) -> str:
        """'' for the whole field, else where the sample lies, for the run's note and the suggestion."""
        if not self.cropped:
            return ""
        (rows, cols), (field_rows, field_cols), s = self.shape, self.field, self.ssub
        first_row, first_col = self.rows.start * s, self.cols.start * s
        return (f"the central {rows * s}×{cols * s} px of the {field_rows * s}×{field_cols * s} field (rows "
                f"{first_row}–{first_row + rows * s - 1}, columns {first_col}–{first_col + cols * s - 1})")


def sample_region(frame_shape: tuple[int, int], n_movie_frames: int, *, tsub: int = 1, ssub: int = 1,
                  max_frames: int = MAX_SAMPLE_FRAMES, max_bytes: int | None = None,
                  min_frames: int = MIN_SAMPLE_FRAMES) -> SampleRegion:
    """The whole field, as many frames as ``max_bytes`` (default :data:`SAMPLE_BYTES`) holds; or, where that is
    fewer than ``min_frames`` (and the movie has more), the central region of the field's aspect that holds them.

    On a large field a sample's length, not its area, limits the estimate: a crop of 256² still shows ~150 CA1
    cells, while 128 frames of the whole field hold too few transients for the nulls.
    """
    rows, cols = (s // ssub for s in frame_shape)
    budget = SAMPLE_BYTES if max_bytes is None else int(max_bytes)
    available = n_movie_frames // tsub
    whole = min(max_frames, budget // (4 * rows * cols), available)
    wanted = min(min_frames, max_frames, available)
    if whole >= wanted:
        return SampleRegion(slice(0, rows), slice(0, cols), int(whole), (rows, cols), ssub)
    area = max(1, budget // (4 * wanted))
    crop_rows = max(1, min(rows, int(rows * math.sqrt(area / (rows * cols)))))
    crop_cols = max(1, min(cols, area // crop_rows))
    r0, c0 = (rows - crop_rows) // 2, (cols - crop_cols) // 2
    n = min(max_frames, budget // (4 * crop_rows * crop_cols), available)
    return SampleRegion(slice(r0, r0 + crop_rows), slice(c0, c0 + crop_cols), int(n), (rows, cols), ssub)


def sample_movie(series, *, tsub: int = 1, ssub: int = 1, max_frames: int = MAX_SAMPLE_FRAMES,
                 max_bytes: int | None = None, at: float = 0.5, min_frames: int = MIN_SAMPLE_FRAMES) -> np.ndarray:
    """A contiguous block of the series from its middle (``at`` 0.5; 0: its start, 1: its end), block-mean
    downsampled by (tsub, ssub, ssub), over :func:`sample_region`'s part of the field.

    Returns float32 ``(n, rows, cols)``, at most ``max_bytes``; read a chunk at a time, from a memory map where the
    movie's frames lie as one raw block (no read copies), else through the movie's reader.
    """
    region = sample_region(series.frame_shape, series.n_frames, tsub=tsub, ssub=ssub, max_frames=max_frames,
                           max_bytes=max_bytes, min_frames=min_frames)
    return read_region(series, region, tsub=tsub, at=at)


def read_region(series, region: SampleRegion, *, tsub: int = 1, at: float = 0.5) -> np.ndarray:
    """:func:`sample_movie` for a region already chosen: its frames from ``at`` of the series, block-mean
    downsampled by (tsub, region.ssub, region.ssub)."""
    n_out, ssub = region.n_frames, region.ssub
    if n_out < 2:
        raise ParameterError(f"the series has {series.n_frames} frames; 'auto' needs at least {2 * tsub}")
    first = int(at * (series.n_frames - n_out * tsub))
    out = np.empty((n_out, *region.shape), np.float32)
    # each reader call opens the file (a TIFF's open walks its pages): reads of up to READ_BYTES of raw frames
    step = max(1, READ_BYTES // (4 * region.field[0] * region.field[1] * ssub**2 * tsub)) * tsub
    raw_rows = slice(region.rows.start * ssub, region.rows.stop * ssub)
    raw_cols = slice(region.cols.start * ssub, region.cols.stop * ssub)
    done = 0
    for block in _consecutive_blocks(series, first, first + n_out * tsub, step):
        means = _block_mean(block[:, raw_rows, raw_cols], tsub, ssub)
        out[done:done + len(means)] = means
        done += len(means)
    return out


def _consecutive_blocks(series, first: int, stop: int, step: int) -> Iterator[np.ndarray]:
    """Frames [first, stop) of the series in consecutive blocks of ``step`` (the last one shorter), in one pass
    over each movie: from a memory map where the frames lie as one raw block, else through the movies' readers,
    a block that spans two movies joined."""
    from cnmflow.movies.concat import in_place
    from cnmflow.movies.read import iter_range

    whole = in_place(series)
    if whole is not None:
        frames = whole.open()
        yield from (frames[g0:min(g0 + step, stop)] for g0 in range(first, stop, step))
        return
    pending: list[np.ndarray] = []
    for movie_first, movie_stop, info in ((a, b, series.movies[k]) for k, (a, b) in series.offsets().items()):
        lo, hi = max(first, movie_first), min(stop, movie_stop)
        for _, block in (iter_range(info, lo - movie_first, hi - movie_first, chunk_frames=step) if lo < hi else ()):
            pending.append(block)
            while sum(len(part) for part in pending) >= step:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[:step]
                pending = [joined[step:]] if len(joined) > step else []
    if pending:
        yield np.concatenate(pending)


def _block_mean(block: np.ndarray, tsub: int, ssub: int) -> np.ndarray:
    """Means of (tsub, ssub, ssub) blocks (float32). Without ssub as a sum of tsub frame slices in order, divided in
    float32: the values of numpy's mean over the blocks (a float32 sum of frames in order, then one correctly rounded
    division), at a third of its CPU."""
    block = np.asarray(block, dtype=np.float32)  # the stored values as the reader returns them (a memory map: any type)
    if ssub > 1:
        rows, cols = block.shape[1] // ssub, block.shape[2] // ssub
        return block.reshape(-1, tsub, rows, ssub, cols, ssub).mean(axis=(1, 3, 5), dtype=np.float32)
    total = np.array(block[0::tsub], dtype=np.float32)
    for j in range(1, tsub):
        total += block[j::tsub]
    total /= np.float32(tsub)
    return total
