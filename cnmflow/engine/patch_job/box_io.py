"""Reading one patch box of the shared movie file, and downsampling it a chunk at a time.

A worker holds the patch only downsampled: the noise estimate reads a sample of frames of the
box, and the downsampling reads chunks of whole ``tsub`` blocks, so its memory follows the
downsampled patch, not the recording's length.
"""

from __future__ import annotations

import numpy as np

from cnmflow.engine.background import downsample_frames
from cnmflow.engine.noise import BAND_VALUES, noise_frame_indices
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage
from cnmflow.engine.patches import PatchBox

#: Memory of one chunk of full-rate patch frames read while downsampling, and of one chunk of
#: residual frames (bytes): a few MB keep a worker's memory near its movie-sized arrays.
READ_CHUNK_BYTES = 8 * 2 ** 20


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


def downsample(movie: np.ndarray, *, tsub: int, ssub: int) -> np.ndarray:
    """Block means over ``tsub`` frames and ``ssub``×``ssub`` pixels (partial blocks averaged too)."""
    out = np.asarray(movie, dtype=np.float32)
    if tsub > 1:
        whole = out.shape[0] // tsub * tsub
        blocks = out[:whole].reshape(-1, tsub, *out.shape[1:]).mean(axis=1)
        if whole < out.shape[0]:
            blocks = np.concatenate([blocks, out[whole:].mean(axis=0, keepdims=True)])
        out = blocks
    return downsample_frames(out, ssub)


def downsample_in_chunks(patch: BoxView, *, tsub: int, ssub: int,
                         storage: PatchStorage = PatchStorage()) -> PatchFrames:
    """:func:`downsample` of the whole patch, computed from chunks of whole ``tsub`` blocks and
    written into an array that ``storage`` places (in memory, or a scratch file when long)."""
    T, h, w = patch.shape
    per_chunk = max(tsub, READ_CHUNK_BYTES // (4 * h * w) // tsub * tsub)
    out = storage.allocate((-(-T // tsub), -(-h // ssub), -(-w // ssub)))
    for start in range(0, T, per_chunk):
        part = downsample(patch[start:min(start + per_chunk, T)], tsub=tsub, ssub=ssub)
        out[start // tsub:start // tsub + part.shape[0]] = part
    return out


def noise_reduction(patch: BoxView, Y: PatchFrames) -> float:
    """How much averaging tsub frames and ssub x ssub pixels lowers white noise: sqrt(tsub·ssub²)
    (CaImAn scales min_pnr by sqrt(size(Y) / size(Y_ds)) for the downsampled seed search)."""
    return float(np.sqrt(np.prod(patch.shape) / np.prod(Y.shape)))


def downsampled_noise(noise: np.ndarray, ssub: int) -> np.ndarray:
    """(h, w) full-rate noise sd → (pixels,) Fortran order on the ssub grid: the root of the
    block-mean variance (divide by :func:`noise_reduction` for the noise of the block means)."""
    variance = downsample_frames(np.asarray(noise, dtype=np.float32)[None] ** 2, ssub)[0]
    return np.sqrt(np.maximum(variance, 0)).ravel(order="F")


def noise_band_pixels(shape: tuple[int, int, int], *, tsub: int, ssub: int, storage: PatchStorage) -> int:
    """Pixels per band of rows read by the full-rate noise pass of a patch of ``shape`` (T, h, w).

    Each band is a pass over the file; the pass runs before anything frame-sized is held, so
    bands up to the two downsampled copies the seeding holds later raise no peak, as long as they
    stay within the job's memory budget (a band's spectra take about twice its size again).
    """
    T, h, w = shape
    sample = noise_frame_indices(T)
    frames_used = T if sample is None else len(sample)
    downsampled = -(-T // tsub) * -(-h // ssub) * -(-w // ssub)
    return int(max(BAND_VALUES, min(2 * downsampled, storage.memory_bytes / 12)) // frames_used)
