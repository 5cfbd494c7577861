"""min_corr and min_pnr: each the level its null exceeds once per image.

The correlation and PNR images are computed as the corr_pnr seeding computes them
(:func:`~cnmflow.auto_params.seed_images.seed_images`: the seed kernel, the 2σ correlation threshold, on the movie
downsampled by tsub/ssub as a patch is; one filtering pass), and each is compared with a null that has no cells: the
correlation with the same image of Gaussian white noise of the movie's length (the correlation the filter and
threshold give noise alone), the PNR with the sign-flipped movie (its noise and background fluctuations, not its
transients, which are positive: ``max_t(−F)/noise``) read at its local maxima over the seed search's windows
(:func:`null_maxima`: a seed candidate is such a maximum, and the maxima of a field sit higher than its pixels).
Each cut is the level the null exceeds with probability ``1/n`` — for the clean white-noise null its empirical
``Φ(k)`` quantile with n = the number of independent cell-sized elements ``rows·cols/(π·gSig²)``, for the flipped
movie's maxima (whose tail holds the cells' negative surround) their median + ``k`` × their sd (1.4826·MAD) with n =
the number of maxima — with ``k = Φ⁻¹(1 − 1/n)``: one expected false exceedance per image on a movie without cells,
and far fewer for the seed search, which needs both. The PNR the engine thresholds is a maximum over the whole
movie, which reaches further the longer the movie, while the cut is read on a sample of at most
:data:`~cnmflow.auto_params.sample.MAX_SAMPLE_FRAMES`: it is carried to the movie's length by the extreme-value law
of the maximum of n normals (:func:`scale_to_length`). min_pnr is stated as the engine reads it, a full-rate PNR:
the cut on the downsampled sample divided by √(tsub·ssub²) (:func:`pnr_reduction`).

min_pnr is then held at or below :data:`MIN_PNR_CEILING` (:func:`ceiled_min_pnr`): on CA1-like movies (dense ones
most) the null's cut reads 8–10 where the grid's best lies at 5–7, and it loses recall there.

The cuts adapt to the noise and background of each movie and, through the flipped movie's maxima, a little to its
cells (bright cells deepen the negative surround), but they are no rule on the cells' brightness: what lies above
them at high SNR includes real signal that is not an in-focus cell (out-of-focus cells, neuropil), which no noise
null rejects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import ndtr, ndtri

from cnmflow.auto_params.seed_images import SeedImages, gsiz_for, white_noise_correlation
from cnmflow.engine.init.corr_pnr import seed_candidates


def normal_isf(p: float) -> float:
    """The standard normal's upper-tail quantile (``scipy.stats.norm.isf``'s own float64 formula),
    from scipy.special so that every run's parameter check does not import scipy.stats."""
    return float(-ndtri(p))


@dataclass(frozen=True)
class ThresholdEstimate:
    """A cut on one summary image: its null's median (floor), sd (1.4826·MAD) and k.

    ``tail`` says how the cut was read: "quantile" (the null's empirical Φ(k) quantile) or "gaussian"
    (median + k·sd).
    """

    name: str
    null: str  # what the floor was read from
    cut: float
    floor: float
    sd: float
    k: float
    tail: str = "gaussian"

    def evidence(self) -> str:
        if self.tail == "quantile":
            return (f"the {self.null}'s {100 * ndtr(self.k):.2f}th percentile (exceeded as often as {self.k:.2f} sd; "
                    f"its median {self.floor:.3g}, sd {self.sd:.3g})")
        return (f"{self.name} noise floor {self.floor:.3g} (median of the {self.null}) + {self.k:.2f} sd "
                f"× {self.sd:.3g} (1.4826·MAD)")

    def rule(self) -> str:
        """The cut in a few words (the figure's legend)."""
        if self.tail == "gaussian":
            return f"cut {self.cut:.3g} = median + {self.k:.2f}·{self.sd:.3g}"
        return f"cut {self.cut:.3g}: the null's {100 * ndtr(self.k):.2f}th percentile"


#: The strictest min_pnr (a full-rate PNR) auto states: the null's cut where it is lower, this where it is higher.
#: The null is a noise rule and knows nothing of the cells' brightness; where it reads 8–11 (dense CA1, CA1 at
#: 128²) its seed search misses cells the grid's min_pnr 5–7 finds. 7 is CaImAn's hand-tuned CA1 value and the
#: benchmark grid's centre; chosen among 6 / 7 / 8 on 32 training movies (benchmarks/findings/auto_params.md,
#: h17cap: 7 moves 9, 7 gain, none loses over 0.02, mean F1@0.5 +0.0085; 6 moves cortex too and loses 0.035 and
#: 0.054 on two CA1 movies; 8 gains less). Its cost, on the 256² CA1 movies: a lower median IoU, more neurons
#: covered twice (h18fresh's "min(auto's, 7)", h17cap).
MIN_PNR_CEILING: float = 7.0


def ceiled_min_pnr(null_min_pnr: float) -> float:
    """min_pnr from the null's cut (full rate): that cut, or :data:`MIN_PNR_CEILING` where the cut lies above it.
    The constant is read at call time (a test can set it to ``inf`` to read the null's cut alone)."""
    return float(min(null_min_pnr, MIN_PNR_CEILING))


def noise_k(n_elements: float) -> float:
    """sd above the floor with one expected exceedance among ``n_elements`` independent elements."""
    return float(normal_isf(1.0 / max(float(n_elements), 2.0)))


def robust_floor_and_sd(values: np.ndarray, axis=-1) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826·MAD of ``values`` along ``axis``: a null's level and spread that the few cells left in
    it (its upper tail) barely move. One formula for every null the estimate reads; computed in ``values``' dtype."""
    floor = np.median(values, axis=axis, keepdims=True)
    sd = 1.4826 * np.median(np.abs(values - floor), axis=axis)
    return np.squeeze(floor, axis=axis), sd


def resampled_floor_and_sd(values: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`robust_floor_and_sd` of each row of ``values[picks]`` (``values`` 1-D, ``picks`` (n_rows, m) indices
    into it: bootstrap resamples), value for value, from the rows sorted rather than partitioned twice: each row's
    ranks among ``values`` are 16-bit, which numpy sorts by radix (linear work; a float row's sort or a median's
    partition are several passes).

    The median is then read at the middle positions; the deviations from it fall then rise along the sorted row
    (the rounding of ``v − floor`` keeps that order), so the k-th smallest deviation is the least, over the windows of
    k+1 consecutive values, of the larger deviation at the window's two ends. The middle pair is averaged by
    ``np.mean`` as ``np.median`` averages it. A null of more than 2¹⁶ maxima, or with a NaN (``np.median``'s NaN
    rule), takes the partitions themselves."""
    values = np.asarray(values)
    n = len(values)
    if n > 1 << 16 or not np.isfinite(values).all():
        return robust_floor_and_sd(values[picks])
    order = np.argsort(values, kind="stable")
    rank = np.empty(n, np.uint16)
    rank[order] = np.arange(n)
    rows = values[order][np.sort(rank[picks], axis=1, kind="stable")]
    m = rows.shape[1]
    middle = sorted({(m - 1) // 2, m // 2})
    floor = rows[:, middle].mean(axis=1)
    deviations = np.abs(rows - floor[:, None], out=rows)
    kth = [np.maximum(deviations[:, :m - k], deviations[:, k:]).min(axis=1) for k in middle]
    return floor, 1.4826 * np.stack(kth, axis=1).mean(axis=1)


def noise_floor_cut(values: np.ndarray, *, name: str, null: str, k: float, tail: str = "gaussian") -> ThresholdEstimate:
    """The level a null image's values exceed with probability ``1 − Φ(k)``, read by ``tail``:

    "quantile": the empirical quantile — no shape assumed, for a clean null (white noise: zero-inflated by
    the 2σ threshold and skewed on short movies, where median + k·MAD can land above 1); "gaussian":
    ``median + k·1.4826·MAD``, for a null whose upper tail holds some signal (the sign-flipped movie: the
    cells' negative surround). A PNR is a maximum over frames, whose tail is Gumbel rather than Gaussian,
    but a Gumbel fitted to the same median and MAD cut too strictly at low SNR (benchmarks/findings/auto_params.md).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    floor, sd = map(float, robust_floor_and_sd(v))
    cut = float(np.quantile(v, ndtr(k))) if tail == "quantile" else floor + k * sd
    return ThresholdEstimate(name=name, null=null, cut=cut, floor=floor, sd=sd, k=k, tail=tail)


def pnr_reduction(tsub: int, ssub: int) -> float:
    """How much block means lower white noise, √(tsub·ssub²): the engine asks the first seed search on the
    downsampled patch for ``min_pnr`` × this (min_pnr is a full-rate PNR, CaImAn's convention), so a cut read
    on the downsampled sample's PNR is divided by it."""
    return math.sqrt(tsub * ssub**2)


def null_maxima(image: np.ndarray, gsig: float) -> np.ndarray:
    """The values of a null image at its local maxima over the seed search's windows (:func:`seed_candidates`
    on the image alone): a seed candidate is such a maximum, so its null is the null's maxima, not its pixels
    (whose median and spread are lower)."""
    at = seed_candidates(np.ones_like(image), image, min_corr=0.0, min_pnr=0.0, gsiz=gsiz_for(gsig))
    return image[at[:, 0], at[:, 1]] if len(at) >= 2 else image.ravel()


def expected_normal_max(n: float) -> tuple[float, float]:
    """Location and scale of the maximum of ``n`` independent standard normals (its Gumbel limit):
    ``a = Φ⁻¹(1 − 1/n)``, ``b = 1 / (n·φ(a))``; the mean is ``a + γ·b``."""
    a = float(normal_isf(1.0 / max(float(n), 2.0)))
    b = 1.0 / (max(float(n), 2.0) * float(np.exp(-a * a / 2) / np.sqrt(2 * np.pi)))
    return a + 0.5772156649 * b, b


def scale_to_length(cut: ThresholdEstimate, n_sample: int, n_movie: int) -> ThresholdEstimate:
    """The PNR cut of a ``n_sample``-frame sample carried to the ``n_movie`` frames the engine takes the
    maximum over.

    A PNR is a maximum over frames in noise sd units, which reaches further on a longer movie: the null's floor
    moves by the difference of the expected maxima of ``n_movie`` and ``n_sample`` standard normals, and the
    part of its spread that is the maximum's own (Gumbel sd ``π·b/√6``) shrinks with ``b``; the rest of the
    spread (background and cells' surround, which differ from place to place, not from frame count) is kept:
    ``sd² − g_sample² + g_movie²`` (extreme-value theory; on white noise the carried cut of 200 frames lands
    within 3% of the cut read on 2000).
    """
    if n_movie <= n_sample:
        return cut
    (mean_s, scale_s), (mean_m, scale_m) = expected_normal_max(n_sample), expected_normal_max(n_movie)
    gumbel_s, gumbel_m = math.pi / math.sqrt(6) * scale_s, math.pi / math.sqrt(6) * scale_m
    if cut.sd <= gumbel_s:  # all of the spread is the maximum's own
        sd = cut.sd * scale_m / scale_s
    else:
        sd = math.sqrt(cut.sd**2 - gumbel_s**2 + gumbel_m**2)
    floor = cut.floor + mean_m - mean_s
    return replace(cut, floor=floor, sd=sd, cut=floor + cut.k * sd,
                   null=f"{cut.null}, carried from {n_sample} to {n_movie} frames")


def threshold_estimates(images: SeedImages, *, n_frames: int, gsig: float, center_psf: bool,
                        rng: int | np.random.Generator | None,
                        n_movie_frames: int | None = None) -> tuple[ThresholdEstimate, ThresholdEstimate]:
    """The correlation cut (white-noise null's quantile, k for one false exceedance among the image's
    cell-sized elements) and the PNR cut (the sign-flipped movie's local maxima: their floor + k sd, k for
    one false exceedance among those maxima, carried to the movie's length), on the downsampled images."""
    k = noise_k(images.pnr.size / (math.pi * gsig**2))
    corr = noise_floor_cut(white_noise_correlation(n_frames, gsig, center_psf, rng), name="correlation",
                           null="white-noise null", k=k, tail="quantile")
    maxima = null_maxima(images.flipped_pnr, gsig)
    pnr = noise_floor_cut(maxima, name="PNR", null=f"sign-flipped movie's {len(maxima)} local maxima",
                          k=noise_k(len(maxima)))
    return corr, scale_to_length(pnr, n_frames, n_movie_frames or n_frames)
