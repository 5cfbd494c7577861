"""Reading one patch box of the shared movie file, and downsampling it a chunk at a time.

A worker holds the patch only downsampled: the noise estimate reads a sample of frames of the
box, and the downsampling reads chunks of whole ``tsub`` blocks, so its memory follows the
downsampled patch, not the recording's length.
"""

from __future__ import annotations

import math

import numpy as np

from cnmflow.engine import resample
from cnmflow.engine.chunking import BAND_VALUES
from cnmflow.engine.noise import noise_frame_indices
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.resample import downsampled_shape


class BoxView:
    """A (frames, rows, cols) view of one patch box of a movie, read on demand.

    The patch is never held at full rate: the noise estimate reads a sample of frames and the
    downsampling reads chunks, so a worker's memory follows the downsampled patch only.
    """

    def __init__(self, movie, box: PatchBox):
        self._movie = movie
        self._rows, self._cols = box.slices()
        self.shape = (movie.shape[0], *box.shape)
        self.ndim = 3

    def __getitem__(self, key) -> np.ndarray:
        frames, rows, cols = key if isinstance(key, tuple) else (key, slice(None), slice(None))
        return np.asarray(self._movie[frames, _within(self._rows, rows), _within(self._cols, cols)], dtype=np.float32)


def _within(outer: slice, inner: slice) -> slice:
    """``inner`` (relative to the box, step 1) as a slice of the whole movie's axis."""
    start, stop, _ = inner.indices(outer.stop - outer.start)
    return slice(outer.start + start, outer.start + stop)


def downsample_in_chunks(patch: BoxView, *, tsub: int, ssub: int,
                         storage: PatchStorage = PatchStorage()) -> PatchFrames:
    """:func:`~cnmflow.engine.resample.downsample` of the whole patch, computed from chunks of whole
    ``tsub`` blocks and written into an array that ``storage`` places (in memory, or a scratch file
    when long)."""
    out = storage.allocate(downsampled_shape(patch.shape, tsub=tsub, ssub=ssub))
    return resample.downsample_in_chunks(patch, tsub=tsub, ssub=ssub, out=out)


def noise_reduction(patch: BoxView, Y: PatchFrames) -> float:
    """How much averaging tsub frames and ssub x ssub pixels lowers white noise: sqrt(tsub·ssub²)
    (CaImAn scales min_pnr by sqrt(size(Y) / size(Y_ds)) for the downsampled seed search)."""
    return float(np.sqrt(np.prod(patch.shape) / np.prod(Y.shape)))


def noise_band_pixels(shape: tuple[int, int, int], *, tsub: int, ssub: int, storage: PatchStorage) -> int:
    """Pixels per band of rows read by the full-rate noise pass of a patch of ``shape`` (T, h, w).

    Each band is a pass over the file; the pass runs before anything frame-sized is held, so
    bands up to the two downsampled copies the seeding holds later raise no peak, as long as they
    stay within the job's memory budget (a band's spectra take about twice its size again).
    """
    T = shape[0]
    sample = noise_frame_indices(T)
    frames_used = T if sample is None else len(sample)
    downsampled = math.prod(downsampled_shape(shape, tsub=tsub, ssub=ssub))
    return int(max(BAND_VALUES, min(2 * downsampled, storage.memory_bytes / 12)) // frames_used)
