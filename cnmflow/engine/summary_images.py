"""Seed-search summary images of CNMF-E: spatially filtered movie, PNR and local correlation.

Definitions (Zhou et al. 2018; same as CaImAn's ``correlation_pnr``):

* each frame is filtered with ``filter_kernel(gsig, center_psf)`` (replicate borders);
* the filtered movie ``F`` is made temporally zero-mean;
* ``noise`` = PSD noise (``noise_psd``) of each pixel of ``F``;
* ``pnr`` = max over time of ``F`` / ``noise`` (negative values set to 0);
* ``correlation`` = mean Pearson correlation of each pixel with its 8 neighbours (fewer at the
  image border), computed on ``F`` with values below ``threshold * noise`` set to 0
  (``threshold`` = 3 reproduces CaImAn's images).

``correlation_pnr`` streams the movie: pass 1 reads bands of rows (mean image and the noise of
the filtered movie from at most ``3 x 1024`` frames), pass 2 reads chunks of frames and keeps
running sums (sum x, sum x**2, sum x*x_neighbour for the 4 neighbour directions) and the running
max. The filtered movie is never held in full.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
import scipy.ndimage as ndi

from cnmflow.engine import chunking
from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.noise import noise_frame_indices, noise_psd
from cnmflow.engine.threads import fft_workers
from cnmflow.errors import ParameterError

__all__ = [
    "SummaryImages",
    "FrameFilter",
    "CorrelationSums",
    "filter_kernel",
    "kernel_size",
    "filter_frames",
    "separable_filter",
    "correlation_pnr",
    "correlation_image",
    "CORR_THRESHOLD",
]

#: values of the filtered movie below CORR_THRESHOLD * noise are zeroed before the correlation
#: image (3 reproduces CaImAn's reference images; see tests/engine/test_summary_images.py)
CORR_THRESHOLD = 3.0

# neighbour offsets (drow, dcol) covering the 8-neighbourhood once per pair
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class SummaryImages:
    """Summary images of a movie, all ``(rows, cols)``."""

    correlation: np.ndarray  # float32, local 8-neighbour correlation of the thresholded filtered movie
    pnr: np.ndarray  # float32, peak-to-noise ratio of the filtered movie
    noise: np.ndarray  # float32, PSD noise sd of the filtered movie
    max_filtered: np.ndarray  # float32, max over time of the mean-subtracted filtered movie
    mean: np.ndarray  # float32, temporal mean of the raw movie
    n_frames: int = 0


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def kernel_size(gsig: float) -> int:
    """The seed-search kernel's odd width in pixels, ``2*int(2*gsig)+1`` (CaImAn's ``ksize``)."""
    return 2 * int(2 * gsig) + 1


def filter_kernel(gsig: float, *, center_psf: bool) -> np.ndarray:
    """2-D seed-search kernel (float64, odd size :func:`kernel_size`).

    Without ``center_psf``: a normalized Gaussian of sd ``gsig``. With ``center_psf``: the
    Gaussian restricted to the disc where it is >= the largest value on the kernel's border,
    minus its mean over that disc (zero outside), so it sums to ~0 ("Mexican hat on a disc").
    """
    gsig = float(gsig)
    if not np.isfinite(gsig) or gsig <= 0:
        raise ParameterError(f"gSig={gsig!r} must be a positive number of pixels")
    size = kernel_size(gsig)
    g = _gaussian_1d(size, gsig)
    psf = np.outer(g, g)
    if center_psf and size > 1:
        border_max = max(psf[0].max(), psf[-1].max(), psf[:, 0].max(), psf[:, -1].max())
        disc = psf >= border_max
        psf = np.where(disc, psf - psf[disc].mean(), 0.0)
    return psf


class FrameFilter:
    """Correlation of frames with a fixed kernel, replicate borders, via FFT on padded frames.

    Built once per patch shape and kernel, it filters any number of chunks (the seed search
    filters its residual box by box with the same kernel)."""

    def __init__(self, kernel: np.ndarray, shape: tuple[int, int]):
        self.kernel = np.asarray(kernel, dtype=np.float64)
        self.r = self.kernel.shape[0] // 2
        rows, cols = shape
        self.shape = shape
        self.pshape = (rows + 2 * self.r, cols + 2 * self.r)
        self.fshape = tuple(sfft.next_fast_len(n, real=True) for n in self.pshape)
        # correlation == convolution with the flipped kernel
        self.kf = sfft.rfft2(self.kernel[::-1, ::-1].astype(np.float32), s=self.fshape)

    def __call__(self, frames: np.ndarray, *, minus: np.ndarray | None = None) -> np.ndarray:
        """Filtered frames; ``minus`` (one frame, e.g. the mean) is subtracted from each frame first."""
        frames = np.asarray(frames, dtype=np.float32)
        r = self.r
        if r == 0:
            return (frames if minus is None else frames - minus) * np.float32(self.kernel[0, 0])
        # Frames are filtered independently, a chunk at a time: the padded copy and the FFT
        # buffers stay a few tens of MB instead of several times the movie.
        out = np.empty(frames.shape, dtype=np.float32)
        # 8 bytes a value of the FFT shape: the float32 buffer and its complex64 half-spectrum
        step = chunking.frames_per_chunk(self.fshape[0] * self.fshape[1], chunking.FILTER_CHUNK_BYTES,
                                         bytes_per_value=8)
        rows, cols = self.shape
        k = 2 * r
        # One zero buffer of the FFT shape, refilled per chunk: the FFT needs no padding copy.
        padded = np.zeros((min(step, frames.shape[0]), *self.fshape), dtype=np.float32)
        for part in chunk_slices(frames.shape[0], step):
            chunk = frames[part]
            buffer = padded[:chunk.shape[0]]
            self._pad_into(chunk, minus, buffer)
            spectrum = sfft.rfft2(buffer, workers=fft_workers())
            spectrum *= self.kf
            out[part] = sfft.irfft2(spectrum, s=self.fshape, workers=fft_workers())[:, k:k + rows, k:k + cols]
        return out

    def _pad_into(self, chunk: np.ndarray, minus: np.ndarray | None, buffer: np.ndarray) -> None:
        """``chunk − minus`` with replicated edges of width r into the top-left of ``buffer``."""
        r = self.r
        rows, cols = self.shape
        inner = buffer[:, r:r + rows, r:r + cols]
        if minus is None:
            inner[...] = chunk
        else:
            np.subtract(chunk, minus, out=inner)
        buffer[:, :r, r:r + cols] = inner[:, :1]
        buffer[:, r + rows:2 * r + rows, r:r + cols] = inner[:, -1:]
        tall = buffer[:, :2 * r + rows]
        tall[:, :, :r] = tall[:, :, r:r + 1]
        tall[:, :, r + cols:2 * r + cols] = tall[:, :, r + cols - 1:r + cols]


def filter_frames(frames: np.ndarray, *, gsig: float, center_psf: bool) -> np.ndarray:
    """Filter each frame of ``(n, rows, cols)`` with ``filter_kernel`` (replicate borders) -> float32."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        return filter_frames(frames[None], gsig=gsig, center_psf=center_psf)[0]
    if frames.ndim != 3:
        raise ParameterError(f"frames must be (n, rows, cols), got shape {frames.shape}")
    return FrameFilter(filter_kernel(gsig, center_psf=center_psf), frames.shape[1:])(frames)


def separable_filter(frames: np.ndarray, gsig: float, gsiz: int, centered: bool) -> np.ndarray:
    """Gaussian blur of each frame (sd gsig, radius gsiz, replicate borders); with ``centered``
    the Gaussian minus its box mean (zero-sum kernel) on point-reflected borders, so a plane
    gives 0 everywhere, edges included.

    Both are separable, so each is two small float32 matrix products per frame (the rows' and the
    columns' operators, see ``_axis_operators``): several times faster than filtering line by line
    or by FFT on a patch-sized frame, and exactly 0 beyond the kernel's reach, as a direct filter is.
    Without ``centered`` and with ``gsiz = int(2·gsig)`` it is ``filter_kernel(gsig, center_psf=False)``.
    """
    T, h, w = frames.shape
    rows = _axis_operators(h, float(gsig), int(gsiz), bool(centered))
    cols = _axis_operators(w, float(gsig), int(gsiz), bool(centered))
    flat = np.ascontiguousarray(frames, dtype=np.float32).reshape(T * h, w)
    out = np.matmul(rows[0], (flat @ cols[0].T).reshape(T, h, w))
    if centered:
        out -= np.matmul(rows[1], (flat @ cols[1].T).reshape(T, h, w))
    return out


@functools.lru_cache(maxsize=64)
def _axis_operators(n: int, gsig: float, gsiz: int, centered: bool) -> tuple[np.ndarray, ...]:
    """(n, n) float32 matrices of ``separable_filter`` along one axis of length ``n``, built by filtering
    the identity with scipy's own 1-D filters: the Gaussian with replicate borders; with
    ``centered``, the Gaussian and the box mean on the axis point-reflected by ``gsiz`` (cropped
    back). Read-only: they are cached."""
    eye = np.eye(n)
    truncate = gsiz / gsig
    if centered:
        padded = np.pad(eye, ((gsiz, gsiz), (0, 0)), mode="reflect", reflect_type="odd")
        core = slice(gsiz, gsiz + n)
        operators = (ndi.gaussian_filter1d(padded, gsig, axis=0, truncate=truncate, mode="nearest")[core],
                     ndi.uniform_filter1d(padded, 2 * gsiz + 1, axis=0, mode="nearest")[core])
    else:
        operators = (ndi.gaussian_filter1d(eye, gsig, axis=0, truncate=truncate, mode="nearest"),)
    out = tuple(np.ascontiguousarray(op, dtype=np.float32) for op in operators)
    for op in out:
        op.flags.writeable = False
    return out


# ---------------------------------------------------------------------------- correlation sums
class CorrelationSums:
    """Running sums for the 8-neighbour correlation image of a (T, rows, cols) stream.

    Fed a chunk of frames at a time (``add``), so the image of a long movie, or of a box of the
    seed search's residual, never needs the frames at once."""

    def __init__(self, shape: tuple[int, int]):
        rows, cols = shape
        self.n = 0
        self.s1 = np.zeros(shape)
        self.s2 = np.zeros(shape)
        self.cross = {
            (0, 1): np.zeros((rows, max(cols - 1, 0))),
            (1, 0): np.zeros((max(rows - 1, 0), cols)),
            (1, 1): np.zeros((max(rows - 1, 0), max(cols - 1, 0))),
            (1, -1): np.zeros((max(rows - 1, 0), max(cols - 1, 0))),
        }

    def add(self, z: np.ndarray, *, threshold: np.ndarray | None = None, sub_frames: int = 64) -> None:
        """Add frames ``z`` (T, rows, cols); values below ``threshold`` (an image) count as 0.

        Products are summed over ``sub_frames`` frames in ``z``'s own precision (float32 sums of
        64 terms keep ~6 digits) and those sums accumulate in float64: no float64 copy of ``z``.
        """
        for frames in chunk_slices(z.shape[0], sub_frames):
            part = np.asarray(z[frames])
            if part.dtype not in (np.float32, np.float64):
                part = part.astype(np.float64)
            if threshold is not None:
                part = np.where(part >= threshold, part, part.dtype.type(0))
            self._add(part)

    def _add(self, z: np.ndarray) -> None:
        self.n += z.shape[0]
        self.s1 += z.sum(axis=0, dtype=np.float64)
        self.s2 += np.einsum("tij,tij->ij", z, z)
        self.cross[(0, 1)] += np.einsum("tij,tij->ij", z[:, :, :-1], z[:, :, 1:])
        self.cross[(1, 0)] += np.einsum("tij,tij->ij", z[:, :-1, :], z[:, 1:, :])
        self.cross[(1, 1)] += np.einsum("tij,tij->ij", z[:, :-1, :-1], z[:, 1:, 1:])
        self.cross[(1, -1)] += np.einsum("tij,tij->ij", z[:, :-1, 1:], z[:, 1:, :-1])

    def image(self) -> np.ndarray:
        rows, cols = self.s1.shape
        if self.n == 0:
            return np.zeros((rows, cols), dtype=np.float32)
        n = float(self.n)
        m = self.s1 / n
        var = np.maximum(self.s2 / n - m * m, 0.0)
        sd = np.sqrt(var)
        # relative guard: a constant trace has zero variance up to rounding
        ok = sd > 1e-7 * np.sqrt(np.maximum(self.s2 / n, 1e-300))
        inv = np.where(ok, 1.0 / np.where(ok, sd, 1.0), 0.0)
        total = np.zeros((rows, cols))
        count = np.zeros((rows, cols))
        for (dr, dc), s in self.cross.items():
            if s.size == 0:
                continue
            a_r = slice(0, rows - dr)
            b_r = slice(dr, rows)
            if dc >= 0:
                a_c, b_c = slice(0, cols - dc), slice(dc, cols)
            else:
                a_c, b_c = slice(-dc, cols), slice(0, cols + dc)
            corr = (s / n - m[a_r, a_c] * m[b_r, b_c]) * inv[a_r, a_c] * inv[b_r, b_c]
            total[a_r, a_c] += corr
            total[b_r, b_c] += corr
            count[a_r, a_c] += 1
            count[b_r, b_c] += 1
        return (total / np.maximum(count, 1)).astype(np.float32)


def correlation_image(z: np.ndarray, *, threshold: np.ndarray | None = None) -> np.ndarray:
    """Mean Pearson correlation of each pixel of ``z`` (T, rows, cols) with its 8 neighbours.

    ``threshold`` (rows, cols): values of ``z`` below it are taken as 0, a few frames at a time
    (no thresholded copy of ``z``).
    """
    acc = CorrelationSums(z.shape[1:])
    acc.add(z, threshold=threshold)
    return acc.image()


def threshold_for_correlation(filtered: np.ndarray, noise: np.ndarray, threshold: float = CORR_THRESHOLD) -> np.ndarray:
    """Zero the values of a mean-subtracted filtered movie below ``threshold * noise``."""
    return np.where(filtered >= threshold * noise, filtered, 0).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------- streaming driver
def _filtered_noise(movie, filt: FrameFilter, frame_idx, band_rows: int, mean_image: np.ndarray | None):
    """Noise of the filtered movie (row bands with a halo of the kernel radius) and the raw mean.

    Returns (noise (rows, cols) float32, raw mean or None when frame_idx limits the frames)."""
    T, rows, cols = movie.shape
    r = filt.r
    noise = np.empty((rows, cols), dtype=np.float32)
    mean_acc = np.zeros((rows, cols)) if frame_idx is None else None
    for band in chunk_slices(rows, band_rows):
        r0, r1 = band.start, band.stop
        h0, h1 = max(0, r0 - r), min(rows, r1 + r)
        if frame_idx is None:
            block = np.asarray(movie[:, h0:h1, :], dtype=np.float32)
        else:
            breaks = np.flatnonzero(np.diff(frame_idx) != 1) + 1
            block = np.concatenate(
                [np.asarray(movie[g[0]:g[-1] + 1, h0:h1, :], dtype=np.float32) for g in np.split(frame_idx, breaks)]
            )
        mu = block.mean(axis=0, dtype=np.float64)
        if mean_acc is not None:
            mean_acc[r0:r1] = mu[r0 - h0:r1 - h0]
        # filter the band as if it were an image; rows within r of a cut edge are discarded
        bf = FrameFilter(filt.kernel, block.shape[1:])((block - mu.astype(np.float32)))
        core = bf[:, r0 - h0:r1 - h0, :]
        noise[r0:r1] = noise_psd(core.reshape(core.shape[0], -1).T).reshape(r1 - r0, cols)
    return noise, mean_acc


def correlation_pnr(
    movie,
    *,
    gsig: float,
    center_psf: bool = True,
    noise: np.ndarray | None = None,
    chunk_frames: int = 500,
    threshold: float = CORR_THRESHOLD,
    max_frames_per_block: int = 1024,
    n_blocks: int = 3,
    band_bytes: int = 1 << 26,
) -> SummaryImages:
    """Correlation and PNR images of a ``(T, rows, cols)`` movie (array or memmap), streamed.

    ``noise`` (optional) is the per-pixel noise of the *filtered* movie, when already known.
    Memory: one chunk of ``chunk_frames`` frames in pass 2, and bands of rows of at most
    ``band_bytes`` (over at most ``n_blocks * max_frames_per_block`` frames) in pass 1. When
    pass 1's one band is the whole movie (a patch), its filtered copy serves pass 2 as well:
    each frame is filtered once instead of twice (the Gaussian by two small matrix products).
    """
    if getattr(movie, "ndim", None) != 3:
        raise ParameterError(f"movie must be (n_frames, rows, cols), got shape {getattr(movie, 'shape', None)}")
    if chunk_frames < 1:
        raise ParameterError(f"chunk_frames={chunk_frames} must be >= 1")
    T, rows, cols = movie.shape
    if T < 2:
        raise ParameterError(f"movie has {T} frame(s); correlation/PNR images need at least 2")
    filt = FrameFilter(filter_kernel(gsig, center_psf=center_psf), (rows, cols))
    if noise is None:
        frame_idx = noise_frame_indices(T, max_frames_per_block=max_frames_per_block, n_blocks=n_blocks)
        t_used = T if frame_idx is None else len(frame_idx)
        band_rows = max(1, int(band_bytes // (4 * t_used * cols)) - 2 * filt.r)
        if frame_idx is None and band_rows >= rows:
            separable = None if center_psf else float(gsig)
            return _images_filtered_once(movie, filt, separable, chunk_frames=chunk_frames, threshold=threshold)
        noise, mean_raw = _filtered_noise(movie, filt, frame_idx, band_rows, None)
    else:
        noise, mean_raw = np.asarray(noise, dtype=np.float32), None
        if noise.shape != (rows, cols):
            raise ParameterError(f"noise has shape {noise.shape}; expected the movie's frame shape {(rows, cols)}")
    if mean_raw is None:
        mean_raw = np.zeros((rows, cols))
        for frames in chunk_slices(T, chunk_frames):
            mean_raw += np.asarray(movie[frames], dtype=np.float64).sum(axis=0)
        mean_raw /= T
    mean32 = mean_raw.astype(np.float32)
    filtered = (filt(np.asarray(movie[frames], dtype=np.float32) - mean32) for frames in chunk_slices(T, chunk_frames))
    return _images(filtered, noise, mean32, threshold=threshold, n_frames=T)


def _images_filtered_once(movie, filt: FrameFilter, gaussian_sd: float | None, *, chunk_frames: int,
                          threshold: float) -> SummaryImages:
    """Pass 1 and pass 2 on one filtered copy of the whole (short, small) movie.

    The Gaussian kernel (``gaussian_sd``: no ``center_psf``) is separable: on patch-sized frames
    two small matrix products per frame (:func:`separable_filter`, the same kernel and borders)
    cost ~5x less than the FFT, with the same filtered values to float32 rounding.
    """
    T, rows, cols = movie.shape
    block = np.asarray(movie[:], dtype=np.float32)
    mean32 = block.mean(axis=0, dtype=np.float64).astype(np.float32)
    if gaussian_sd is None or filt.r == 0:
        filtered = filt(block - mean32)
    else:
        filtered = separable_filter(block - mean32, gaussian_sd, filt.r, False)
    del block
    noise = noise_psd(filtered.reshape(T, -1).T).reshape(rows, cols).astype(np.float32)
    chunks = (filtered[frames] for frames in chunk_slices(T, chunk_frames))
    return _images(chunks, noise, mean32, threshold=threshold, n_frames=T)


def _images(filtered_chunks, noise: np.ndarray, mean32: np.ndarray, *, threshold: float,
            n_frames: int) -> SummaryImages:
    """Pass 2: the running max and correlation sums over the mean-free filtered movie's chunks."""
    fmax = np.full(noise.shape, -np.inf, dtype=np.float32)
    acc = CorrelationSums(noise.shape)
    thr = (threshold * noise).astype(np.float32)
    for fc in filtered_chunks:
        np.maximum(fmax, fc.max(axis=0), out=fmax)
        acc.add(fc, threshold=thr)
    with np.errstate(divide="ignore", invalid="ignore"):
        pnr = np.where(noise > 0, fmax / noise, 0).astype(np.float32)
    pnr[pnr < 0] = 0
    return SummaryImages(correlation=acc.image(), pnr=pnr, noise=noise.astype(np.float32), max_filtered=fmax,
                         mean=mean32, n_frames=n_frames)
