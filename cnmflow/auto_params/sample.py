"""The sample the estimate is read on: one contiguous block of at most :data:`MAX_SAMPLE_FRAMES` frames (after tsub)
from the middle of the series, block-mean downsampled by (tsub, ssub, ssub) as the engine downsamples a patch
(correlation needs time order, so the sample is contiguous).
"""

from __future__ import annotations

import numpy as np

from cnmflow.errors import ParameterError


#: Bytes of downsampled frames held for the estimate (the sample is contiguous: correlation needs time order).
SAMPLE_BYTES = 1 << 27
#: Bytes of raw (full-rate) float32 frames read at once into the sample (a reader opens the file per read).
READ_BYTES = 1 << 25
#: Frames (after tsub) used at most: enough transients for the max projection and the PNR.
MAX_SAMPLE_FRAMES = 1500


def sample_movie(series, *, tsub: int = 1, ssub: int = 1, max_frames: int = MAX_SAMPLE_FRAMES,
                 max_bytes: int = SAMPLE_BYTES) -> np.ndarray:
    """A contiguous block of the series from its middle, block-mean downsampled by (tsub, ssub, ssub).

    Returns float32 ``(n, rows // ssub, cols // ssub)``, at most ``max_bytes``; read a chunk at a time, from a
    memory map where the movie's frames lie as one raw block (no read copies), else through the movie's reader.
    """
    from cnmflow.movies.concat import in_place

    rows, cols = (s // ssub for s in series.frame_shape)
    n_out = int(min(max_frames, max_bytes // (4 * rows * cols), series.n_frames // tsub))
    if n_out < 2:
        raise ParameterError(f"the series has {series.n_frames} frames; 'auto' needs at least {2 * tsub}")
    first = (series.n_frames - n_out * tsub) // 2
    out = np.empty((n_out, rows, cols), np.float32)
    whole = in_place(series)
    frames = whole.open() if whole is not None else _SeriesFrames(series)
    # each reader call opens the file (a TIFF's open walks its pages): reads of up to READ_BYTES of raw frames
    step = max(1, READ_BYTES // (4 * rows * cols * ssub**2 * tsub)) * tsub
    for g0 in range(first, first + n_out * tsub, step):
        g1 = min(g0 + step, first + n_out * tsub)
        out[(g0 - first) // tsub:(g1 - first) // tsub] = _block_mean(frames[g0:g1, :rows * ssub, :cols * ssub],
                                                                     tsub, ssub)
    return out


class _SeriesFrames:
    """Frames of a movie series by global index, ``frames[g0:g1]`` read through each movie's reader (float32)."""

    def __init__(self, series):
        # (first, stop, info) of each movie in the concatenated series, in its order
        self.spans = [(first, stop, series.movies[k]) for k, (first, stop) in series.offsets().items()]

    def __getitem__(self, index: tuple) -> np.ndarray:
        from cnmflow.movies.read import read_frames

        frames, *rest = index
        g0, g1 = frames.start, frames.stop
        parts = [read_frames(info, max(g0 - first, 0), min(g1, stop) - first)
                 for first, stop, info in self.spans if first < g1 and stop > g0]
        return (parts[0] if len(parts) == 1 else np.concatenate(parts))[(slice(None), *rest)]


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
