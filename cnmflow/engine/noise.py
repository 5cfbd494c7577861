"""Per-trace and per-pixel noise from the high-frequency power spectral density.

The noise standard deviation of a trace ``y`` of length ``T`` is estimated from its raw
periodogram ``P_k = |FFT(y)_k|**2 / T`` (one-sided bins ``k = 0 .. T//2``, normalized frequency
``f_k = k / T``, Nyquist = 0.5) averaged over the band ``band[0] < f_k <= band[1]``:

    sd = sqrt(mean(P_k))        (method "mean"; "median" and "logmexp" average differently)

For white noise of variance s**2, ``E[P_k] = s**2``, so ``sd`` estimates ``s``. This is the same
definition CaImAn uses (its one-sided PSD is ``2 * P_k`` and it takes ``sqrt(mean(PSD / 2))``);
it reproduces CaImAn's ``sn`` images to float precision.

Long movies are not transformed in full: ``pixel_noise`` uses ``n_blocks`` blocks of
``max_frames_per_block`` frames (start, middle, end) concatenated, and works on bands of image
rows so its memory stays bounded for memory-mapped movies.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from cnmflow.engine.chunking import BAND_VALUES, FFT_BATCH_VALUES, chunk_slices
from cnmflow.engine.threads import fft_workers
from cnmflow.errors import ParameterError

__all__ = ["noise_psd", "pixel_noise", "noise_frame_indices", "NOISE_METHODS"]

NOISE_METHODS = ("mean", "median", "logmexp")


def _band_bins(n_samples: int, band: tuple[float, float]) -> slice:
    """The periodogram bins ``k`` with ``band[0] < k / n_samples <= band[1]`` (a contiguous run)."""
    k = np.arange(n_samples // 2 + 1)
    lo, hi = band
    # exact integer tests for the default band, so f == 0.25 / 0.5 never flips on rounding
    if (lo, hi) == (0.25, 0.5):
        inside = (4 * k > n_samples) & (2 * k <= n_samples)
    else:
        f = k / float(n_samples)
        inside = (f > lo) & (f <= hi)
    found = np.flatnonzero(inside)
    return slice(int(found[0]), int(found[-1]) + 1) if found.size else slice(0, 0)


def _check(band, method):
    if method not in NOISE_METHODS:
        raise ParameterError(f"noise method {method!r} is not supported; use one of {NOISE_METHODS}")
    lo, hi = band
    if not (0.0 <= lo < hi <= 0.5):
        raise ParameterError(f"noise band {band!r} must satisfy 0 <= low < high <= 0.5 (normalized frequency)")


def _columns_noise(samples: np.ndarray, bins: slice, method: str) -> np.ndarray:
    """PSD noise sd of each column of ``samples`` (T, n), float64 (n,); ``bins`` must be non-empty.

    The transform runs along axis 0 on a few columns at a time: no transposed copy, and a batch
    and its spectrum stay small. Removing an offset per column (its first sample; cheaper than the
    mean) only changes bin 0, which no band holds, but it keeps rounding from leaking a large
    baseline into the band (and a constant trace gives exactly 0).
    """
    T, n = samples.shape
    out = np.empty(n)
    step = max(1, FFT_BATCH_VALUES // T)
    for columns in chunk_slices(n, step):
        batch = samples[:, columns]
        batch = batch - batch[:1]
        spectrum = scipy.fft.rfft(batch, axis=0, workers=fft_workers())[bins]
        psd = spectrum.real ** 2
        psd += spectrum.imag ** 2  # float32 for float32 input: the noise level needs ~4 digits
        out[columns] = _average_psd(psd, method) / T  # = one-sided PSD / 2
    return np.sqrt(out)


def _average_psd(psd: np.ndarray, method: str) -> np.ndarray:
    """Average of the band's periodogram values (axis 0) by ``method``, float64."""
    if method == "mean":
        return psd.mean(axis=0, dtype=np.float64)
    if method == "median":
        return np.median(psd, axis=0).astype(np.float64)
    with np.errstate(divide="ignore"):  # logmexp
        return np.exp(np.mean(np.log(psd.astype(np.float64)), axis=0))


def noise_psd(traces: np.ndarray, *, band: tuple[float, float] = (0.25, 0.5), method: str = "mean") -> np.ndarray:
    """Noise standard deviation of each row of ``traces`` (``(n, T)`` or ``(T,)``) from its PSD.

    Returns ``(n,)`` float64 (a scalar array for 1-D input). Traces shorter than 4 samples
    (no frequency bin in the band) get NaN.
    """
    _check(band, method)
    y = np.asarray(traces)
    one_d = y.ndim == 1
    y2 = np.atleast_2d(y)
    if y2.ndim != 2:
        raise ParameterError(f"traces must be (n, T) or (T,), got shape {y.shape}")
    n, T = y2.shape
    bins = _band_bins(T, band)
    if bins.stop == bins.start:
        out = np.full(n, np.nan)
        return out[0] if one_d else out
    # float32 in, float32 FFT: the noise level needs ~4 digits, and it halves time and memory.
    work = y2 if y2.dtype == np.float32 else y2.astype(np.float64, copy=False)
    sn = _columns_noise(work.T, bins, method)
    return sn[0] if one_d else sn


def noise_frame_indices(n_frames: int, *, max_frames_per_block: int = 1024, n_blocks: int = 3) -> np.ndarray | None:
    """Frames used for noise estimation: ``None`` (all) when the movie is short enough, else
    ``n_blocks`` blocks of ``max_frames_per_block`` frames at the start, evenly spaced in the middle,
    and at the end (sorted, unique)."""
    if max_frames_per_block < 4 or n_blocks < 1:
        raise ParameterError(
            f"max_frames_per_block={max_frames_per_block}, n_blocks={n_blocks}: need >= 4 frames and >= 1 block"
        )
    if n_frames <= max_frames_per_block * n_blocks:
        return None
    if n_blocks == 1:
        starts = [(n_frames - max_frames_per_block) // 2]
    else:
        starts = np.linspace(0, n_frames - max_frames_per_block, n_blocks).round().astype(int).tolist()
    idx = np.concatenate([np.arange(s, s + max_frames_per_block) for s in starts])
    return np.unique(idx)


def _frames_of(movie, frame_idx, rows: slice):
    if frame_idx is None:
        return np.asarray(movie[:, rows, :])
    # contiguous runs keep memmap reads sequential
    breaks = np.flatnonzero(np.diff(frame_idx) != 1) + 1
    parts = [np.asarray(movie[run[0]:run[-1] + 1, rows, :]) for run in np.split(frame_idx, breaks)]
    return np.concatenate(parts, axis=0)


def _frames_noise(block: np.ndarray, band: tuple[float, float], method: str) -> np.ndarray:
    """Noise of every pixel of a (t, rows, cols) block -> (rows, cols); NaN when t < 4."""
    t = block.shape[0]
    bins = _band_bins(t, band)
    if bins.stop == bins.start:
        return np.full(block.shape[1:], np.nan)
    work = block if block.dtype == np.float32 else block.astype(np.float64, copy=False)
    return _columns_noise(work.reshape(t, -1), bins, method).reshape(block.shape[1:])


def pixel_noise(
    movie: np.ndarray,
    *,
    max_frames_per_block: int = 1024,
    n_blocks: int = 3,
    chunk_pixels: int | None = None,
    band: tuple[float, float] = (0.25, 0.5),
    method: str = "mean",
) -> np.ndarray:
    """Noise sd of every pixel of a ``(T, rows, cols)`` movie (array or memmap) -> ``(rows, cols)`` float32.

    Movies longer than ``n_blocks * max_frames_per_block`` frames use that many frames (start,
    middle, end blocks, concatenated). Pixels are processed in bands of whole rows holding about
    ``chunk_pixels`` pixels (default: about 2**22 values, i.e. 16 MB of float32 per band), so
    memory is bounded by ``frames_used * chunk_pixels``.
    """
    _check(band, method)
    if getattr(movie, "ndim", None) != 3:
        raise ParameterError(f"movie must be (n_frames, rows, cols), got shape {getattr(movie, 'shape', None)}")
    T, rows, cols = movie.shape
    frame_idx = noise_frame_indices(T, max_frames_per_block=max_frames_per_block, n_blocks=n_blocks)
    if chunk_pixels is None:
        t_used = T if frame_idx is None else len(frame_idx)
        chunk_pixels = max(1, BAND_VALUES // max(t_used, 1))
    if chunk_pixels < 1:
        raise ParameterError(f"chunk_pixels={chunk_pixels} must be >= 1")
    band_rows = max(1, int(chunk_pixels) // max(cols, 1))
    band_rows = -(-rows // -(-rows // band_rows))  # as many bands, of equal height: no sliver band at the end
    out = np.empty((rows, cols), dtype=np.float32)
    for band_of_rows in chunk_slices(rows, band_rows):  # one band held at a time
        out[band_of_rows] = _frames_noise(_frames_of(movie, frame_idx, band_of_rows), band, method)
    return out
