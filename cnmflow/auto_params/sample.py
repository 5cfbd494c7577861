"""The sample the estimate is read on: one contiguous block of at most :data:`MAX_SAMPLE_FRAMES` frames (after tsub)
from the middle of the series, block-mean downsampled by (tsub, ssub, ssub) as the engine downsamples a patch
(correlation needs time order, so the sample is contiguous).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnmflow.errors import ParameterError


#: Bytes of downsampled frames held for the estimate (the sample is contiguous: correlation needs time order).
SAMPLE_BYTES = 1 << 27
#: Bytes of raw (full-rate) float32 frames read at once into the sample (a reader opens the file per read).
READ_BYTES = 1 << 25
#: Frames (after tsub) used at most: enough transients for the max projection and the PNR.
MAX_SAMPLE_FRAMES = 1500


def sample_movie(series, *, tsub: int = 1, ssub: int = 1, max_frames: int = MAX_SAMPLE_FRAMES,
                 max_bytes: int = SAMPLE_BYTES, at: float = 0.5) -> np.ndarray:
    """A contiguous block of the series from its middle (``at`` 0.5; 0: its start, 1: its end), block-mean
    downsampled by (tsub, ssub, ssub).

    Returns float32 ``(n, rows // ssub, cols // ssub)``, at most ``max_bytes``; read a chunk at a time, from a
    memory map where the movie's frames lie as one raw block (no read copies), else through the movie's reader.
    """
    rows, cols = (s // ssub for s in series.frame_shape)
    n_out = int(min(max_frames, max_bytes // (4 * rows * cols), series.n_frames // tsub))
    if n_out < 2:
        raise ParameterError(f"the series has {series.n_frames} frames; 'auto' needs at least {2 * tsub}")
    first = int(at * (series.n_frames - n_out * tsub))
    out = np.empty((n_out, rows, cols), np.float32)
    # each reader call opens the file (a TIFF's open walks its pages): reads of up to READ_BYTES of raw frames
    step = max(1, READ_BYTES // (4 * rows * cols * ssub**2 * tsub)) * tsub
    done = 0
    for block in _consecutive_blocks(series, first, first + n_out * tsub, step):
        means = _block_mean(block[:, :rows * ssub, :cols * ssub], tsub, ssub)
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
