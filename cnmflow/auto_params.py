"""gSig, min_corr and min_pnr read from the movie ("auto"), before any extraction.

Radius. Blobs are the maxima over space *and* scale of the scale-normalised Laplacian of
Gaussian ``−σ²∇²G_σ * M`` (Lindeberg 1998, Int. J. Comput. Vis. 30:79) of ``M = max_t x − mean_t x``,
the max projection of the temporally high-passed movie (one streamed pass) after a 3-frame running mean
(:func:`smoothed_in_time`: a transient spans several frames, the noise does not), ranked by their
response over its noise sd at their scale (1.4826·MAD of that scale's response image). The
radius itself is measured, at the strongest blobs, as the half-maximum radius of the azimuthal
profile of the frame where the blob's centre peaks (minus the mean), above the profile's
minimum out to 3× the population's disk radius √2·σ* (σ* = where the blobs' median response
peaks). Measuring rather than converting σ*: a disk peaks at σ = r/√2, a Gaussian at σ = s, so
σ alone is ±20% off; and the frame rather than ``M``: the per-pixel noise maximum lifts ``M``'s
floor around a cell more than its centre and shrinks the radius. ``gSig`` = k × that radius, k in
the span of :data:`GSIG_FACTORS`, chosen by :func:`choose_gsig`: the factors weighted by how often each one's seed
images (filter and PNR) set the visible blobs furthest above that gSig's own PNR cut over bootstrap resamples of
the blobs and the null — the filter size that best separates this movie's cells from its null, with the
margins' sampling error (no single k held for both cell types on the realistic simulator); gSiz follows it by
the seed's rule ``gSiz = 2·gSig + 1`` (see :func:`gsiz_for`).

Thresholds. The correlation and PNR images are computed as the corr_pnr seeding computes them
(:func:`seed_images`: the seed kernel, the 2σ correlation threshold, on the movie downsampled by
tsub/ssub as a patch is; one filtering pass), and each is compared with a null that has no cells: the
correlation with the same image of Gaussian white noise of the movie's length (the correlation the
filter and threshold give noise alone), the PNR with the sign-flipped movie (its noise and
background fluctuations, not its transients, which are positive: ``max_t(−F)/noise``) read at its local
maxima over the seed search's windows (:func:`null_maxima`: a seed candidate is such a maximum, and the
maxima of a field sit higher than its pixels). Each cut is the level the null exceeds with probability
``1/n`` — for the clean white-noise null its empirical ``Φ(k)`` quantile with n = the number of
independent cell-sized elements ``rows·cols/(π·gSig²)``, for the flipped movie's maxima (whose tail holds
the cells' negative surround) their median + ``k`` × their sd (1.4826·MAD) with n = the number of maxima
— with ``k = Φ⁻¹(1 − 1/n)``: one expected false exceedance per image on a movie without cells, and far
fewer for the seed search, which needs both. The PNR the engine thresholds is a maximum over the whole
movie, which reaches further the longer the movie, while the cut is read on a sample of at most
:data:`MAX_SAMPLE_FRAMES`: it is carried to the movie's length by the extreme-value law of the maximum of
n normals (:func:`scale_to_length`). min_pnr is stated as the engine reads it, a full-rate PNR: the cut
on the downsampled sample divided by √(tsub·ssub²) (:func:`pnr_reduction`).

The cuts adapt to the noise and background of each movie and, through the flipped movie's maxima, a little
to its cells (bright cells deepen the negative surround), but they are no rule on the cells' brightness:
what lies above them at high SNR includes real signal that is not an in-focus cell (out-of-focus cells,
neuropil), which no noise null rejects.

Seed classes. The seeds above both cuts are classed by shape (:meth:`AutoEstimate.seed_classes`): round maxima
of the search image at the cells' scale (:func:`round_seeds`, :func:`seed_radii`), ridges (vessels, dendrites,
touching cells), broader (out-of-focus cells, neuropil) or smaller. The cuts do not use them (correlation and
PNR do not order these sources; benchmarks/README.md): they are reported, so a person sees what lies above the
cuts.

Fallback. When no seed candidate passes both cuts while the max − mean projection shows round blobs
significant at one false blob in the whole scale space (visible cells), the cuts relax to keep that many
strongest candidates (:func:`relaxed_cuts`): a movie with visible cells never gets cuts that leave no seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.fft as sfft
from scipy import ndimage as ndi
from scipy.special import ndtr, ndtri

from cnmflow.engine.chunking import FILTER_CHUNK_BYTES, frames_per_chunk
from cnmflow.engine.init.corr_pnr import SEED_CORR_THRESHOLD, seed_candidates
from cnmflow.engine.noise import noise_psd
from cnmflow.engine.summary_images import CorrelationSums, FrameFilter, filter_kernel
from cnmflow.engine.threads import fft_workers
from cnmflow.errors import ParameterError

if TYPE_CHECKING:
    from cnmflow.params import ResolvedParams

#: The parameters that accept "auto".
AUTO_NAMES: tuple[str, ...] = ("gSig", "min_corr", "min_pnr")

#: Bytes of downsampled frames held for the estimate (the sample is contiguous: correlation needs time order).
SAMPLE_BYTES = 1 << 27
#: Bytes of raw (full-rate) float32 frames read at once into the sample (a reader opens the file per read).
READ_BYTES = 1 << 25
#: Frames (after tsub) used at most: enough transients for the max projection and the PNR.
MAX_SAMPLE_FRAMES = 1500
#: Blobs whose profile is measured (the strongest by LoG response).
N_BLOBS = 40
#: Blobs measured at least (the strongest), when fewer are significant.
MIN_BLOBS = 5
#: Scales σ (px) searched: from sub-pixel cells to a quarter of the frame's short side / 6.
MIN_SCALE, N_SCALES = 0.6, 28
#: Scale-space maxima (the strongest) screened for distinct round blobs: far more than cells in a field of view.
MAX_MAXIMA = 1000
#: Frames (after tsub) of the running mean the radius is read on (see :func:`smoothed_in_time`).
RADIUS_SMOOTH_FRAMES = 3


def _normal_isf(p: float) -> float:
    """The standard normal's upper-tail quantile (``scipy.stats.norm.isf``'s own float64 formula),
    from scipy.special so that every run's parameter check does not import scipy.stats."""
    return float(-ndtri(p))


@dataclass(frozen=True)
class RadiusEstimate:
    """The cell radius from the movie's blob structure, with what it was read from."""

    radius: float  # px, median half-max radius of the strongest blobs
    scales: np.ndarray  # (n_scales,) σ in px
    response: np.ndarray  # (n_scales,) median normalised LoG response at the blobs, per scale
    blob_radii: np.ndarray  # (n_blobs,) half-max radius of each measured blob, px
    blobs: np.ndarray  # (n_blobs, 2) row, col
    image: np.ndarray  # (rows, cols) max − mean projection
    n_significant: int = 0  # round blobs above one false blob per scale image: how many are measured
    n_visible: int = 0  # round blobs above one false blob in the whole scale space: the cells the projection shows

    def evidence(self) -> str:
        q1, q3 = np.percentile(self.blob_radii, [25, 75])
        return (f"median half-max radius (each on its peak frame) of the {len(self.blob_radii)} strongest LoG "
                f"blobs of the max−mean projection (IQR {q1:.1f}–{q3:.1f} px)")


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


@dataclass(frozen=True)
class AutoEstimate:
    """Suggested gSig / gSiz / min_corr / min_pnr of a movie, with the evidence behind each."""

    gSig: float
    gSiz: int
    min_corr: float
    min_pnr: float
    radius: RadiusEstimate
    corr: ThresholdEstimate
    pnr: ThresholdEstimate
    correlation_image: np.ndarray = field(repr=False)
    pnr_image: np.ndarray = field(repr=False)
    seeds: np.ndarray = field(repr=False)  # (n, 2) candidate seeds above both cuts
    n_frames_used: int = 0
    pnr_reduction: float = 1.0  # min_pnr = the PNR cut on the downsampled image / this (see pnr_reduction)
    relaxed: int = 0  # > 0: no candidate passed the null's cuts; the cuts keep this many strongest candidates
    seed_distinct: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)  # (n,) distinct_seeds
    seed_radii: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # (n,) px, NaN: not measured
    seed_round: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)  # (n,) see round_seeds
    gsig_choice: "GsigChoice | None" = field(default=None, repr=False)  # None: gSig was given

    def seed_classes(self) -> dict[str, np.ndarray]:
        """Masks over ``seeds`` of the distinct ones (above both cuts) by shape: "cell" (round, half-max radius
        within :data:`CELL_SCALE_BAND` of the estimate), "ridge" (not round: a vessel, a dendrite or touching
        cells), "broader" and "smaller" (round, off the cells' scale; broader: out-of-focus cells or neuropil),
        "unmeasured" (round, no half-max radius on its peak frame)."""
        ratio = self.seed_radii / self.radius.radius
        low, high = CELL_SCALE_BAND
        round_ = self.seed_distinct & self.seed_round
        with np.errstate(invalid="ignore"):
            return {"cell": round_ & (ratio >= low) & (ratio <= high), "ridge": self.seed_distinct & ~self.seed_round,
                    "broader": round_ & (ratio > high), "smaller": round_ & (ratio < low),
                    "unmeasured": round_ & ~np.isfinite(ratio)}

    def seed_class_counts(self) -> dict[str, int]:
        """How many distinct seeds fall in each of :meth:`seed_classes`."""
        return {name: int(mask.sum()) for name, mask in self.seed_classes().items()}

    def values(self) -> dict[str, float]:
        return {"gSig": self.gSig, "min_corr": self.min_corr, "min_pnr": self.min_pnr}

    def reasons(self) -> dict[str, str]:
        """One line per value: the rule and the numbers it came from."""
        return {
            "gSig": self._gsig_reason(),
            "gSiz": f"{self.gSiz}: 2·gSig+1 (the seed's rule)",
            "min_corr": f"{self.min_corr:g}: {self.corr.evidence()}{self._relaxed()}",
            "min_pnr": (f"{self.min_pnr:g}: {self.pnr.evidence()}, on the downsampled PNR (/ {self.pnr_reduction:.3g}: "
                        f"min_pnr is a full-rate PNR){self._relaxed()}; {len(self.seeds)} candidate seeds above both cuts"
                        f"{self._scales()}"),
        }

    def _gsig_reason(self) -> str:
        if self.gsig_choice is None:
            return f"{self.gSig:g} px: given"
        return (f"{self.gSig:g} px: {self.gsig_choice.evidence()}; the radius {self.gSig / self.gsig_choice.factor:.2f} "
                f"px is the {self.radius.evidence()}")

    def _scales(self) -> str:
        if not self.seed_distinct.any():
            return ""
        n = self.seed_class_counts()
        low, high = CELL_SCALE_BAND
        return (f"; of the {sum(n.values())} distinct places they lie on, {n['cell']} are round with a half-max "
                f"radius of {low:g}–{high:g}× the estimate (cells), {n['ridge']} are ridges (vessels, dendrites or "
                f"touching cells), {n['broader']} broader (out-of-focus cells, neuropil), {n['smaller']} smaller and "
                f"{n['unmeasured']} unmeasured: signal above the noise cuts that no min_corr/min_pnr tells from "
                f"the cells")

    def _relaxed(self) -> str:
        if not self.relaxed:
            return ""
        return (f"; no candidate passed these cuts while the projection shows {self.relaxed} round blobs: "
                f"relaxed to keep the {len(self.seeds)} strongest candidates")


#: Half-max radius of a seed over the estimated radius that counts as the cells' scale (:func:`seed_radii`):
#: among the candidates above both cuts on 10 realistic movies (auto_params_benchmark.py --candidates), in-focus
#: cells lay at 0.9–1.2× (median), out-of-focus cells at 1.0–2.0×.
CELL_SCALE_BAND = (0.75, 1.4)

def gsiz_for(gsig: float) -> int:
    """The seed's bounding-box half-size for a radius (its table: gSig 3 → gSiz 7).

    Measured against 4·gSig + 1 (benchmarks/auto_params_benchmark.py, CA1 128²): F1@IoU0.5 0.83 with
    2·gSig + 1, at most 0.77 over a gSig x threshold grid with 4·gSig + 1.
    """
    return int(round(2 * gsig)) + 1


def noise_k(n_elements: float) -> float:
    """sd above the floor with one expected exceedance among ``n_elements`` independent elements."""
    return float(_normal_isf(1.0 / max(float(n_elements), 2.0)))


# --------------------------------------------------------------------------- sampling
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
        self.spans, start = [], 0  # (global start, info) in concatenation order
        for position in series.order:
            info = series.movies[position]
            self.spans.append((start, info))
            start += info.n_frames

    def __getitem__(self, index: tuple) -> np.ndarray:
        from cnmflow.movies.read import read_frames

        frames, *rest = index
        g0, g1 = frames.start, frames.stop
        parts = [read_frames(info, max(g0 - s, 0), min(g1 - s, info.n_frames))
                 for s, info in self.spans if s < g1 and s + info.n_frames > g0]
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


# --------------------------------------------------------------------------- radius
def activity_images(movie: np.ndarray, *, chunk_frames: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``max_t x − mean_t x`` and the mean of a ``(T, rows, cols)`` movie, streamed."""
    peak = np.full(movie.shape[1:], -np.inf, np.float32)
    total = np.zeros(movie.shape[1:], np.float64)
    for f0 in range(0, movie.shape[0], chunk_frames):
        chunk = np.asarray(movie[f0:f0 + chunk_frames], dtype=np.float32)
        np.maximum(peak, chunk.max(axis=0), out=peak)
        total += chunk.sum(axis=0, dtype=np.float64)
    mean = (total / movie.shape[0]).astype(np.float32)
    return peak - mean, mean


def smoothed_in_time(movie: np.ndarray, frames: int = RADIUS_SMOOTH_FRAMES) -> np.ndarray:
    """The ``frames``-frame running mean of a ``(T, rows, cols)`` movie (float32, replicate ends).

    A calcium transient spans several frames after tsub while the noise is white, so the mean of 3 keeps most
    of a transient's peak and divides the noise by √3: at peak SNR 0.8–3 the max − mean projection of the raw
    frames was the noise's, and the radius read on its blobs −39% to −81% short (auto_params_benchmark.py's
    held-out seed 14; 16 movies, seeds 1–3 and 21–22: mean |error| 21% raw, 11% smoothed, benchmarks/README.md).
    """
    if frames <= 1 or movie.shape[0] < frames:
        return np.asarray(movie, dtype=np.float32)
    if frames % 2 == 0:  # an even window is off-centre (scipy's origin rule); the estimate uses 3
        return ndi.uniform_filter1d(np.asarray(movie, dtype=np.float32), frames, axis=0, mode="nearest")
    return SmoothedMovie(movie, frames)[:]


class SmoothedMovie:
    """:func:`smoothed_in_time`'s running mean (odd ``frames``) of a movie, computed for the frames and pixels asked
    for (``smoothed[t0:t1]``, ``smoothed[:, row, col]``): the radius reads it a chunk at a time and at a few pixels,
    so it is never held whole. The same sums as scipy's filter (float64, replicated ends: a sum of 3 float32 values
    is exact in float64, so equal values), as shifted slices of the movie (copies only at the two ends)."""

    def __init__(self, movie: np.ndarray, frames: int = RADIUS_SMOOTH_FRAMES):
        if frames % 2 == 0:
            raise ValueError(f"a centred running mean needs an odd number of frames, got {frames}")
        self.movie, self.frames, self.shape = movie, frames, movie.shape

    def __getitem__(self, index) -> np.ndarray:
        times, *space = index if isinstance(index, tuple) else (index,)
        start, stop, step = times.indices(self.shape[0])
        if step != 1:
            raise IndexError("the running mean is read in contiguous blocks of frames")
        source, half = self.movie[(slice(None), *space)], self.frames // 2
        out = np.empty((max(stop - start, 0), *source.shape[1:]), np.float32)
        block = max(1, (1 << 19) // max(int(np.prod(source.shape[1:])), 1))  # float64 blocks of ≤ 4 MiB (in cache)
        for f0 in range(start, stop, block):
            f1 = min(f0 + block, stop)
            frames = _frames_at(source, f0 - half, f1 + half).astype(np.float64)  # one cast, then float64 sums
            total = frames[:f1 - f0] + frames[1:f1 - f0 + 1]
            for j in range(2, self.frames):
                total += frames[j:f1 - f0 + j]
            total /= self.frames
            out[f0 - start:f1 - start] = total
        return out


def _frames_at(movie: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Frames ``start..stop-1`` of ``movie``, indices outside it replaced by the nearest end frame (a view inside)."""
    if start >= 0 and stop <= movie.shape[0]:
        return movie[start:stop]
    return movie[np.clip(np.arange(start, stop), 0, movie.shape[0] - 1)]


def estimate_radius(movie: np.ndarray, *, n_blobs: int = N_BLOBS) -> RadiusEstimate:
    """Median half-max radius (px) of the strongest scale-space LoG blobs of a ``(T, rows, cols)`` movie.

    Blobs are found on the max − mean projection; each one's profile is read on the frame where its centre
    peaks (minus the mean), not on the projection, whose per-pixel noise maximum lifts the floor around a
    cell more than its centre and so shrinks the half-max radius.
    """
    image, mean = activity_images(movie)
    image = image.astype(np.float64)
    top = max(MIN_SCALE * 2, min(image.shape) / 24.0)
    scales = np.geomspace(MIN_SCALE, top, N_SCALES)
    stack, second = _scale_space(image, scales)
    peaks = (stack == ndi.maximum_filter(stack, size=3, mode="nearest")) & (stack > 0)
    peaks[[0, -1]] = False  # a maximum at the end of the scale range is no maximum
    k, r, c = np.nonzero(peaks)
    if len(k) == 0:
        raise ParameterError("gSig='auto' found no blob in the movie's max projection; set gSig (the cell radius in px)")
    # rank by significance at the blob's own scale: response / its noise sd over the image (1.4826·MAD),
    # so that the many small-scale maxima of pixel noise do not outrank the cells
    sample = stack[:, ::2, ::2]  # a quarter of the pixels gives the spread to ~1%
    spread = 1.4826 * np.median(np.abs(sample - np.median(sample, axis=(1, 2), keepdims=True)), axis=(1, 2))
    z = stack[k, r, c] / np.maximum(spread[k], np.finfo(float).tiny)
    # ... one blob per cell (the 3x3x3 maximum filter leaves several maxima on one broad blob, at neighbouring
    # scales or pixels, which would count it twice), round (see _round_blobs), strongest first; those
    # significant at one false blob per scale image (Φ⁻¹(1 − 1/pixels) sd), the strongest few when fewer are
    order = _distinct(np.argsort(-z)[:MAX_MAXIMA], k, r, c, scales)
    order = order[_round_blobs(image, scales, k[order], r[order], c[order], second=second)]
    del second
    if len(order) == 0:
        raise ParameterError("gSig='auto' found no round blob in the movie's max projection; set gSig (the cell radius in px)")
    significant = int((z[order] > _normal_isf(1.0 / image.size)).sum())
    # visible cells (the fallback's count): one false blob in the whole scale space, not per scale image — on
    # white noise's running mean the per-scale rule passed up to 4 blobs, which would relax the cuts onto noise
    visible = int((z[order] > _normal_isf(1.0 / (image.size * len(scales)))).sum())
    order = order[:max(min(significant, n_blobs), MIN_BLOBS)]
    k, r, c = k[order], r[order], c[order]
    # the population's scale, the larger of two readings: where the blobs' median normalised response peaks
    # (a bright core or pixel noise can put it at the smallest scales) and the blobs' median own scale; every
    # profile is read out to 3x its disk radius √2·σ. Too short a reach truncates a cell (the failure to
    # avoid); too long one only lowers the floor a little where no neighbour is met first.
    response = np.median(stack[:, r, c], axis=1)
    reach = 3.0 * math.sqrt(2) * max(scales[int(np.argmax(response))], float(np.median(scales[k])))
    radii = np.array([_peak_radius(movie, mean, rr, cc, reach=reach)
                      for rr, cc in zip(r, c)])
    ok = np.isfinite(radii)
    if not ok.any():
        raise ParameterError("gSig='auto' could not measure any blob's radius; set gSig (the cell radius in px)")
    return RadiusEstimate(radius=float(np.median(radii[ok])), scales=scales, response=response,
                          blob_radii=radii[ok], blobs=np.column_stack([r, c])[ok], image=image.astype(np.float32),
                          n_significant=significant, n_visible=visible)


def _distinct(order: np.ndarray, k: np.ndarray, r: np.ndarray, c: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``order`` less every blob whose centre lies within the disk radius √2·σ of a stronger blob kept."""
    kept = np.zeros(len(order), bool)
    rows, cols = r[order].astype(float), c[order].astype(float)
    reach = math.sqrt(2) * scales[k[order]]
    for i in range(len(order)):  # the same test, vectorised over the blobs kept so far
        before = kept[:i]
        kept[i] = not np.any(np.hypot(rows[i] - rows[:i][before], cols[i] - cols[:i][before]) <= reach[:i][before])
    return np.asarray(order)[kept].astype(int)


#: Smallest ratio of a blob's two principal curvatures: a soma is round or oval (aspect ≤ 2, curvature ratio
#: (short/long axis)² ≥ 1/4 before the optics round it further); a vessel or a dendrite is a ridge (ratio ≈ 0).
MIN_CURVATURE_RATIO = 0.25


#: Bytes of second-derivative images kept from the LoG stack for :func:`_round_blobs` (frames up to ~380² px).
SECOND_DERIVATIVE_BYTES = 1 << 26


def _scale_space(image: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The scale-normalised LoG stack ``−σ²(∂²/∂r² + ∂²/∂c²)(G_σ * image)`` and, when they fit in
    :data:`SECOND_DERIVATIVE_BYTES`, its two second derivatives per scale ``(2, n_scales, rows, cols)`` for the
    Hessian test (:func:`_round_blobs`): the Laplacian is summed as scipy's ``gaussian_laplace`` sums them, so the
    values are its own, and the test then only filters for the mixed derivative."""
    stack = np.empty((len(scales), *image.shape))
    keep = 2 * stack.nbytes <= SECOND_DERIVATIVE_BYTES
    second = np.empty((2, *stack.shape)) if keep else None
    for i, s in enumerate(scales):
        rr = ndi.gaussian_filter(image, s, order=(2, 0), mode="nearest")
        cc = ndi.gaussian_filter(image, s, order=(0, 2), mode="nearest")
        if keep:
            second[0, i], second[1, i] = rr, cc
        rr += cc
        stack[i] = -s**2 * rr
    return stack, second


def _round_blobs(image: np.ndarray, scales: np.ndarray, k: np.ndarray, r: np.ndarray, c: np.ndarray, *,
                 second: np.ndarray | None = None) -> np.ndarray:
    """Which blobs are round: both eigenvalues of the Hessian of the image smoothed at the blob's scale are
    negative (a maximum, not a saddle) and the smaller over the larger is ≥ :data:`MIN_CURVATURE_RATIO`.

    A pulsing vessel is bright in the max − mean projection (when it constricts) along its whole length; the
    Laplacian of Gaussian puts maxima along that ridge, whose width is the vessel's, not a cell's — at low
    SNR, where few cells stand out, they outnumbered the cells and set the radius (Frangi et al. 1998 use the
    same eigenvalue ratio to tell tubes from blobs). ``second``: :func:`_scale_space`'s second derivatives at
    ``scales``, when at hand.
    """
    ok = np.zeros(len(k), bool)
    for level in np.unique(k):
        at = np.nonzero(k == level)[0]
        s = float(scales[level])
        orders = ((1, 1),) if second is not None else ((2, 0), (0, 2), (1, 1))
        derivatives = [ndi.gaussian_filter(image, s, order=o, mode="nearest")[r[at], c[at]] for o in orders]
        if second is not None:
            derivatives = [second[0, level][r[at], c[at]], second[1, level][r[at], c[at]], *derivatives]
        hrr, hcc, hrc = derivatives
        mid, gap = (hrr + hcc) / 2, np.sqrt(((hrr - hcc) / 2) ** 2 + hrc**2)
        low, high = mid - gap, mid + gap  # eigenvalues; a round maximum has both < 0
        ok[at] = (high < 0) & (high / np.minimum(low, -np.finfo(float).tiny) >= MIN_CURVATURE_RATIO)
    return np.nonzero(ok)[0]


def distinct_seeds(seeds: np.ndarray, radius: float) -> np.ndarray:
    """Which seeds ``(n, 2)``, strongest first, are the first on their place: a seed within ``radius`` of a
    stronger one kept lies on the same cell (the seed search's windows leave several maxima on one cell)."""
    seeds = np.asarray(seeds, dtype=float).reshape(-1, 2)
    out = np.zeros(len(seeds), bool)
    for b0 in range(0, len(seeds), 128):  # the distances of a block of seeds to every stronger one, at once
        block = seeds[b0:b0 + 128]
        offsets = seeds[None, :b0 + len(block)] - block[:, None]
        near = np.hypot(offsets[..., 0], offsets[..., 1]) <= radius
        for i in range(len(block)):
            out[b0 + i] = not np.any(near[i, :b0 + i] & out[:b0 + i])
    return out


def seed_radii(movie: np.ndarray, seeds: np.ndarray, *, radius: float) -> np.ndarray:
    """Half-max radius (px, NaN where unmeasurable) of each seed ``(n, 2)`` of a ``(T, rows, cols)`` movie whose
    cells have half-max radius ``radius``: read as the radius estimate reads a blob (on the seed's peak frame
    minus the mean, out to 3 × ``radius``).

    Above the noise cuts, the blob scale is what tells an in-focus cell from the other signal sources: on the
    realistic simulator the in-focus seeds' radius matched the estimate while out-of-focus cells were broader,
    and neither correlation nor PNR ordered them (benchmarks/README.md, ``--candidates``).
    """
    if not len(seeds):
        return np.zeros(0)
    mean = np.asarray(movie, dtype=np.float32).mean(axis=0, dtype=np.float64)
    return np.array([_peak_radius(movie, mean, row, col, reach=3.0 * radius)
                     for row, col in np.asarray(seeds, dtype=int)])


def seed_shapes(movie: np.ndarray, images: SeedImages, seeds: np.ndarray, *,
                radius: float) -> dict[str, np.ndarray]:
    """:class:`AutoEstimate`'s ``seed_distinct``, ``seed_radii`` (measured at the distinct seeds, NaN elsewhere)
    and ``seed_round`` for the seeds above the cuts."""
    distinct = distinct_seeds(seeds, radius)
    radii = np.full(len(seeds), np.nan)
    radii[distinct] = seed_radii(movie, seeds[distinct], radius=radius)
    return {"seed_distinct": distinct, "seed_radii": radii,
            "seed_round": round_seeds(images.correlation, images.pnr, seeds, radius=radius)}


def round_seeds(correlation: np.ndarray, pnr: np.ndarray, seeds: np.ndarray, *, radius: float) -> np.ndarray:
    """Which seeds ``(n, 2)`` are round maxima of the seed search image (correlation × PNR) smoothed at the cells'
    LoG scale ``radius / √2`` (:func:`_round_blobs`' Hessian test): a pulsing vessel is a ridge of the search
    image, whose seeds lie along it (on the realistic simulator most seeds above the cuts that were no in-focus
    cell were ridges; benchmarks/README.md, ``--candidates``)."""
    seeds = np.asarray(seeds, dtype=int).reshape(-1, 2)
    out = np.zeros(len(seeds), bool)
    if len(seeds):
        image = np.asarray(correlation, np.float64) * np.asarray(pnr, np.float64)
        scale = np.array([radius / math.sqrt(2)])
        out[_round_blobs(image, scale, np.zeros(len(seeds), int), seeds[:, 0], seeds[:, 1])] = True
    return out


def _peak_radius(movie: np.ndarray, mean: np.ndarray, row: int, col: int, *, reach: float) -> float:
    """:func:`_half_max_radius` of the mean of frames t-1..t+1 (float64) minus ``mean``, t the frame of the pixel's
    maximum — the transient's peak with √3 less noise than one frame — read on the window the profile reaches."""
    t, h = int(np.argmax(movie[:, row, col])), int(math.ceil(reach))
    r0, c0 = max(row - h, 0), max(col - h, 0)
    window = (slice(r0, row + h + 1), slice(c0, col + h + 1))
    peak = np.asarray(movie[(slice(max(t - 1, 0), t + 2), *window)], np.float64).mean(axis=0)
    return _half_max_radius(peak - mean[window], row - r0, col - c0, reach=reach)


def _half_max_radius(image: np.ndarray, row: int, col: int, *, reach: float) -> float:
    """Where the azimuthal mean profile around (row, col) first falls to half its height above its minimum."""
    h = int(math.ceil(reach))
    r0, r1, c0, c1 = max(row - h, 0), min(row + h + 1, image.shape[0]), max(col - h, 0), min(col + h + 1, image.shape[1])
    yy, xx = np.mgrid[r0:r1, c0:c1]
    dist = np.hypot(yy - row, xx - col).ravel()
    ring = np.floor(dist / 0.5).astype(int)  # half-pixel rings
    values = image[r0:r1, c0:c1].ravel()
    counts = np.bincount(ring)
    profile = np.bincount(ring, weights=values) / np.maximum(counts, 1)
    radius = (np.arange(len(profile)) + 0.5) * 0.5
    keep = (counts > 0) & (radius <= reach)
    profile, radius = profile[keep], radius[keep]
    radius[0] = 0.0  # the centre pixel
    base = profile.min()
    # the height from the centre and its 4 neighbours: the centre pixel alone is the brightest of the blob's
    # pixels partly by its noise (it was picked as the maximum), which would lift the half level
    height = values[dist <= 1.0].mean()
    half = base + 0.5 * (height - base)
    below = np.nonzero(profile <= half)[0]
    if height <= base or len(below) == 0:
        return math.nan
    j = below[0]
    p0, p1 = profile[j - 1], profile[j]
    return float(radius[j - 1] + (p0 - half) / (p0 - p1) * (radius[j] - radius[j - 1]))


# --------------------------------------------------------------------------- thresholds
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
    T, rows, cols = filtered.shape
    noise = noise_psd(filtered.reshape(T, -1).T).reshape(rows, cols).astype(np.float32)
    sd = _noise_sd(noise)
    return SeedImages(correlation=correlation_image(filtered, noise) if correlation else None,
                      pnr=np.maximum(filtered.max(axis=0) / sd, 0),
                      flipped_pnr=np.maximum(-filtered.min(axis=0) / sd, 0), noise=noise)


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
    its PNR is ``−min_t F / noise``. ``movie`` is the bounded sample (:func:`sample_movie`), so F is held.
    """
    T, rows, cols = movie.shape
    filt = FrameFilter(filter_kernel(gsig, center_psf=center_psf), (rows, cols))
    mean = temporal_mean(movie, chunk_frames)
    filtered = np.empty((T, rows, cols), np.float32)
    for f0 in range(0, T, chunk_frames):
        filtered[f0:f0 + chunk_frames] = filt(movie[f0:f0 + chunk_frames], minus=mean)
    return images_of_filtered(filtered)


class FrameSpectra:
    """Each frame of a movie minus its mean, padded by ``pad`` replicated border pixels and Fourier transformed
    once: filtering by any seed kernel no wider than ``2·pad + 1`` is then a product and an inverse FFT per frame.
    A narrower kernel sees the same replicated values at every output pixel, so each result is
    :class:`FrameFilter`'s up to rounding. The spectra are kept when they fit in ``keep_bytes`` (a later gSig
    then skips the forward transforms), else recomputed per call."""

    def __init__(self, movie: np.ndarray, pad: int, *, keep_bytes: int = SAMPLE_BYTES):
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

    def filtered(self, gsigs: Sequence[float], *, center_psf: bool) -> list[np.ndarray]:
        """The movie minus its mean filtered by the seed kernel of each gSig (float32, one movie per gSig)."""
        T, rows, cols = self.movie.shape
        kernels = [filter_kernel(g, center_psf=center_psf) for g in gsigs]
        halves = [kernel.shape[0] // 2 for kernel in kernels]
        if max(halves) > self.pad:
            raise ValueError(f"a kernel of half-width {max(halves)} needs more than the {self.pad} padded pixels")
        # the inverse in its two stages, the second (along columns) on the rows kept only: the kernels' spectra carry
        # the first stage's 1/rows, so the second stage's own 1/cols completes the inverse's scale
        spectra = [sfft.rfft2(kernel[::-1, ::-1].astype(np.float32), s=self.shape) / np.float32(self.shape[0])
                   for kernel in kernels]
        out = [np.empty((T, rows, cols), np.float32) for _ in gsigs]
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
    return seed_images(noise, gsig=gsig, center_psf=center_psf).correlation


# --------------------------------------------------------------------------- the estimate
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
    a = float(_normal_isf(1.0 / max(float(n), 2.0)))
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

    def evidence(self) -> str:
        tried = ", ".join(f"{k:g}: {m:.2f} ({100 * w:.0f}%)" for k, m, w in zip(self.factors, self.margins, self.wins))
        return (f"{self.factor:.3g} × the radius: the factors weighted by how often each sets the visible blobs' PNR "
                f"furthest above the PNR cut read at that gSig (median PNR / cut, and the share of "
                f"{N_BOOTSTRAP} bootstrap resamples of blobs and null where it is largest, at {tried})")


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
    if factor in factors:  # one factor won every resample: its PNR images are at hand, its correlation is not
        at = list(factors).index(factor)
        filtered = spectra.filtered([gsigs[at]], center_psf=center_psf)[0]
        images = replace(peaks_each[at], correlation=correlation_image(filtered, peaks_each[at].noise))
    else:  # the seed images at the weighted gSig, from the spectra at hand
        images = images_of_filtered(spectra.filtered([factor * radius.radius], center_psf=center_psf)[0])
    return GsigChoice(factor=factor, factors=tuple(factors), margins=margins, wins=tuple(float(w) for w in wins),
                      images=images)


def _peak_images(spectra: FrameSpectra, gsigs: Sequence[float], *, center_psf: bool) -> list[SeedImages]:
    """The PNR images (no correlation) at each gSig. With the spectra kept, one gSig at a time, so that one filtered
    movie is held at once; else all in one pass over the frames (each forward FFT once)."""
    if spectra.kept:
        return [images_of_filtered(spectra.filtered([g], center_psf=center_psf)[0], correlation=False) for g in gsigs]
    return [images_of_filtered(filtered, correlation=False) for filtered in spectra.filtered(gsigs, center_psf=center_psf)]


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


def estimate_from_movie(movie: np.ndarray, *, gsig: float | None = None, center_psf: bool = True, tsub: int = 1,
                        ssub: int = 1, border_pix: int = 0, rng: int | np.random.Generator | None = 0,
                        n_movie_frames: int | None = None) -> AutoEstimate:
    """gSig (unless given), min_corr and min_pnr of a ``(T, rows, cols)`` movie already downsampled by
    (tsub, ssub, ssub) as the engine downsamples a patch.

    ``gsig`` fixed by the user is used for the images; radii are in the movie's pixels times ``ssub``;
    min_pnr is a full-rate PNR (:func:`pnr_reduction`); ``n_movie_frames`` (after tsub, default T) is the
    length of the whole movie when ``movie`` is a sample of it (the PNR cut is carried to that length).
    """
    if getattr(movie, "ndim", None) != 3 or movie.shape[0] < 2:
        raise ParameterError(f"'auto' needs a (frames, rows, cols) movie of at least 2 frames, got {movie.shape}")
    smoothed = SmoothedMovie(movie) if movie.shape[0] >= RADIUS_SMOOTH_FRAMES else smoothed_in_time(movie)
    radius = estimate_radius(smoothed)
    choice = None
    if gsig is not None:
        g = float(gsig) / ssub
        images = seed_images(movie, gsig=g, center_psf=center_psf)
    else:
        choice = choose_gsig(movie, radius, center_psf=center_psf, rng=rng)
        g, images = choice.factor * radius.radius, choice.images
    corr, pnr = threshold_estimates(images, n_frames=movie.shape[0], gsig=g, center_psf=center_psf, rng=rng,
                                    n_movie_frames=n_movie_frames)
    reduction = pnr_reduction(tsub, ssub)
    min_corr = float(np.clip(round(corr.cut, 3), 0.0, 1.0))
    min_pnr = float(max(round(pnr.cut / reduction, 2), 0.0))
    gsig_out = float(gsig) if gsig is not None else round(g * ssub, 2)
    search = dict(gsiz=gsiz_for(g), border_pix=border_pix // ssub)
    seeds = seed_candidates(images.correlation, images.pnr, min_corr=min_corr, min_pnr=min_pnr * reduction, **search)
    relaxed = 0
    if len(seeds) == 0 and radius.n_visible > 0:
        min_corr, min_pnr, seeds = relaxed_cuts(images, radius.n_visible, reduction=reduction, **search)
        relaxed = radius.n_visible
    return AutoEstimate(gSig=gsig_out, gSiz=gsiz_for(gsig_out), min_corr=min_corr, min_pnr=min_pnr,
                        radius=radius, corr=corr, pnr=pnr, correlation_image=images.correlation,
                        pnr_image=images.pnr, seeds=seeds, n_frames_used=int(movie.shape[0]),
                        pnr_reduction=reduction, relaxed=relaxed, gsig_choice=choice,
                        **seed_shapes(movie, images, seeds, radius=radius.radius))


def relaxed_cuts(images: SeedImages, n: int, *, reduction: float, gsiz: int,
                 border_pix: int) -> tuple[float, float, np.ndarray]:
    """The loosest (min_corr, min_pnr) that keeps the ``n`` strongest seed candidates (by corr × PNR), and
    those seeds: the fallback when no candidate passes the null's cuts but the projection shows ``n``
    significant round blobs — a movie with visible cells must not give a run with none."""
    every = seed_candidates(images.correlation, images.pnr, min_corr=0.0, min_pnr=0.0, gsiz=gsiz,
                            border_pix=border_pix)[:n]
    if len(every) == 0:
        return 0.0, 0.0, every
    rows, cols = every[:, 0], every[:, 1]
    min_corr = math.floor(1000 * float(images.correlation[rows, cols].min())) / 1000
    min_pnr = math.floor(100 * float(images.pnr[rows, cols].min()) / reduction) / 100
    return min_corr, min_pnr, every


def estimate_parameters(movies: Sequence[str | os.PathLike] | object, *, tsub: int = 1, ssub: int = 1,
                        gsig: float | None = None, center_psf: bool = True, border_pix: int = 0) -> AutoEstimate:
    """The estimate for a movie series (paths or a validated :class:`~cnmflow.movies.MovieSeries`)."""
    from cnmflow.movies import MovieSeries, validate_series

    series = movies if isinstance(movies, MovieSeries) else validate_series(list(movies), min_frames=2)
    sample = sample_movie(series, tsub=tsub, ssub=ssub)
    return estimate_from_movie(sample, gsig=gsig, center_psf=center_psf, tsub=tsub, ssub=ssub, border_pix=border_pix,
                               n_movie_frames=series.n_frames // tsub)


def resolve_auto(series, resolved: "ResolvedParams") -> "ResolvedParams":
    """Replace the parameters set to "auto" by the movie's estimate, recorded with source "auto" and a note.

    gSiz follows an estimated gSig unless the user set it (its source is still the default or a preset).
    """
    from cnmflow.params import AUTO_FIELDS

    params = resolved.params
    wanted = [name for name in AUTO_FIELDS if getattr(params, name) == "auto"]
    if not wanted:
        return resolved
    if params.method_init != "corr_pnr" and wanted != ["gSig"]:
        raise ParameterError(f"min_corr/min_pnr='auto' only apply to method_init='corr_pnr' "
                             f"(got {params.method_init!r}); give numbers or switch to corr_pnr")
    fixed = None if params.gSig == "auto" else float(params.gSig)
    est = estimate_parameters(series, tsub=params.tsub, ssub=params.ssub, gsig=fixed,
                              center_psf=params.center_psf, border_pix=params.border_pix)
    values = {name: est.values()[name] for name in wanted}
    reasons = est.reasons()
    notes = [f"{name} = auto: {reasons[name]}" for name in wanted]
    if "gSig" in wanted and (resolved.sources["gSiz"] == "default" or resolved.sources["gSiz"].startswith("preset")):
        values["gSiz"] = est.gSiz
        notes.append(f"gSiz = auto: {reasons['gSiz']}")
    note = f"'auto' estimated from {est.n_frames_used} frames: " + "; ".join(notes)
    return resolved.with_values(values, source="auto", note=note)
