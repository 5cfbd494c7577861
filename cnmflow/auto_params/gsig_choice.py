"""gSig from the cell radius (:mod:`~cnmflow.auto_params.radius`).

``gSig`` = k × that radius, k in the span of :data:`GSIG_FACTORS`, chosen by :func:`choose_gsig`: the factors
weighted by how often each one's seed images (filter and PNR) set the visible blobs furthest above that gSig's own
PNR cut over bootstrap resamples of the blobs and the null — the filter size that best separates this movie's cells
from its null, with the margins' sampling error (no single k held for both cell types on the realistic simulator);
gSiz follows it by the seed's rule ``gSiz = 2·gSig + 1`` (see :func:`~cnmflow.auto_params.seed_images.gsiz_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from cnmflow.auto_params.cuts import noise_k, null_maxima
from cnmflow.auto_params.radius import MIN_BLOBS, RadiusEstimate
from cnmflow.auto_params.seed_images import (FrameSpectra, SeedImages, correlation_image, images_of_filtered,
                                              seed_images)
from cnmflow.engine.summary_images import filter_kernel


#: gSig / half-max radius tried by :func:`choose_gsig`: the estimated radius times these spans where the grid's
#: best gSig lay on 7 of 8 benchmark movies (0.92–1.27·r). Not below 1: the PNR margin of cortex L2/3 160² was
#: level at 0.9 and 1.15 (2.14 / 2.08) and chose 0.9 (gSig 3.98), where the engine's F1@0.5 falls off a cliff
#: (0.783 → 0.587; gSig 4 gave 0.41 on its grid) — the margin does not see a filter too small for the cell.
GSIG_FACTORS = (1.0, 1.15, 1.3)


#: Bootstrap resamples of the visible blobs and the null maxima behind :func:`choose_gsig`'s weights.
N_BOOTSTRAP = 200


@dataclass(frozen=True)
class GsigChoice:
    """The gSig factor the margins point to, weighted by how often each factor wins a bootstrap resample."""

    factor: float  # chosen gSig / radius: the factors weighted by how often each has the largest margin
    factors: tuple[float, ...]
    margins: tuple[float, ...]  # per factor: median over visible blobs of their PNR / the PNR cut at that gSig
    wins: tuple[float, ...]  # per factor: share of bootstrap resamples where its margin is the largest
    images: SeedImages  # the seed images at the chosen gSig (reused for the cuts)
    gsig: float = 0.0  # the chosen gSig (sample px): factor × radius, or across a kernel-size step (``step``)
    step: "KernelStep | None" = None  # the nearest seed-kernel size step and the margins on its two sides

    def evidence(self) -> str:
        tried = ", ".join(f"{k:g}: {m:.2f} ({100 * w:.0f}%)" for k, m, w in zip(self.factors, self.margins, self.wins))
        text = (f"{self.factor:.3g} × the radius: the factors weighted by how often each sets the visible blobs' PNR "
                f"furthest above the PNR cut read at that gSig (median PNR / cut, and the share of "
                f"{N_BOOTSTRAP} bootstrap resamples of blobs and null where it is largest, at {tried})")
        return text + (self.step.evidence() if self.step is not None else "")


@dataclass(frozen=True)
class KernelStep:
    """The seed kernel's size ``2·int(2·gSig) + 1`` jumps by 2 px at each half pixel of gSig; the margins (median
    blob PNR / PNR cut) at the weighted gSig and at the nearest gSig across its nearest step."""

    weighted: float  # factor × radius (sample px)
    across: float  # the nearest gSig on the step's other side
    margin_weighted: float
    margin_across: float

    @property
    def taken(self) -> bool:
        """Whether the gSig across the step separates the blobs from the null better (and is taken)."""
        return self.margin_across > self.margin_weighted

    def evidence(self) -> str:
        size = lambda g: 2 * int(2 * g) + 1  # noqa: E731 (the kernel's size, as filter_kernel computes it)
        verb = "taken" if self.taken else "kept"
        return (f"; {self.across if self.taken else self.weighted:.4g} px {verb}: the seed kernel's size steps "
                f"between {self.weighted:.4g} px ({size(self.weighted)} px kernel, margin {self.margin_weighted:.2f}) "
                f"and {self.across:.4g} px ({size(self.across)} px, margin {self.margin_across:.2f})")


#: How far below a kernel-size step (at gSig = m/2) the gSig on its lower side is put: far enough that the engine's
#: gSig (rounded to 0.01, divided by ssub) stays below it.
STEP_CLEARANCE = 0.02


def across_step(gsig: float) -> float:
    """The gSig nearest to ``gsig`` with the seed kernel of the other side of its nearest size step (the size
    ``2·int(2·gSig) + 1`` changes at every m/2): just below the step under it or at the step above it."""
    m = int(2 * gsig)
    if 2 * gsig - m < 0.5 and m >= 2:
        return m / 2 - STEP_CLEARANCE
    return (m + 1) / 2


def pnr_cut_of(maxima: np.ndarray) -> np.ndarray:
    """The flipped-maxima PNR cut (median + Φ⁻¹(1 − 1/n) · 1.4826·MAD) of each row of ``maxima`` (…, n)."""
    floor = np.median(maxima, axis=-1)
    sd = 1.4826 * np.median(np.abs(maxima - floor[..., None]), axis=-1)
    return np.maximum(floor + noise_k(maxima.shape[-1]) * sd, np.finfo(float).tiny)


def pnr_margin(images: SeedImages, gsig: float, blobs: np.ndarray) -> float:
    """Median over ``blobs`` (n, 2) of their PNR over the flipped-maxima PNR cut at this gSig: how far the seed
    search at this gSig sets the cells the projection shows above its own noise null."""
    maxima = null_maxima(images.flipped_pnr, gsig)
    return float(np.median(images.pnr[blobs[:, 0], blobs[:, 1]]) / pnr_cut_of(maxima))


def bootstrap_wins(blob_pnrs: Sequence[np.ndarray], maxima: Sequence[np.ndarray], rng: np.random.Generator,
                   n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """Share of bootstrap resamples in which each factor's margin is the largest: the blobs resampled once for
    all factors (the same cells seen through each filter), each factor's null maxima on their own."""
    picks = rng.integers(0, len(blob_pnrs[0]), (n_boot, len(blob_pnrs[0])))
    margins = np.stack([np.median(pnrs[picks], axis=1)
                        / pnr_cut_of(null[rng.integers(0, len(null), (n_boot, len(null)))])
                        for pnrs, null in zip(blob_pnrs, maxima)], axis=1)
    return np.bincount(margins.argmax(axis=1), minlength=len(blob_pnrs)) / n_boot


def choose_gsig(movie: np.ndarray, radius: RadiusEstimate, *, center_psf: bool,
                factors: Sequence[float] = GSIG_FACTORS, rng: int | np.random.Generator | None = 0) -> GsigChoice:
    """gSig = k·r, k the ``factors`` weighted by how often each sets the visible blobs (the strongest round blobs
    of the projection) furthest above that gSig's PNR cut, over bootstrap resamples of the blobs and the null.

    The margin (median blob PNR / cut) says which filter size best separates this movie's cells from the
    sign-flipped movie's null, as a matched filter would, but read on the cells and the null of this movie. No
    single k fitted both cell types (benchmarks/README.md: the grid's best gSig lay at 0.92–0.97·r on CA1 and
    1.13–1.27·r on cortex L2/3, whose profiles have the same shape). The margins are estimates — a median over a
    few dozen blobs, a cut read off a sample of maxima — so k is the expected winning factor under their
    sampling error (the bootstrap's mean of the argmax), not the argmax: a clear winner is taken as it is, a
    near tie lands between the tied factors. The choice passes share each frame's FFT (:class:`FrameSpectra`, kept
    for the chosen gSig's pass when they fit) and compute the PNRs only; the seed images (with the correlation) are
    computed once at the chosen gSig."""
    n = max(radius.n_visible, MIN_BLOBS)
    blobs = np.asarray(radius.blobs[:n], dtype=int)
    gsigs = [k * radius.radius for k in factors]
    spectra = FrameSpectra(movie, max(filter_kernel(g, center_psf=center_psf).shape[0] // 2 for g in gsigs))
    peaks_each = _peak_images(spectra, gsigs, center_psf=center_psf)
    blob_pnrs = [peaks.pnr[blobs[:, 0], blobs[:, 1]] for peaks in peaks_each]
    maxima = [null_maxima(peaks.flipped_pnr, g) for peaks, g in zip(peaks_each, gsigs)]
    margins = tuple(float(np.median(p) / pnr_cut_of(m)) for p, m in zip(blob_pnrs, maxima))
    wins = bootstrap_wins(blob_pnrs, maxima, np.random.default_rng(rng))
    factor = round(float(np.dot(wins, factors)), 3)
    weighted = factor * radius.radius
    if factor in factors:  # one factor won every resample: its PNR images are at hand, its correlation is not
        at = list(factors).index(factor)
        filtered = spectra.filtered([gsigs[at]], center_psf=center_psf)[0]
        images = replace(peaks_each[at], correlation=correlation_image(filtered, peaks_each[at].noise))
    else:  # the seed images at the weighted gSig, from the spectra at hand
        images = images_of_filtered(spectra.filtered([weighted], center_psf=center_psf)[0])
    step, across_images = _across_step(movie, spectra, images, weighted, blobs, center_psf=center_psf)
    return GsigChoice(factor=factor, factors=tuple(factors), margins=margins, wins=tuple(float(w) for w in wins),
                      images=across_images if step.taken else images, gsig=step.across if step.taken else weighted,
                      step=step)


def _across_step(movie: np.ndarray, spectra: FrameSpectra, images: SeedImages, gsig: float, blobs: np.ndarray, *,
                 center_psf: bool) -> tuple[KernelStep, SeedImages]:
    """The margins at ``gsig`` and across its kernel's nearest size step, and the seed images there (with the
    correlation only when that side is taken)."""
    across = across_step(gsig)
    if filter_kernel(across, center_psf=center_psf).shape[0] // 2 > spectra.pad:
        other = seed_images(movie, gsig=across, center_psf=center_psf)
        filtered = None
    else:
        filtered = spectra.filtered([across], center_psf=center_psf)[0]
        other = images_of_filtered(filtered, correlation=False)
    step = KernelStep(weighted=gsig, across=across, margin_weighted=pnr_margin(images, gsig, blobs),
                      margin_across=pnr_margin(other, across, blobs))
    if step.taken and filtered is not None:
        other = replace(other, correlation=correlation_image(filtered, other.noise))
    return step, other


def _peak_images(spectra: FrameSpectra, gsigs: Sequence[float], *, center_psf: bool) -> list[SeedImages]:
    """The PNR images (no correlation) at each gSig. With the spectra kept, one gSig at a time, so that one filtered
    movie is held at once; else all in one pass over the frames (each forward FFT once)."""
    if spectra.kept:
        return [images_of_filtered(spectra.filtered([g], center_psf=center_psf)[0], correlation=False) for g in gsigs]
    return [images_of_filtered(filtered, correlation=False) for filtered in spectra.filtered(gsigs, center_psf=center_psf)]
