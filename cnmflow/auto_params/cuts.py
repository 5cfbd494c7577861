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
    level: float = 0.0  # tail "blobs": the visible blobs' median PNR the cut is a fraction of
    noise_cut: float = 0.0  # tail "blobs": the noise null's cut (floor + k·sd) it lies above

    def evidence(self) -> str:
        if self.tail == "blobs":
            return (f"{self.cut / self.level:.2f} × {self.level:.3g}, the median PNR of the blobs the projection "
                    f"shows (above the {self.null}'s cut {self.noise_cut:.3g} = median {self.floor:.3g} + "
                    f"{self.k:.2f} sd × {self.sd:.3g})")
        if self.tail == "quantile":
            return (f"the {self.null}'s {100 * ndtr(self.k):.2f}th percentile (exceeded as often as {self.k:.2f} sd; "
                    f"its median {self.floor:.3g}, sd {self.sd:.3g})")
        return (f"{self.name} noise floor {self.floor:.3g} (median of the {self.null}) + {self.k:.2f} sd "
                f"× {self.sd:.3g} (1.4826·MAD)")

    def rule(self) -> str:
        """The cut in a few words (the figure's legend)."""
        if self.tail == "blobs":
            return f"cut {self.cut:.3g} = {self.cut / self.level:.2f} × blobs' PNR {self.level:.3g}"
        if self.tail == "gaussian":
            return f"cut {self.cut:.3g} = median + {self.k:.2f}·{self.sd:.3g}"
        return f"cut {self.cut:.3g}: the null's {100 * ndtr(self.k):.2f}th percentile"


def noise_k(n_elements: float) -> float:
    """sd above the floor with one expected exceedance among ``n_elements`` independent elements."""
    return float(normal_isf(1.0 / max(float(n_elements), 2.0)))


def noise_floor_cut(values: np.ndarray, *, name: str, null: str, k: float, tail: str = "gaussian") -> ThresholdEstimate:
    """The level a null image's values exceed with probability ``1 − Φ(k)``, read by ``tail``:

    "quantile": the empirical quantile — no shape assumed, for a clean null (white noise: zero-inflated by
    the 2σ threshold and skewed on short movies, where median + k·MAD can land above 1); "gaussian":
    ``median + k·1.4826·MAD``, for a null whose upper tail holds some signal (the sign-flipped movie: the
    cells' negative surround). A PNR is a maximum over frames, whose tail is Gumbel rather than Gaussian,
    but a Gumbel fitted to the same median and MAD cut too strictly at low SNR (benchmarks/README.md).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    floor = float(np.median(v))
    sd = float(1.4826 * np.median(np.abs(v - floor)))
    cut = float(np.quantile(v, ndtr(k))) if tail == "quantile" else floor + k * sd
    return ThresholdEstimate(name=name, null=null, cut=cut, floor=floor, sd=sd, k=k, tail=tail)


#: min_pnr as a fraction of the median PNR of the blobs the max − mean projection shows (at the chosen gSig), where
#: that lies above the noise null's cut: the cut the engine does best at lies above the noise null (out-of-focus cells
#: and neuropil sit between the two) and scales with the movie's cells (benchmarks/README.md, h18null, h18frac).
PNR_FRACTION = 0.6


def blob_pnr_cut(quiet: ThresholdEstimate, flipped: ThresholdEstimate, blob_pnrs: np.ndarray, *,
                 fraction: float = PNR_FRACTION) -> ThresholdEstimate:
    """The PNR cut: :data:`PNR_FRACTION` × the visible blobs' median PNR, no lower than the quiet null's cut (the
    noise and background alone: a movie whose blobs barely clear the noise keeps it) and no higher than the whole
    flipped movie's (main's cut, whose surround term grows with the kernel but never cut too loosely)."""
    pnrs = np.asarray(blob_pnrs, dtype=np.float64)
    if pnrs.size == 0:
        return flipped
    level = float(np.median(pnrs))
    if fraction * level >= flipped.cut:
        return flipped
    if fraction * level <= quiet.cut:
        return quiet
    return replace(quiet, cut=fraction * level, tail="blobs", level=level, noise_cut=quiet.cut)


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


def flipped_null_cut(flipped: np.ndarray, *, gsig: float, null: str, n_frames: int,
                     n_movie_frames: int | None) -> ThresholdEstimate:
    """A flipped-movie PNR image's cut: its local maxima's floor + k sd (k for one false exceedance among them),
    carried to the movie's length."""
    maxima = null_maxima(flipped, gsig)
    cut = noise_floor_cut(maxima, name="PNR", null=f"{null} {len(maxima)} local maxima", k=noise_k(len(maxima)))
    return scale_to_length(cut, n_frames, n_movie_frames or n_frames)


def threshold_estimates(images: SeedImages, *, n_frames: int, gsig: float, center_psf: bool,
                        rng: int | np.random.Generator | None, n_movie_frames: int | None = None,
                        blob_pnrs: np.ndarray | None = None) -> tuple[ThresholdEstimate, ThresholdEstimate]:
    """The correlation cut (white-noise null's quantile, k for one false exceedance among the image's
    cell-sized elements) and the PNR cut: the sign-flipped movie's local maxima (floor + k sd, carried to the
    movie's length) or, with ``blob_pnrs`` (the visible blobs' PNR) and the quiet null, :func:`blob_pnr_cut`."""
    k = noise_k(images.pnr.size / (math.pi * gsig**2))
    corr = noise_floor_cut(white_noise_correlation(n_frames, gsig, center_psf, rng), name="correlation",
                           null="white-noise null", k=k, tail="quantile")
    flipped = flipped_null_cut(images.flipped_pnr, gsig=gsig, null="sign-flipped movie's", n_frames=n_frames,
                               n_movie_frames=n_movie_frames)
    if blob_pnrs is None or images.quiet_flipped_pnr is None:
        return corr, flipped
    quiet = flipped_null_cut(images.quiet_flipped_pnr, gsig=gsig, null="sign-flipped movie's (where no cell fires)",
                             n_frames=n_frames, n_movie_frames=n_movie_frames)
    return corr, blob_pnr_cut(quiet, flipped, blob_pnrs)
