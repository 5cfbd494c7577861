"""What the first seed search sees of a (downsampled) movie: its correlation and PNR images and the sign-flipped
movie's PNR (:func:`seed_images`: the seed kernel, the 2σ correlation threshold; one filtering pass), the frames'
spectra shared by several gSig (:class:`FrameSpectra`), the white-noise correlation null and the seed search's
window (:func:`gsiz_for`) and auto's gSiz from the radius (:func:`gsiz_of_radius`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.fft as sfft

from cnmflow.auto_params.sample import SAMPLE_BYTES
from cnmflow.engine.chunking import FILTER_CHUNK_BYTES, frames_per_chunk
from cnmflow.engine.init.corr_pnr import SEED_CORR_THRESHOLD
from cnmflow.engine.noise import noise_psd
from cnmflow.engine.summary_images import CorrelationSums, FrameFilter, filter_kernel
from cnmflow.engine.threads import fft_workers


def gsiz_for(gsig: float) -> int:
    """The seed's bounding-box half-size for a radius (its table: gSig 3 → gSiz 7).

    Measured against 4·gSig + 1 (benchmarks/auto_params_benchmark.py, CA1 128²): F1@IoU0.5 0.83 with
    2·gSig + 1, at most 0.77 over a gSig x threshold grid with 4·gSig + 1.
    """
    return int(round(2 * gsig)) + 1


#: auto's gSiz is the seed box of gSig = GSIZ_RADIUS_FACTOR × the radius, whichever factor gSig itself took
#: (:func:`gsiz_of_radius`). On the 32 training movies (benchmarks/findings/auto_params.md, h18gsizr) mean F1@0.5
#: over 2·gSig+1 was +0.011 at 1.3, +0.009 at 1.15, −0.020 at 1. 1.3's box was a px or two too large on 128² cortex
#: 8 µm and dense CA1 (session 26); 1.15, read on seeds 221–240 and judged on fresh 241–260 by a rule written first
#: (session 27): within 0.02 of the grid 11 → 13 and 9 → 10 of 20, mean F1@0.5 +0.010 / +0.005; on fresh 256²
#: movies F1@0.5 level (±.003), median IoU .001–.028 lower.
GSIZ_RADIUS_FACTOR = 1.15


def gsiz_of_radius(radius: float, factor: float = GSIZ_RADIUS_FACTOR) -> int:
    """auto's gSiz from the cells' half-max radius alone, ``round(2·factor·radius) + 1``: gSig's factor (a choice
    whose margins lie within 1–3% on many movies) then no longer steps the seed's init box and the ring with it."""
    return int(round(2 * factor * radius)) + 1


@dataclass(frozen=True)
class SeedImages:
    """What the first seed search sees of a (downsampled) movie, and the sign-flipped movie's PNR."""

    correlation: np.ndarray | None  # 8-neighbour correlation of the filtered movie, values < 2 noise sd zeroed
    pnr: np.ndarray  # max_t F / noise (≥ 0)
    flipped_pnr: np.ndarray  # max_t (−F) / noise (≥ 0): the PNR of −movie
    noise: np.ndarray  # PSD noise sd of the filtered movie F


def temporal_mean(movie: np.ndarray, chunk_frames: int = 128) -> np.ndarray:
    """The movie's mean frame (float64 sums a chunk at a time, returned as float32, as the seed search's)."""
    mean = np.zeros(movie.shape[1:])
    for f0 in range(0, movie.shape[0], chunk_frames):
        mean += np.asarray(movie[f0:f0 + chunk_frames], dtype=np.float64).sum(axis=0)
    return (mean / movie.shape[0]).astype(np.float32)


def images_of_filtered(filtered: np.ndarray, *, correlation: bool = True) -> SeedImages:
    """The seed images of a filtered movie F (T, rows, cols): its PSD noise, PNR, the flipped movie's PNR
    (``−min_t F / noise``: the filter is linear) and, with ``correlation``, the 2σ-thresholded correlation."""
    noise = filtered_noise(filtered)
    sd = _noise_sd(noise)
    return SeedImages(correlation=correlation_image(filtered, noise) if correlation else None,
                      pnr=np.maximum(filtered.max(axis=0) / sd, 0),
                      flipped_pnr=np.maximum(-filtered.min(axis=0) / sd, 0), noise=noise)


def filtered_noise(filtered: np.ndarray) -> np.ndarray:
    """The PSD noise sd (float32 image) of each pixel of a filtered movie F (T, rows, cols), as the seeding reads it."""
    T, rows, cols = filtered.shape
    return noise_psd(filtered.reshape(T, -1).T).reshape(rows, cols).astype(np.float32)


def _noise_sd(noise: np.ndarray) -> np.ndarray:
    """The noise as the PNR divides by it: a pixel without noise gets PNR 0, not a division by zero."""
    return np.where(noise > 0, noise, np.inf).astype(np.float32)


def correlation_image(filtered: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The seed search's correlation image of a filtered movie F: 8-neighbour correlation, values below 2 noise sd
    zeroed (``noise`` is F's PSD noise, :func:`images_of_filtered`'s)."""
    sums = CorrelationSums(filtered.shape[1:])
    sums.add(filtered, threshold=SEED_CORR_THRESHOLD * _noise_sd(noise))
    return sums.image()


def seed_images(movie: np.ndarray, *, gsig: float, center_psf: bool, chunk_frames: int = 128) -> SeedImages:
    """The seed search's correlation and PNR images and the flipped movie's PNR, in one filtering pass.

    The same definitions as :func:`cnmflow.engine.summary_images.correlation_pnr` with the seed's 2σ
    threshold (and the engine's own noise of the whole filtered movie, as the seeding computes it), but
    each frame is filtered once: the filter is linear, so the flipped movie's filtered frames are −F and
    its PNR is ``−min_t F / noise``. ``movie`` is the bounded sample
    (:func:`~cnmflow.auto_params.sample.sample_movie`), so F is held.
    """
    return images_of_filtered(filtered_movie(movie, gsig=gsig, center_psf=center_psf, chunk_frames=chunk_frames))


def filtered_movie(movie: np.ndarray, *, gsig: float, center_psf: bool, chunk_frames: int = 128,
                   out: np.ndarray | None = None) -> np.ndarray:
    """The movie minus its mean frame filtered by the seed kernel (float32, a chunk of frames at a time); ``out``
    may be the movie itself, when it is not needed after (each chunk is filtered before it is written over)."""
    T, rows, cols = movie.shape
    filt = FrameFilter(filter_kernel(gsig, center_psf=center_psf), (rows, cols))
    mean = temporal_mean(movie, chunk_frames)
    filtered = np.empty((T, rows, cols), np.float32) if out is None else out
    for f0 in range(0, T, chunk_frames):
        filtered[f0:f0 + chunk_frames] = filt(movie[f0:f0 + chunk_frames], minus=mean)
    return filtered


class FrameSpectra:
    """Each frame of a movie minus its mean, padded by ``pad`` replicated border pixels and Fourier transformed
    once: filtering by any seed kernel no wider than ``2·pad + 1`` is then a product and an inverse FFT per frame.
    A narrower kernel sees the same replicated values at every output pixel, so each result is
    :class:`FrameFilter`'s up to rounding. The spectra are kept when they fit in ``keep_bytes`` (a later gSig
    then skips the forward transforms), else recomputed per call. The default, two samples' bytes, holds the padded
    spectra of any sample the estimate reads (complex half-spectra take a float32 frame's bytes before the padding:
    a 256² sample padded for gSig 5 needs 1.2 × SAMPLE_BYTES), so a gSig read after the choice costs no forward pass."""

    def __init__(self, movie: np.ndarray, pad: int, *, keep_bytes: int = 2 * SAMPLE_BYTES):
        self.movie, self.pad = movie, pad
        self.shape = tuple(sfft.next_fast_len(n + 2 * pad, real=True) for n in movie.shape[1:])
        self.mean = temporal_mean(movie)
        self.step = frames_per_chunk(self.shape[0] * self.shape[1], FILTER_CHUNK_BYTES, bytes_per_value=8)
        spectrum_bytes = 8 * movie.shape[0] * self.shape[0] * (self.shape[1] // 2 + 1)
        self._kept = list(self._transforms()) if spectrum_bytes <= keep_bytes else None

    @property
    def kept(self) -> bool:
        """Whether the spectra are held (a filtering then costs no forward FFT)."""
        return self._kept is not None

    def _transforms(self):
        """(first frame, spectra of the padded frames) a chunk at a time."""
        widths = ((0, 0), (self.pad, self.pad), (self.pad, self.pad))
        mean = np.pad(self.mean, widths[1:], mode="edge")  # replicating the borders commutes with the subtraction
        for f0 in range(0, self.movie.shape[0], self.step):
            padded = np.pad(np.asarray(self.movie[f0:f0 + self.step], dtype=np.float32), widths, mode="edge")
            padded -= mean
            yield f0, sfft.rfft2(padded, s=self.shape, overwrite_x=True, workers=fft_workers())

    def filtered(self, gsigs: Sequence[float], *, center_psf: bool,
                 out: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """The movie minus its mean filtered by the seed kernel of each gSig (float32, one movie per gSig), written
        into ``out[i]`` where given (a movie's buffer no longer needed: no fresh memory to map and clear)."""
        T, rows, cols = self.movie.shape
        kernels = [filter_kernel(g, center_psf=center_psf) for g in gsigs]
        halves = [kernel.shape[0] // 2 for kernel in kernels]
        if max(halves) > self.pad:
            raise ValueError(f"a kernel of half-width {max(halves)} needs more than the {self.pad} padded pixels")
        # the inverse in its two stages, the second (along columns) on the rows kept only: the kernels' spectra carry
        # the first stage's 1/rows, so the second stage's own 1/cols completes the inverse's scale
        spectra = [sfft.rfft2(kernel[::-1, ::-1].astype(np.float32), s=self.shape) / np.float32(self.shape[0])
                   for kernel in kernels]
        out = [np.empty((T, rows, cols), np.float32) if buffer is None else buffer
               for buffer in (out if out is not None else [None] * len(gsigs))]
        product = None
        for f0, frames in self._kept if self._kept is not None else self._transforms():
            if product is None or product.shape != frames.shape:
                product = np.empty_like(frames)
            for filtered, spectrum, half in zip(out, spectra, halves):
                at = self.pad + half
                np.multiply(frames, spectrum, out=product)
                kept_rows = sfft.ifft(product, axis=1, norm="forward", overwrite_x=True,
                                      workers=fft_workers())[:, at:at + rows]
                filtered[f0:f0 + len(frames)] = sfft.irfft(kept_rows, n=self.shape[1], axis=2, overwrite_x=True,
                                                           workers=fft_workers())[:, :, at:at + cols]
        return out


def white_noise_correlation(n_frames: int, gsig: float, center_psf: bool, rng) -> np.ndarray:
    """The seed correlation image of Gaussian white noise of ``n_frames`` (64x64 pixels: the null is
    stationary): the correlation that the seed filter and the 2σ threshold give noise alone."""
    noise = np.random.default_rng(rng).standard_normal((n_frames, 64, 64), dtype=np.float32)
    filtered = filtered_movie(noise, gsig=gsig, center_psf=center_psf, out=noise)  # the noise is not read again
    return correlation_image(filtered, filtered_noise(filtered))
