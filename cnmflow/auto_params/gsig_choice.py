"""gSig from the cell radius (:mod:`~cnmflow.auto_params.radius`).

``gSig`` = k × that radius, k one of :data:`GSIG_FACTORS`, chosen by :func:`choose_gsig`: the factor whose seed
images (filter and PNR) set the visible blobs furthest above that gSig's own PNR cut — the cut weighed by
:data:`CUT_WEIGHT` —, the filter size that best separates this movie's cells from its null (no single k held for both
cell types on the realistic simulator); how often each factor wins bootstrap resamples of the blobs and the null is
reported with it. Where fewer than :data:`~cnmflow.auto_params.radius.MIN_BLOBS` blobs are visible the margins are
read on blobs the projection does not show, and k falls back to the smallest factor, the radius itself;
auto's gSiz does not follow k: it is the seed box of a fixed factor times the radius
(:func:`~cnmflow.auto_params.seed_images.gsiz_of_radius`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from cnmflow.auto_params.cuts import noise_k, null_maxima, resampled_floor_and_sd, robust_floor_and_sd
from cnmflow.auto_params.radius import MIN_BLOBS, RadiusEstimate
from cnmflow.auto_params.seed_images import FrameSpectra, SeedImages, correlation_image, images_of_filtered
from cnmflow.engine.summary_images import filter_kernel


#: gSig / half-max radius tried by :func:`choose_gsig`: the estimated radius times these spans where the grid's
#: best gSig lay on 7 of 8 benchmark movies (0.92–1.27·r). Not below 1: the PNR margin of cortex L2/3 160² was
#: level at 0.9 and 1.15 (2.14 / 2.08) and chose 0.9 (gSig 3.98), where the engine's F1@0.5 falls off a cliff
#: (0.783 → 0.587; gSig 4 gave 0.41 on its grid) — the margin does not see a filter too small for the cell.
GSIG_FACTORS = (1.0, 1.15, 1.3)


#: The power of the PNR cut in :func:`choose_gsig`'s margin, median blob PNR / cut ** CUT_WEIGHT. With the whole cut
#: (1) the margin favoured the smallest kernel: the flipped null's maxima — mostly the cells' negative surround, which
#: a wider kernel's ring reaches more often — grow with the kernel faster than the cells' PNR (cut +40–60% over k = 1 →
#: 1.3 where the blobs' PNR rises 0–24%), so cortex L2/3 took k = 1 where the engine does best at 1.3; with none (0) it
#: favours the largest wherever the cells' PNR still rises, as on CA1, whose best k is 1. Read on twelve training
#: analogues (seeds 21–24 of the benchmark's four configurations; F1@0.5 of each k with auto's cuts read there;
#: benchmarks/findings/auto_params.md, h18k): the argmax's mean F1@0.5 0.673 with the whole cut, 0.720–0.729 for any
#: weight in 0.15–0.45 (the best k on every movie: 0.733), 0.683 with none; 0.3 is that span's middle.
CUT_WEIGHT = 0.3


#: How far below a step of the seed kernel (``summary_images.kernel_size``: 2·int(2·gSig)+1 px, a step every 0.5 px)
#: auto's gSig is raised onto it (:func:`on_kernel_step`). The kernel, not gSig, carries the gain: on 256² CA1 s19
#: (gSig 6.41, 25 px) the kernel one step up alone read F1@0.5 .887 → .909, gSig 6.9 on that kernel .889. Read on the
#: 52 training movies (benchmarks/findings/auto_params.md, h21kstep): 0.25 — the span where round(2·gSig) would take
#: the next kernel — moves 26, mean ΔF1@0.5 +0.009 (12 gain > 0.02, 4 lose, worst −0.149 on CA1 SNR 1–4 s88, a
#: 0.04 px move); 0.1 moves 9, +0.006; the engine's kernel from round(2·gSig) (CaImAn's parity lost) +0.002, 10 lose.
KERNEL_STEP_REACH = 0.25


def on_kernel_step(gsig: float, *, reach: float = KERNEL_STEP_REACH) -> float:
    """``gsig`` raised to the next multiple of 0.5 (the next seed-kernel size) where it lies less than ``reach``
    below it; else ``gsig`` itself. CaImAn's kernel width int(2·gSig) rounds a fractional gSig down to the size of
    the step below; a chosen gSig just under a step would run a kernel a size too small for the cells it was read on.
    """
    step = (math.floor(2 * gsig + 1e-9) + 1) / 2
    return step if step - gsig < reach else float(gsig)


#: Bootstrap resamples of the visible blobs and the null maxima behind :func:`choose_gsig`'s weights.
N_BOOTSTRAP = 200

#: The least share of bootstrap resamples some factor must win for the margins' argmax to be taken; where none wins it
#: the evidence is split and k is the radius itself, as where few blobs are visible. Read on the 34 training movies
#: (h18fb's 30, h18fresh's 41–44; benchmarks/findings/auto_params.md, h18split): any threshold in 0.37–0.53 moves
#: only CA1 6.5 µm s23 (wins .32 / .32 / .37; k 1.15 → 1: F1@0.5 0.542 → 0.696); 0.6 also takes four movies whose
#: largest share is .53–.59 to k = 1 and loses three of them (cortex 160² s21 / s22 / s24: −0.06 / −0.03 / −0.23).
#: A majority, inside that span. The largest share, not the argmax's own: on s24 the argmax 1.3 wins 36%, 1.15 56%.
SPLIT_SHARE = 0.5


@dataclass(frozen=True)
class GsigChoice:
    """The gSig factor with the largest margin, and how often each factor wins a bootstrap resample."""

    factor: float  # chosen gSig / radius: the factor with the largest margin (the smallest where the blobs are thin)
    gsig: float  # the gSig the run takes: factor × radius raised onto its kernel step (on_kernel_step); images' gSig
    factors: tuple[float, ...]
    margins: tuple[float, ...]  # per factor: median over visible blobs of their PNR / (PNR cut there) ** CUT_WEIGHT
    wins: tuple[float, ...]  # per factor: share of bootstrap resamples where its margin is the largest (evidence)
    images: SeedImages  # the seed images at the chosen gSig (reused for the cuts)
    n_visible: int = MIN_BLOBS  # blobs the projection shows; below MIN_BLOBS the margins are not used
    split: bool = False  # no factor won SPLIT_SHARE of the resamples: the radius taken

    def argmax_factor(self) -> float:
        """The factor with the largest margin (the first of equals), whatever was taken."""
        return self.factors[int(np.argmax(self.margins))]

    def evidence(self) -> str:
        tried = ", ".join(f"{k:g}: {m:.2f} ({100 * w:.0f}%)" for k, m, w in zip(self.factors, self.margins, self.wins))
        if self.n_visible < MIN_BLOBS:
            return (f"{self.factor:.3g} × the radius: only {self.n_visible} blob(s) visible (fewer than {MIN_BLOBS}), "
                    f"so the PNR margins (median PNR / cut^{CUT_WEIGHT:g} at {tried}; share of {N_BOOTSTRAP} bootstrap "
                    f"resamples where each is largest) rest on blobs the projection does not show and are not used")
        if self.split:
            return (f"{self.factor:.3g} × the radius: the evidence is split — no factor wins {100 * SPLIT_SHARE:.0f}% "
                    f"of {N_BOOTSTRAP} bootstrap resamples of blobs and null (median PNR / cut^{CUT_WEIGHT:g} and share "
                    f"at {tried}), so not the largest margin's {self.argmax_factor():g} but the radius itself")
        return (f"{self.factor:.3g} × the radius: the factor that sets the visible blobs' PNR "
                f"furthest above the PNR cut read at that gSig (median PNR / cut^{CUT_WEIGHT:g}, and the share of "
                f"{N_BOOTSTRAP} bootstrap resamples of blobs and null where it is largest, at {tried})")


def pnr_cut_of(maxima: np.ndarray) -> np.ndarray:
    """The flipped-maxima PNR cut (median + Φ⁻¹(1 − 1/n) · 1.4826·MAD) of each row of ``maxima`` (…, n)."""
    return _cut(*robust_floor_and_sd(maxima), maxima.shape[-1])


def _cut(floor: np.ndarray, sd: np.ndarray, n: int) -> np.ndarray:
    """The PNR cut of a null of ``n`` maxima with this floor and sd: one false maximum expected among them."""
    return np.maximum(floor + noise_k(n) * sd, np.finfo(float).tiny)


def margin_of(blob_pnrs: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """The margin of each row: median of ``blob_pnrs`` (…, n) over the PNR cut of ``maxima`` (…, m) to the power
    :data:`CUT_WEIGHT`. One formula for the choice, its bootstrap and :func:`pnr_margin`."""
    return _margin(blob_pnrs, pnr_cut_of(maxima))


def _margin(blob_pnrs: np.ndarray, cut: np.ndarray) -> np.ndarray:
    return np.median(blob_pnrs, axis=-1) / cut ** CUT_WEIGHT


def pnr_margin(images: SeedImages, gsig: float, blobs: np.ndarray) -> float:
    """Median over ``blobs`` (n, 2) of their PNR over the flipped-maxima PNR cut at this gSig to the power
    :data:`CUT_WEIGHT`: how far the seed search at this gSig sets the cells the projection shows above its own null,
    the null's growth with the kernel (its surround part) weighed down."""
    return float(margin_of(images.pnr[blobs[:, 0], blobs[:, 1]], null_maxima(images.flipped_pnr, gsig)))


def bootstrap_wins(blob_pnrs: Sequence[np.ndarray], maxima: Sequence[np.ndarray], rng: np.random.Generator,
                   n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """Share of bootstrap resamples in which each factor's margin is the largest: the blobs resampled once for
    all factors (the same cells seen through each filter), each factor's null maxima on their own."""
    picks = rng.integers(0, len(blob_pnrs[0]), (n_boot, len(blob_pnrs[0])))
    margins = []
    for pnrs, null in zip(blob_pnrs, maxima):  # margin_of of each resample; its null's median and MAD from sorted ranks
        floor, sd = resampled_floor_and_sd(null, rng.integers(0, len(null), (n_boot, len(null))))
        margins.append(_margin(pnrs[picks], _cut(floor, sd, len(null))))
    margins = np.stack(margins, axis=1)
    return np.bincount(margins.argmax(axis=1), minlength=len(blob_pnrs)) / n_boot


def choose_gsig(movie: np.ndarray, radius: RadiusEstimate, *, center_psf: bool,
                factors: Sequence[float] = GSIG_FACTORS, rng: int | np.random.Generator | None = 0) -> GsigChoice:
    """gSig = k·r, k the one of ``factors`` that sets the visible blobs (the strongest round blobs of the projection)
    furthest above that gSig's PNR cut; the share of bootstrap resamples of the blobs and the null each factor wins is
    reported with it.

    The margin (median blob PNR / cut ** :data:`CUT_WEIGHT`) says which filter size best separates this movie's
    cells from the sign-flipped movie's null, as a matched filter would, but read on the cells and the null of this
    movie; the cut is weighed down because its growth with the kernel is mostly the cells' surround. No
    single k fitted both cell types (benchmarks/findings/auto_params.md: the grid's best gSig lay at 0.92–0.97·r
    on CA1 and 1.13–1.27·r on cortex L2/3, whose profiles have the same shape). The margins are estimates — a
    median over a few dozen blobs, a cut read off a sample of maxima. k as the expected winning factor under their
    sampling error (the bootstrap's mean of the argmax, h18tie) was replaced by the argmax (h18k): with the cut
    weighed down the wins spread on CA1, and a weighted k a few hundredths above 1 crossed the seed kernel's size step
    (its cut 10–25% stricter) and lost F1@0.5 on the CA1 training analogues; the wins are kept as the reason's
    measure of how clear the choice is. Where fewer than MIN_BLOBS blobs are visible (peak SNR 1–4 on CA1: 1–4 of
    40 cells) the median is over the strongest MIN_BLOBS blobs, most of them noise, and the margin picked the wider
    kernels where k = 1 does best (h18k: −0.10 to −0.14 F1@0.5 on two such CA1 movies); k is then the smallest factor
    (benchmarks/findings/auto_params.md, h18fb). k is the smallest factor too where no factor wins
    :data:`SPLIT_SHARE` of the resamples (h18split): the margins do not tell the factors apart, and the radius is
    the choice with no evidence for a wider kernel (that movie is filtered once more). The choice passes share each
    frame's FFT (:class:`FrameSpectra`) and compute the PNRs only; the chosen factor's filtered movie is kept from its
    pass for its correlation image (no refiltering) — or, where its gSig is raised onto the next kernel step
    (:func:`on_kernel_step`), written over by the movie filtered there from the same spectra: the images handed over
    are the run's, the margins the factors' own (read at k·r, as :data:`CUT_WEIGHT` and :data:`SPLIT_SHARE` were).
    """
    n = max(radius.n_visible, MIN_BLOBS)
    blobs = np.asarray(radius.blobs[:n], dtype=int)
    gsigs = [k * radius.radius for k in factors]
    # padded for the widest kernel a run may take: a factor's gSig raised onto the next kernel step
    spectra = FrameSpectra(movie, max(filter_kernel(on_kernel_step(g), center_psf=center_psf).shape[0] // 2
                                      for g in gsigs))
    peaks_each, blob_pnrs, maxima, margins, chosen, spare = [], [], [], [], None, []
    for i, filtered in enumerate(_each_filtered(spectra, gsigs, center_psf=center_psf, spare=spare)):
        peaks_each.append(images_of_filtered(filtered, correlation=False))
        blob_pnrs.append(peaks_each[i].pnr[blobs[:, 0], blobs[:, 1]])
        maxima.append(null_maxima(peaks_each[i].flipped_pnr, gsigs[i]))
        margins.append(float(margin_of(blob_pnrs[i], maxima[i])))
        if _chosen(margins, factors[:i + 1], radius.n_visible) == i:  # the choice so far: its movie is kept
            chosen, filtered = filtered, chosen
        if filtered is not None:  # no longer needed: the next factor's movie is written over it
            spare.append(filtered)
        del filtered
    at = _chosen(margins, factors, radius.n_visible)
    wins = bootstrap_wins(blob_pnrs, maxima, np.random.default_rng(rng))
    split = bool(at != int(np.argmin(factors)) and wins.max() < SPLIT_SHARE)
    if split:  # the evidence is split: the radius itself
        at = int(np.argmin(factors))
    run_gsig = on_kernel_step(gsigs[at])
    images = _run_images(spectra, gsigs[at], run_gsig, peaks_each[at], chosen, refilter=split, center_psf=center_psf)
    return GsigChoice(factor=float(factors[at]), gsig=run_gsig, factors=tuple(factors), margins=tuple(margins),
                      wins=tuple(float(w) for w in wins), images=images, n_visible=radius.n_visible, split=split)


def _run_images(spectra: FrameSpectra, gsig: float, run_gsig: float, peaks: SeedImages, filtered: np.ndarray, *,
                refilter: bool, center_psf: bool) -> SeedImages:
    """The seed images at ``run_gsig``, the gSig the run takes (``gsig`` raised onto its kernel step,
    :func:`on_kernel_step`). Where the step moves it they are read afresh there, from the kept spectra (no second
    pass over the frames); else ``peaks`` (read at ``gsig``) gets the correlation image of ``filtered`` — filtered at
    ``gsig`` again first where ``refilter`` (it holds another factor's movie). ``filtered`` is written over: one movie
    in memory."""
    if run_gsig != gsig:
        return images_of_filtered(spectra.filtered([run_gsig], center_psf=center_psf, out=[filtered])[0])
    if refilter:
        filtered = spectra.filtered([gsig], center_psf=center_psf, out=[filtered])[0]
    return replace(peaks, correlation=correlation_image(filtered, peaks.noise))


def _chosen(margins: Sequence[float], factors: Sequence[float], n_visible: int) -> int:
    """The index :func:`choose_gsig` takes: the largest margin (the first of equals), or the smallest factor where
    fewer than MIN_BLOBS blobs are visible. On factors 0..i it names i whenever factor i is the final choice (a later
    factor may still replace it), so the filtered movie held for the running choice is, at the end, the chosen one's."""
    return int(np.argmax(margins)) if n_visible >= MIN_BLOBS else int(np.argmin(factors))


def _each_filtered(spectra: FrameSpectra, gsigs: Sequence[float], *, center_psf: bool,
                   spare: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The movie filtered at each gSig, in order. With the spectra kept, one gSig at a time (each movie filtered
    when asked for), written over a movie the caller put in ``spare`` where there is one (at most two movies are
    then ever allocated); else all in one pass over the frames (each forward FFT once), handed over one by one so
    that a movie the caller drops is freed."""
    if spectra.kept:
        for g in gsigs:
            yield spectra.filtered([g], center_psf=center_psf, out=[spare.pop() if spare else None])[0]
        return
    movies = spectra.filtered(gsigs, center_psf=center_psf)
    while movies:
        yield movies.pop(0)
        spare.clear()  # all were made in the pass: none is filtered again
