"""The cells' half-max radius read from the movie, before any extraction (gSig = k × this radius:
:mod:`~cnmflow.auto_params.gsig_choice`).

Blobs are the maxima over space *and* scale of the scale-normalised Laplacian of Gaussian ``−σ²∇²G_σ * M``
(Lindeberg 1998, Int. J. Comput. Vis. 30:79) of ``M = max_t x − mean_t x``, the max projection of the temporally
high-passed movie (one streamed pass) after a 3-frame running mean (:func:`smoothed_in_time`: a transient spans
several frames, the noise does not), ranked by their response over its noise sd at their scale (1.4826·MAD of that
scale's response image). The radius itself is measured, at the strongest blobs, as the half-maximum radius of the
azimuthal profile of the frame where the blob's centre peaks (minus the mean), above the profile's minimum out to 3×
the population's disk radius √2·σ* (σ* = where the blobs' median response peaks). Measuring rather than converting
σ*: a disk peaks at σ = r/√2, a Gaussian at σ = s, so σ alone is ±20% off; and the frame rather than ``M``: the
per-pixel noise maximum lifts ``M``'s floor around a cell more than its centre and shrinks the radius.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage as ndi

from cnmflow.auto_params.cuts import normal_isf, robust_floor_and_sd
from cnmflow.engine.trace_shape import skewness
from cnmflow.errors import ParameterError


#: Blobs whose profile is measured (the strongest by LoG response).
N_BLOBS = 40
#: Blobs measured at least (the strongest), when fewer are significant.
MIN_BLOBS = 5
#: Scales σ (px) searched: from sub-pixel cells to a quarter of the frame's short side / 6.
MIN_SCALE, N_SCALES = 0.6, 28
#: Scale-space maxima (the strongest) screened for distinct round blobs: far more than cells in a field of view.
MAX_MAXIMA = 1000
#: Largest half-max radius over the blob's scale σ that is still the blob the LoG found: a disk of radius R peaks at
#: σ = R/√2 (ratio √2), a Gaussian of sd s at σ = s (ratio 1.18); twice the disk's ratio leaves room for the noise in
#: σ. A profile wider than that was not this blob's but a broader structure's on its peak frame (h18radius).
MAX_RADIUS_OVER_SCALE = 2.0 * math.sqrt(2.0)
#: Smallest blob scale σ (px) measured where fewer than :data:`MIN_BLOBS` blobs are visible
#: (:func:`above_faint_scale`): a disk of half-max radius √2·1.6 ≈ 2.3 px. At peak SNR 0.8–3 the strongest maxima
#: past the few cells were σ 0.8–1.3 px blobs 5–31 px from any in-focus cell, and their profiles set the radius
#: (cortex SNR 0.8–3 s256 −50%, s248 +70%). Read on 53 faint training movies (n_visible < 5; the 1.2–1.6 span,
#: benchmarks/findings/auto_params.md, session 28): cortex SNR 0.8–3 mean |error| .245 → .174 (within 20%: 16 → 19
#: of 28), CA1 SNR 1–4 .170 → .107 (17 → 22 of 25, none worse by .05); judged on fresh seeds 261–280 by a rule
#: written first: within 0.02 of the grid 5 → 6 of 20, mean F1@0.5 +.031, 3 movies up and none down by > .02,
#: radius within 20% 18 → 20 of 20. Where cells stand out the blobs measured are unchanged.
FAINT_MIN_SCALE = 1.6
#: Frames (after tsub) of the running mean the radius is read on (see :func:`smoothed_in_time`).
RADIUS_SMOOTH_FRAMES = 3


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
    blob_scales: np.ndarray | None = None  # (n_blobs,) σ (px) of each measured blob's scale-space maximum
    blob_z: np.ndarray | None = None  # (n_blobs,) each measured blob's response over its scale's noise sd
    reach: float = 0.0  # px, how far out each profile's floor was read (:func:`settled_reach`)

    def evidence(self) -> str:
        q1, q3 = np.percentile(self.blob_radii, [25, 75])
        return (f"median half-max radius (each on its peak frame) of the {len(self.blob_radii)} strongest LoG "
                f"blobs of the max−mean projection (IQR {q1:.1f}–{q3:.1f} px){self._faint()}")

    def _faint(self) -> str:
        small = self.blob_scales is not None and bool((self.blob_scales < FAINT_MIN_SCALE).any())
        if self.n_visible >= MIN_BLOBS or small:
            return ""
        return (f"; fewer than {MIN_BLOBS} blobs stand out, so those below σ {FAINT_MIN_SCALE:g} px (pixel-scale "
                f"maxima, not cells) are not measured")


def activity_images(movie: np.ndarray, *, chunk_frames: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``max_t x − mean_t x`` and the mean of a ``(T, rows, cols)`` movie, streamed.

    The mean is a float64 sum per ``chunk_frames`` frames, frame after frame (numpy's own order for a sum over the
    first axis), the chunks' sums added in order. A :class:`SmoothedMovie` is read in its cache-sized blocks and
    never held ``chunk_frames`` at a time: the same values, without a 16 MiB chunk to allocate and re-read."""
    peak = np.full(movie.shape[1:], -np.inf, np.float32)
    total = np.zeros(movie.shape[1:], np.float64)
    for f0 in range(0, movie.shape[0], chunk_frames):
        partial = None
        for frames in _float32_blocks(movie, f0, min(f0 + chunk_frames, movie.shape[0])):
            np.maximum(peak, frames.max(axis=0), out=peak)
            for frame in frames:
                if partial is None:
                    partial = frame.astype(np.float64)
                else:
                    partial += frame
        total += partial
    mean = (total / movie.shape[0]).astype(np.float32)
    return peak - mean, mean


def _float32_blocks(movie: np.ndarray, start: int, stop: int) -> Iterator[np.ndarray]:
    """Frames ``start..stop-1`` of ``movie`` as float32 blocks: a :class:`SmoothedMovie`'s own blocks (each cast into
    one reused buffer), else the whole range."""
    if not isinstance(movie, SmoothedMovie):
        yield np.asarray(movie[start:stop], dtype=np.float32)
        return
    buffer = None
    for _, total in movie.blocks(start, stop):
        if buffer is None or len(buffer) < len(total):
            buffer = np.empty(total.shape, np.float32)
        frames = buffer[:len(total)]
        frames[...] = total
        yield frames


def smoothed_in_time(movie: np.ndarray, frames: int = RADIUS_SMOOTH_FRAMES) -> np.ndarray:
    """The ``frames``-frame running mean of a ``(T, rows, cols)`` movie (float32, replicate ends).

    A calcium transient spans several frames after tsub while the noise is white, so the mean of 3 keeps most
    of a transient's peak and divides the noise by √3: at peak SNR 0.8–3 the max − mean projection of the raw
    frames was the noise's, and the radius read on its blobs −39% to −81% short (auto_params_benchmark.py's
    held-out seed 14; 16 movies, seeds 1–3 and 21–22: mean |error| 21% raw, 11% smoothed,
    benchmarks/findings/auto_params.md).
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
        out = np.empty((max(stop - start, 0), *self.movie[(slice(0, 1), *space)].shape[1:]), np.float32)
        for f0, total in self.blocks(start, stop, tuple(space)):
            out[f0 - start:f0 - start + len(total)] = total
        return out

    def blocks(self, start: int, stop: int, space: tuple = ()) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame, float64 running mean of a block of frames) over ``start..stop-1`` at pixels ``space``, in
        blocks of ≤ 4 MiB (in cache); rounded to float32 these are the running mean's values. The float32 frames are
        cast as they are summed (no float64 copy of them)."""
        source, half = self.movie[(slice(None), *space)], self.frames // 2
        block = max(1, (1 << 19) // max(int(np.prod(source.shape[1:])), 1))
        for f0 in range(start, stop, block):
            n = min(f0 + block, stop) - f0
            frames = _frames_at(source, f0 - half, f0 + n + half)
            total = np.add(frames[:n], frames[1:n + 1], dtype=np.float64)
            for j in range(2, self.frames):
                total += frames[j:n + j]
            total /= self.frames
            yield f0, total


def _frames_at(movie: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Frames ``start..stop-1`` of ``movie``, indices outside it replaced by the nearest end frame (a view inside)."""
    if start >= 0 and stop <= movie.shape[0]:
        return movie[start:stop]
    return movie[np.clip(np.arange(start, stop), 0, movie.shape[0] - 1)]


def estimate_radius(movie: np.ndarray, *, n_blobs: int = N_BLOBS, rings: bool = False) -> RadiusEstimate:
    """Median half-max radius (px) of the strongest scale-space LoG blobs of a ``(T, rows, cols)`` movie.

    Blobs are found on the max − mean projection; each one's profile is read on the frame where its centre
    peaks (minus the mean), not on the projection, whose per-pixel noise maximum lifts the floor around a
    cell more than its centre and so shrinks the half-max radius. ``rings``: the cells are two-photon somata
    (:data:`RING_PEAK_FROM_CENTRE_PX`); the one-photon reading is unchanged without it.
    """
    image, mean = activity_images(movie)
    image = image.astype(np.float64)
    top = max(MIN_SCALE * 2, min(image.shape) / 24.0)
    scales = np.geomspace(MIN_SCALE, top, N_SCALES)
    stack, second = _scale_space(image, scales)
    peaks = (stack == neighbourhood_max(stack)) & (stack > 0)
    peaks[[0, -1]] = False  # a maximum at the end of the scale range is no maximum
    k, r, c = np.nonzero(peaks)
    if len(k) == 0:
        raise ParameterError("gSig='auto' found no blob in the movie's max projection; set gSig (the cell radius in px)")
    # rank by significance at the blob's own scale: response / its noise sd over the image (1.4826·MAD),
    # so that the many small-scale maxima of pixel noise do not outrank the cells
    sample = stack[:, ::2, ::2]  # a quarter of the pixels gives the spread to ~1%
    spread = robust_floor_and_sd(sample, axis=(1, 2))[1]
    z = stack[k, r, c] / np.maximum(spread[k], np.finfo(float).tiny)
    # ... one blob per cell (the 3x3x3 maximum filter leaves several maxima on one broad blob, at neighbouring
    # scales or pixels, which would count it twice), round (see round_blobs), strongest first; those
    # significant at one false blob per scale image (Φ⁻¹(1 − 1/pixels) sd), the strongest few when fewer are
    order = _distinct(np.argsort(-z)[:MAX_MAXIMA], k, r, c, scales)
    order = order[round_blobs(image, scales, k[order], r[order], c[order], second=second)]
    del second
    if len(order) == 0:
        raise ParameterError("gSig='auto' found no round blob in the movie's max projection; set gSig (the cell radius in px)")
    # visible cells (the fallback's count): one false blob in the whole scale space, not per scale image — on
    # white noise's running mean the per-scale rule passed up to 4 blobs, which would relax the cuts onto noise
    visible = int((z[order] > normal_isf(1.0 / (image.size * len(scales)))).sum())
    if visible < MIN_BLOBS or rings:  # pixel-scale maxima (noise; a two-photon neuropil's grain) are left out
        order = order[above_faint_scale(scales[k[order]])]
    significant = int((z[order] > normal_isf(1.0 / image.size)).sum())
    order = order[:max(min(significant, n_blobs), MIN_BLOBS)]
    k, r, c = k[order], r[order], c[order]
    # the population's scale, the larger of two readings: where the blobs' median normalised response peaks
    # (a bright core or pixel noise can put it at the smallest scales) and the blobs' median own scale; every
    # profile is read out to 3x its disk radius √2·σ. Too short a reach truncates a cell (the failure to
    # avoid); too long one only lowers the floor a little where no neighbour is met first.
    response = np.median(stack[:, r, c], axis=1)
    reach = 3.0 * math.sqrt(2) * max(scales[int(np.argmax(response))], population_scale(scales[k], visible))
    top = 3.0 * math.sqrt(2) * scales[-1]  # the longest reach the scale space speaks for
    images = [peak_image(movie, mean, rr, cc, reach=max(reach, top), rings=rings) for rr, cc in zip(r, c)]
    radii, ok, reach = settled_reach(images, scales[k], reach=reach, top=top, rings=rings,
                                     cell_like=lambda: centre_skew(movie, r, c) > CELL_SKEW_MIN)
    return RadiusEstimate(radius=float(np.median(radii[ok])), scales=scales, response=response,
                          blob_radii=radii[ok], blobs=np.column_stack([r, c])[ok], image=image.astype(np.float32),
                          n_significant=significant, n_visible=visible, blob_scales=scales[k][ok], blob_z=z[order][ok],
                          reach=float(reach))


def above_faint_scale(sigmas: np.ndarray) -> np.ndarray:
    """Which blobs (each found at scale ``sigmas``) a faint movie's radius is read on: those at σ ≥
    :data:`FAINT_MIN_SCALE`, or all where none is. A cell this small is not told from a noise maximum where few
    cells stand out; the scale space itself, and every movie whose cells stand out, are unchanged."""
    kept = np.asarray(sigmas, float) >= FAINT_MIN_SCALE
    return kept if kept.any() else np.ones(len(kept), bool)


#: Each step of :func:`settled_reach` lengthens the profile's reach by this factor.
REACH_STEP = 1.5
#: The reach has settled where one step lengthens the median radius by less than ``REACH_STEP ** this`` (a log-slope
#: d ln r / d ln L under 1/3): a profile cut on the cell's own flank reads a radius that grows about as fast as the
#: reach (slope ~1), one read past the cell's edge only drifts with the surround's floor (h18reach).
REACH_SETTLED_SLOPE = 1.0 / 3.0
#: The first step is taken only where the radius grows faster, at a log-slope over 2/3 (between the drift's 1/3 and
#: a cut profile's 1): at peak SNR 0.8–3 the surround's floor alone drifted +19–25% over one step on cortex, and
#: the 1/3 test read those movies +10 … +33% long (h18reach).
REACH_CUT_SLOPE = 2.0 / 3.0


def settled_reach(images: list, sigmas: np.ndarray, *, reach: float, top: float, rings: bool = False,
                  cell_like: Callable[[], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Each blob's half-max radius at the reach it is read to, which of them count (:func:`counted_radii`) and that
    reach. The reach is left as it is — every value main's, bit for bit — unless its first step (×
    :data:`REACH_STEP`) grows the median radius as a cut profile does (:data:`REACH_CUT_SLOPE`); then only the blobs
    ``cell_like()`` passes are read on, lengthened while a step grows their median by more than
    :data:`REACH_SETTLED_SLOPE` allows (from ``reach``, up to ``top``). If fewer than :data:`MIN_CELL_BLOBS` pass, or
    they do not grow, the reading stays main's.

    The reach 3√2 × the population's σ is a floor the blobs' scale sets; at peak SNR 1–4 on CA1 the cells' blobs
    sit at σ 2–3 px (a 6.5 px cell's disk σ is 4.6) and noise maxima pad the set, the reach fell to 6–10 px and
    every profile's floor was read on the cell's own flank: −38 … −68% (h17ca1snr). The profile itself says
    whether it was cut: read further out, a cut one's radius keeps growing (h18reach). A broad structure that is no
    cell grows too when read further, so the lengthened median is taken over cell-like blobs only (h20radius).
    Only ever lengthens the reach. ``images``: :func:`peak_image` of each blob, read out to at least ``top``;
    ``rings``: :func:`_half_max_radius`'s two-photon reading."""
    read_at = functools.partial(radii_at, rings=rings)
    radii = read_at(images, reach)
    ok = counted_radii(radii, sigmas)
    if not ok.any():
        raise ParameterError("gSig='auto' could not measure any blob's radius; set gSig (the cell radius in px)")
    if reach >= top or not grows(read_at(images, min(reach * REACH_STEP, top)), radii, sigmas, ok,
                                 REACH_STEP ** REACH_CUT_SLOPE):
        return radii, ok, reach
    keep = np.ones(len(images), bool) if cell_like is None else np.asarray(cell_like(), bool)
    if keep.sum() < min(MIN_CELL_BLOBS, len(images)):
        return radii, ok, reach
    sub = [image for image, kept in zip(images, keep) if kept]
    sub_radii, sub_ok, longest = radii[keep], counted_radii(radii[keep], sigmas[keep]), reach
    while longest < top and sub_ok.any():
        longer = min(longest * REACH_STEP, top)
        radii_longer = read_at(sub, longer)
        if not grows(radii_longer, sub_radii, sigmas[keep], sub_ok, REACH_STEP ** REACH_SETTLED_SLOPE):
            break
        sub_radii, sub_ok, longest = radii_longer, counted_radii(radii_longer, sigmas[keep]), longer
    if longest == reach:
        return radii, ok, reach
    radii, ok = read_at(images, longest), np.zeros(len(images), bool)
    ok[np.nonzero(keep)[0][sub_ok]] = True
    return radii, ok, longest


def grows(radii_longer: np.ndarray, radii: np.ndarray, sigmas: np.ndarray, ok: np.ndarray, factor: float) -> bool:
    """Whether the median counted radius read one step further is more than ``factor`` × the one read before."""
    ok_longer = counted_radii(radii_longer, sigmas)
    return bool(ok_longer.any() and np.median(radii_longer[ok_longer]) > factor * np.median(radii[ok]))


#: A cell's centre trace is a baseline with sparse upward calcium transients, so its skewness is positive; a
#: background blob's (neuropil, a vessel's dips, pixel noise) is about symmetric or skewed down. Where the reach is
#: lengthened only blobs whose centre trace's skewness exceeds this are read on: on the four training movies where
#: the reach's first step opens it keeps 25 of the 27 measured blobs on a cell and 1 of the 6 off one (h20radius in
#: benchmarks/findings/auto_params.md).
CELL_SKEW_MIN = 0.0
#: Fewest cell-like blobs the lengthened reading is taken over: a median of two is their mean, and one blob whose
#: profile meets a broad neighbour at the longer reach moved it (held-out cortex SNR 0.8–3 s86: the two cell-like
#: blobs of five read +32% → +126%). 1–3 read the training movies alike (h20radius).
MIN_CELL_BLOBS = 3


def centre_skew(movie: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Skewness of each blob's centre trace (the mean of the pixels within 1 px of (row, col)) in ``movie`` (the
    running mean the radius is read on)."""
    traces = []
    for row, col in zip(rows, cols):
        r0, c0 = max(int(row) - 1, 0), max(int(col) - 1, 0)
        window = np.asarray(movie[:, r0:int(row) + 2, c0:int(col) + 2], np.float64)
        yy, xx = np.mgrid[r0:r0 + window.shape[1], c0:c0 + window.shape[2]]
        traces.append(window[:, np.hypot(yy - row, xx - col) <= 1.0].mean(axis=1))
    return skewness(np.array(traces)) if traces else np.empty(0)


def counted_radii(radii: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """The measured radii the median is taken over: those :func:`consistent_with_scale`, or every finite one where
    none is (a few blobs only)."""
    consistent = consistent_with_scale(radii, sigmas)
    return consistent if consistent.any() else np.isfinite(radii)


def radii_at(images: list, reach: float, *, rings: bool = False) -> np.ndarray:
    """:func:`_half_max_radius` of each ``(image, row, col)`` of :func:`peak_image`, read out to ``reach``."""
    return np.array([_half_max_radius(image, row, col, reach=reach, rings=rings) for image, row, col in images])


#: Fewer blobs visible than this (significant in the whole scale space): the measured set is padded with maxima
#: significant per scale image only, at low SNR mostly pixel noise at σ ≈ 1–2 px, and the profile's reach is read at
#: least on the visible blobs' scale (:func:`population_scale`; h17lowsnr in benchmarks/findings/auto_params.md).
VISIBLE_SCALE_BELOW = MIN_BLOBS


def population_scale(sigmas: np.ndarray, visible: int) -> float:
    """The measured blobs' median scale σ (px, strongest first), or, where fewer than :data:`VISIBLE_SCALE_BELOW`
    are visible, the larger of that and the median over the visible ones (the first; at least the strongest).

    Every profile is read out to 3√2 × this σ. At peak SNR ≲ 3 with 0–4 cells visible, the padding's noise maxima
    at σ ≈ 1–1.4 px set the median and the reach fell to 5.7–6.2 px, short of a 4.3 px cortex cell's or a 6.5 px CA1
    cell's profile: its floor is then read on the cell's own flank, every radius, the cells' too, reads ~half, and
    the run found 0–5 cells (held-out cortex SNR 0.8–3 s54 / s62 −48% / −44%, training CA1 SNR 1–4 s23 −79%).
    Only ever lengthens the reach, and only where the visible blobs' scale is the larger (h17lowsnr)."""
    sigmas = np.asarray(sigmas, float)
    scale = float(np.median(sigmas))
    if visible < VISIBLE_SCALE_BELOW:
        scale = max(scale, float(np.median(sigmas[:max(min(visible, len(sigmas)), 1)])))
    return scale


def consistent_with_scale(radii: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Which measured half-max radii belong to the blob found at scale ``sigmas``: finite and at most
    :data:`MAX_RADIUS_OVER_SCALE` × σ. At low SNR the strongest maxima past the few cells are pixel noise at
    σ ≈ 1–2 px on a broad transient (neuropil, an out-of-focus cell): their peak frame's profile is that structure's,
    3–12× their σ, and they read the radius +55–80% long (CA1 SNR 1–4 s22, cortex SNR 1–4 s44)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(radii) & (radii <= MAX_RADIUS_OVER_SCALE * np.asarray(sigmas, float))


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


#: Bytes of second-derivative images kept from the LoG stack for :func:`round_blobs` (frames up to ~380² px).
SECOND_DERIVATIVE_BYTES = 1 << 26


def _scale_space(image: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The scale-normalised LoG stack ``−σ²(∂²/∂r² + ∂²/∂c²)(G_σ * image)`` and, when they fit in
    :data:`SECOND_DERIVATIVE_BYTES`, its two second derivatives per scale ``(2, n_scales, rows, cols)`` for the
    Hessian test (:func:`round_blobs`): the Laplacian is summed as scipy's ``gaussian_laplace`` sums them, so the
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


def neighbourhood_max(stack: np.ndarray) -> np.ndarray:
    """Each value's 3×3×3 neighbourhood maximum, borders replicated: ``ndi.maximum_filter(stack, size=3,
    mode="nearest")`` for a finite stack (a maximum is exact, so the order of the passes does not matter), as two
    shifted ``np.maximum`` per axis — a quarter of the filter's CPU on the LoG stack."""
    out = stack
    for axis in range(stack.ndim):
        source, out = out, out.copy()
        head = (slice(None),) * axis
        later, earlier = head + (slice(1, None),), head + (slice(None, -1),)
        np.maximum(out[later], source[earlier], out=out[later])
        np.maximum(out[earlier], source[later], out=out[earlier])
    return out


def round_blobs(image: np.ndarray, scales: np.ndarray, k: np.ndarray, r: np.ndarray, c: np.ndarray, *,
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


def peak_radius(movie: np.ndarray, mean: np.ndarray, row: int, col: int, *, reach: float) -> float:
    """:func:`_half_max_radius` of the mean of frames t-1..t+1 (float64) minus ``mean``, t the frame of the pixel's
    maximum — the transient's peak with √3 less noise than one frame — read on the window the profile reaches."""
    image, r, c = peak_image(movie, mean, row, col, reach=reach)
    return _half_max_radius(image, r, c, reach=reach)


def peak_image(movie: np.ndarray, mean: np.ndarray, row: int, col: int, *,
               reach: float, rings: bool = False) -> tuple[np.ndarray, int, int]:
    """The mean of frames t-1..t+1 (float64) minus ``mean`` in the window ``reach`` px around (row, col), t the frame
    of the pixel's maximum, and (row, col) in that window. :func:`_half_max_radius` at any shorter reach reads the
    same pixels, so one window serves every reach. ``rings``: t is the frame where the mean over a disc of a third of
    ``reach`` around (row, col) peaks — a two-photon soma's centre is its dark nucleus, whose own maximum is noise's."""
    t = _disc_peak_frame(movie, row, col, int(round(reach / 3.0))) if rings else int(np.argmax(movie[:, row, col]))
    h = int(math.ceil(reach))
    r0, c0 = max(row - h, 0), max(col - h, 0)
    window = (slice(r0, row + h + 1), slice(c0, col + h + 1))
    peak = np.asarray(movie[(slice(max(t - 1, 0), t + 2), *window)], np.float64).mean(axis=0)
    return peak - mean[window], row - r0, col - c0


def _disc_peak_frame(movie: np.ndarray, row: int, col: int, radius: int) -> int:
    """The frame where the mean over the pixels within ``radius`` (at least 1) of (row, col) is largest."""
    d = max(1, radius)
    r0, c0 = max(row - d, 0), max(col - d, 0)
    block = np.asarray(movie[:, r0:row + d + 1, c0:col + d + 1], np.float64)
    yy, xx = np.mgrid[r0:r0 + block.shape[1], c0:c0 + block.shape[2]]
    return int(np.argmax(block[:, np.hypot(yy - row, xx - col) <= d].mean(axis=1)))


#: Two-photon somata (``rings``): a profile whose maximum lies at least this far out (px) ...
RING_PEAK_FROM_CENTRE_PX = 2.0
#: ... and stands this many times higher above the floor than the centre does is a ring round a dark nucleus; its
#: half level is read from that maximum and the fall after it. On six realistic two-photon movies (with the disc's
#: peak frame and no pixel-scale blobs) the reading went from −58 … +12% to +8 … +18% of the cells' half-max radius,
#: and on six unseen ones from −49 … +14% (four within 20%) to −2 … +21% (five);
#: benchmarks/findings/two_photon_realistic.md.
RING_PEAK_RATIO = 1.25


def _ring_peak(profile: np.ndarray, radius: np.ndarray, base: float, height: float, reach: float) -> int:
    """The index of a ring's maximum in ``profile`` (within a third of ``reach``), or 0 where it is no ring."""
    inner = np.nonzero(radius <= reach / 3.0)[0]
    j = int(inner[np.argmax(profile[inner])]) if inner.size else 0
    ring = radius[j] >= RING_PEAK_FROM_CENTRE_PX and profile[j] - base >= RING_PEAK_RATIO * (height - base)
    return j if ring else 0


def _half_max_radius(image: np.ndarray, row: int, col: int, *, reach: float, rings: bool = False) -> float:
    """Where the azimuthal mean profile around (row, col) first falls to half its height above its minimum; with
    ``rings``, a ring's profile (:data:`RING_PEAK_FROM_CENTRE_PX`) from its maximum out."""
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
    start = _ring_peak(profile, radius, base, height, reach) if rings else 0
    if start:
        height = profile[start]
    half = base + 0.5 * (height - base)
    below = np.nonzero(profile[start:] <= half)[0] + start
    if height <= base or len(below) == 0 or (rings and below[0] == 0):
        return math.nan
    j = below[0]
    p0, p1 = profile[j - 1], profile[j]
    return float(radius[j - 1] + (p0 - half) / (p0 - p1) * (radius[j] - radius[j - 1]))
