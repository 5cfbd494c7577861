"""Two-photon initialization (method_init = "greedy_roi"), written from Pnevmatikakis et al.,
Neuron 2016 (greedy initialization, supplement) and the "2P" section of the shared reference
``cnmf-algorithm.md``.

Works on one patch, ``Y`` (T, h, w), and returns a :class:`LowRankInit`. The patch and the
working copies (residual, filtered residuals) may live in scratch files
(:class:`~cnmflow.engine.patch_frames.PatchFrames`): every step reads chunks of frames, or bands
of rows over all frames, so memory does not follow the recording's length.

Outline
-------
1. ``normalize_init``: each pixel is divided by its temporal median (floored, so dark pixels
   do not blow up); footprints are mapped back to movie units at the end.
2. The background's slow fluctuations are removed first (otherwise they, not the neurons, own
   the highest scores): the top ``nb`` temporal components of a strongly blurred copy of the
   mean-free movie, with spatially smoothed maps (see ``_smooth_background``), are smooth and
   rank ``nb`` like the 2P background; a neuron inside them only loses a blurred shadow. Then
   each pixel's median is subtracted: the residual ``R`` is the neurons plus noise, baseline ~0.
3. ``R`` is filtered frame by frame with a Gaussian of sd ``gsig`` (radius ``gsiz``), or with
   the same Gaussian minus its box mean (zero-sum, "Mexican hat") when ``center_psf``. A pixel's
   score is its summed squared filtered signal, or with ``rolling_sum`` the largest sum over
   ``rolling_length`` consecutive frames (a neuron firing once still scores high).
4. Greedy loop, at most ``K`` times: the best eligible pixel is the centre; in a box of
   half-size ``gsiz`` around it a rank-1 non-negative factorisation ``a·c`` of ``R`` is fitted
   (trace first taken as the Gaussian-weighted box average, footprint then cleaned to its
   blob), ``a·c`` is subtracted from ``R`` and from the filtered copies, and the scores are
   updated locally. A candidate whose trace correlates > ``DUPLICATE_CORR`` with a nearby
   neuron's is the rest of that neuron (outside its first box) and joins its footprint.
   A pixel is eligible only while it stands out of its surround: the energy of the positive
   part of its zero-mean-kernel signal must exceed what noise alone gives by ``NOISE_Z`` sd.
   So leftovers of smooth background, over-subtracted (negative) residues and pure noise are
   never taken, and a patch with fewer than ``K`` neurons returns fewer components.
5. Background: a rank-``nb`` non-negative factorisation of the clipped residual
   ``max(Y − A·C, 0)`` (which still holds the medians), fitted on a block-averaged copy (the
   background is smooth) and extended to full resolution by non-negative least squares.
6. :func:`~cnmflow.engine.init.low_rank.refine_hals` polishes ``A, C, b, f`` on the raw patch;
   neurons whose refined trace peaks below ``MIN_TRACE_PNR`` noise sd are dropped.

Limits: ``nb`` is the background's non-negative rank, a static offset included (a fluctuating
field on top of a constant dark level needs ``nb >= 2``); with fewer, the neurons absorb what the
background cannot follow. When the background does not fluctuate at all, step 2's traces
follow the busiest neurons instead and take up to ~half of their score (they are still found;
only the order of the greedy search changes).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.linalg
import scipy.ndimage as ndi

from cnmflow.engine.chunking import chunk_slices, frame_chunks, row_bands
from cnmflow.engine.hals import clean_footprint, nonzero_box
from cnmflow.engine.init.low_rank import (ClippedResidual, LowRankInit, as_init_result, empty_init, fit_background,
                                         refine_hals, significant_traces, temporal_median)
from cnmflow.engine.init.result import InitResult
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage, as_frames, frame_mean
from cnmflow.engine.resample import spatial_block_means
from cnmflow.engine.sections import InitSection
from cnmflow.engine.summary_images import separable_filter
from cnmflow.errors import ParameterError
from cnmflow.pixel_order import column_to_image, frames_to_pixels, image_to_column

__all__ = ["auto_k", "initialize", "initialize_greedy_roi"]

#: Frames of the rolling sum at the full frame rate (CaImAn's rolling_length).
ROLLING_FRAMES = 100

#: a pixel is eligible when its zero-mean-kernel energy exceeds noise by this many sd
NOISE_Z = 20.0
#: pixel scales under this fraction of the median pixel median are floored (normalize_init)
SCALE_FLOOR = 0.1
#: blur of the copy the smooth background is estimated on, in units of gsig
BACKGROUND_SIGMA = 2.0
#: a candidate whose trace correlates above this with a nearby neuron's is part of that neuron
DUPLICATE_CORR = 0.8
#: alternating rounds of the per-centre rank-1 factorisation
RANK1_ITERATIONS = 5
#: after refinement, a neuron whose trace peaks below this many noise sd is dropped
MIN_TRACE_PNR = 8.0
#: HALS rounds of the final refinement
REFINE_ITERATIONS = 5


def _check_params(K, gsig, gsiz, nb, rolling_length) -> None:
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ParameterError(f"K={K!r} must be an integer >= 1 (the most components to look for)")
    if not (np.isfinite(gsig) and gsig > 0):
        raise ParameterError(f"gSig={gsig!r} must be a positive number of pixels")
    if not (np.isfinite(gsiz) and gsiz >= 1):
        raise ParameterError(f"gSiz={gsiz!r} must be >= 1 pixel (typically 2*gSig+1)")
    if isinstance(nb, bool) or int(nb) != nb or nb < 0:
        raise ParameterError(f"nb={nb!r} must be an integer >= 0 (background components)")
    if isinstance(rolling_length, bool) or int(rolling_length) != rolling_length or rolling_length < 1:
        raise ParameterError(f"rolling_length={rolling_length!r} must be an integer >= 1 frame")


def _check_movie(Y) -> PatchFrames:
    Y = as_frames(Y)
    if Y.ndim != 3:
        raise ParameterError(f"Y must be a (n_frames, rows, cols) movie, got shape {Y.shape}")
    if Y.shape[0] < 4:
        raise ParameterError(f"the patch has {Y.shape[0]} frame(s); greedy_roi needs at least 4")
    for chunk in Y.chunks():
        if not np.all(np.isfinite(Y[chunk])):
            raise ParameterError("Y holds NaN or infinite values; fill or crop them before initialization")
    return Y


def _pixel_scale(Y: PatchFrames, normalize: bool) -> np.ndarray:
    """(h, w) divisor of each pixel: its temporal median (ones without ``normalize``).

    Floored at ``SCALE_FLOOR`` x the typical pixel median and at the typical temporal sd: a
    pixel whose baseline is not clearly above its fluctuations (dark, or a movie whose
    baseline was already subtracted) must not be blown up.
    """
    if not normalize:
        return np.ones(Y.shape[1:], np.float32)
    med, sd = np.empty(Y.shape[1:], np.float32), np.empty(Y.shape[1:], np.float32)
    for band in row_bands(Y.shape):
        frames = Y[:, band]
        med[band], sd[band] = temporal_median(frames), frames.std(axis=0)
    floor = max(SCALE_FLOOR * float(np.median(med)), float(np.median(sd)))
    floor = floor if floor > 0 else 1.0
    return np.maximum(med, floor).astype(np.float32)


def _pad_odd(frames: np.ndarray, r: int) -> np.ndarray:
    """Pad each frame by ``r`` pixels with point reflection (linear extrapolation at the edges)."""
    return np.pad(frames, ((0, 0), (r, r), (r, r)), mode="reflect", reflect_type="odd")


def _blur_odd(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that is exact for planes up to the border (a gradient reaching the edge of
    the patch is not bent, as replicate borders would)."""
    r = int(4.0 * sigma + 0.5)
    out = ndi.gaussian_filter(_pad_odd(frames, r), sigma=(0, sigma, sigma), truncate=4.0, mode="nearest")
    return out[:, r:r + frames.shape[1], r:r + frames.shape[2]]


def _top_temporal(Z: np.ndarray, n: int) -> np.ndarray:
    """(n, T) orthonormal top right-singular vectors of ``Z`` (T, p) with T <= p, from ``Z·Zᵀ``."""
    T = Z.shape[0]
    _, V = scipy.linalg.eigh(Z @ Z.T, subset_by_index=[T - n, T - 1])
    return V.T


def _temporal_from_gram(gram: np.ndarray, n: int, blocks) -> np.ndarray:
    """The top ``n`` temporal vectors of ``Z`` from its (p, p) Gram matrix; ``blocks`` gives the
    rows of ``Z`` once more, in frame order, to project them."""
    p = gram.shape[0]
    _, U = scipy.linalg.eigh(gram, subset_by_index=[p - n, p - 1])
    V = np.concatenate([(Z @ U).T for Z in blocks], axis=1)
    norms = np.sqrt((V ** 2).sum(axis=1, keepdims=True))
    return V / np.where(norms > 0, norms, 1.0)


class _Normalized:
    """The patch divided by each pixel's scale, ``Y / scale``, a chunk of frames at a time."""

    def __init__(self, Y: PatchFrames, scale: np.ndarray):
        self.Y, self.scale, self.shape = Y, scale, Y.shape

    def __getitem__(self, key) -> np.ndarray:
        frames = key if isinstance(key, tuple) else (key,)
        region = frames[1:] + (slice(None),) * (2 - len(frames[1:]))
        return self.Y[key] / self.scale[region]


def _smooth_background(Yn: _Normalized, nb: int, gsig: float,
                       storage: PatchStorage = PatchStorage()) -> tuple[np.ndarray, np.ndarray]:
    """Rank-``nb`` spatially smooth fluctuation of the movie around its mean, as traces ``V``
    (nb, T) and maps (nb, h, w): the fluctuation of frame t is ``Σ_k V[k, t]·maps[k]``.

    Its traces ``V`` are the top temporal components of a blurred copy (sd ``BACKGROUND_SIGMA
    · gsig``), where the wide background outweighs the neurons. Its maps are the movie's
    projections on ``V``, smoothed by twicing (``2·G − G·G`` with the same Gaussian ``G``):
    exact for quadratic surfaces, so the broad background fields keep their peaks, while a
    neuron-sized bump keeps only ~30 % of its height in the map. The blurred copy is block-
    averaged (it is smooth); when it has fewer pixels than frames only its Gram matrix is kept
    in memory, and the copy itself goes where ``storage`` says, for the projection on ``V``.
    """
    T, h, w = Yn.shape
    sigma = BACKGROUND_SIGMA * float(gsig)
    mean = frame_mean(Yn)
    step = max(1, int(round(sigma / 2)))  # the blurred copy is smooth: block means hold its rank

    def blurred(chunk: slice) -> np.ndarray:
        return _blur_odd(spatial_block_means(Yn[chunk] - mean, step, edge="replicate"), sigma / step)

    chunks = list(frame_chunks(T, h * w))
    small_shape = (-(-h // step), -(-w // step))
    p = small_shape[0] * small_shape[1]
    if p < T:
        with storage.allocate((T, *small_shape)) as copy:
            gram = np.zeros((p, p))
            for chunk in chunks:
                copy[chunk] = blurred(chunk)
                part = _as_rows(copy[chunk])
                gram += part.T @ part
            V = _temporal_from_gram(gram, min(nb, p), (_as_rows(copy[chunk]) for chunk in chunks))
    else:
        V = _top_temporal(np.concatenate([_as_rows(blurred(chunk)) for chunk in chunks]), min(nb, T))
    maps = np.zeros((V.shape[0], h, w))
    for chunk in chunks:
        maps += np.tensordot(V[:, chunk], (Yn[chunk] - mean).astype(np.float64), axes=(1, 0))
    once = _blur_odd(maps, sigma)
    return V, 2.0 * once - _blur_odd(once, sigma)


def _as_rows(frames: np.ndarray) -> np.ndarray:
    """(n, h, w) frames → (n, h·w) float64 rows."""
    return frames.reshape(frames.shape[0], -1).astype(np.float64)


def _residual(Yn: _Normalized, background: tuple[np.ndarray, np.ndarray] | None,
              storage: PatchStorage) -> PatchFrames:
    """``R`` = the normalised patch less its smooth background, less each pixel's median (baseline ~0).

    One pass writes the background-free patch into ``R``; each pixel's median is then taken from
    ``R`` (a band of rows at a time) and subtracted in place.
    """
    T, h, w = Yn.shape
    R = storage.allocate((T, h, w))
    for chunk in R.chunks():
        out = Yn[chunk]
        if background is not None:
            V, maps = background
            out -= np.tensordot(V[:, chunk].T, maps, axes=(1, 0)).astype(np.float32)
        R[chunk] = out
    median = np.empty((h, w), np.float32)
    for band in row_bands(Yn.shape):
        median[band] = temporal_median(R[:, band])
    for chunk in R.chunks():
        R[chunk] = R[chunk] - median
    return R


def _energy(F: np.ndarray, window: int | None, *, positive: bool = False) -> np.ndarray:
    """(T, n) traces → (n,) float64: sum of squares, or the largest sum over ``window`` frames;
    ``positive``: of the positive part only (a neuron's transients are positive)."""
    out = np.empty(F.shape[1])
    for columns in chunk_slices(F.shape[1], max(1, (1 << 21) // F.shape[0])):  # a float64 block of ~16 MB
        out[columns] = _column_energy(F[:, columns].astype(np.float64), window, positive)
    return out


def _column_energy(x: np.ndarray, window: int | None, positive: bool) -> np.ndarray:
    """``_energy`` of a float64 (T, n) block, worked on in place (one copy of the block in all)."""
    if positive:
        np.maximum(x, 0.0, out=x)
    np.square(x, out=x)
    if window is None:
        return x.sum(axis=0)
    _cumsum_rows(x)  # x[t] = sum of the first t + 1 squares
    best = x[window - 1].copy()  # the first window: its sum less the empty sum 0
    for rows in chunk_slices(x.shape[0] - window, max(1, (1 << 16) // max(x.shape[1], 1))):
        later = x[rows.start + window:rows.stop + window]
        np.maximum(best, (later - x[rows]).max(axis=0), out=best)
    return best


def _cumsum_rows(x: np.ndarray) -> None:
    """``np.cumsum(x, axis=0)`` in place, the same sums in the same order, one row at a time: a
    row-wide vector add per frame beats numpy's accumulate along the frames several-fold."""
    add = np.add
    for t in range(1, x.shape[0]):
        add(x[t - 1], x[t], out=x[t])


class _Greedy:
    """Residual, its filtered copies and the score maps of the greedy search.

    ``R``, ``Fs`` and ``Fc`` are :class:`PatchFrames` (scratch files for a long recording): every
    update reads and writes a chunk of frames of the box it touches.
    """

    def __init__(self, R: PatchFrames, *, gsig: float, gsiz: int, window: int | None, center_psf: bool,
                 storage: PatchStorage):
        self.R, self.gsig, self.gsiz, self.window, self.center_psf = R, gsig, gsiz, window, center_psf
        self.T, self.h, self.w = R.shape
        self.Fs = self._filtered(storage, center_psf)  # ranks the candidates
        self.Fc = self.Fs if center_psf else self._filtered(storage, True)  # decides eligibility
        n = self.window or self.T
        var = pixel_noise(self.Fc, max_frames_per_block=self.T, n_blocks=1).astype(np.float64) ** 2
        # the zero-sum kernel is blind at the patch's corners (point reflection): never eligible there
        var[var <= 1e-6 * max(float(np.median(var)), np.finfo(float).tiny)] = np.inf
        # positive part of N(0, var): mean var/2, variance 5/4 var² per frame
        self.floor = n * var / 2.0 + NOISE_Z * np.sqrt(1.25 * n) * var
        self.score = self._map(self.Fs)
        self.contrast = self._map(self.Fc, positive=True)
        self.blocked = np.zeros((self.h, self.w), bool)

    def _filtered(self, storage: PatchStorage, centered: bool) -> PatchFrames:
        F = storage.allocate(self.R.shape)
        for chunk in F.chunks():
            F[chunk] = separable_filter(self.R[chunk], self.gsig, self.gsiz, centered)
        return F

    def close(self) -> None:
        self.Fs.close()
        self.Fc.close()

    def _map(self, F: PatchFrames, region=(slice(None), slice(None)), *, positive: bool = False) -> np.ndarray:
        """Score of every pixel of ``region`` over all frames, a band of its rows at a time."""
        rows, cols = (slice(*part.indices(n)[:2]) for part, n in zip(region, (self.h, self.w)))
        out = np.empty((rows.stop - rows.start, cols.stop - cols.start))
        for band in row_bands((self.T, out.shape[0], out.shape[1])):
            sub = F[:, rows.start + band.start:rows.start + band.stop, cols]
            out[band] = _energy(sub.reshape(self.T, -1), self.window, positive=positive).reshape(sub.shape[1:])
        return out

    def best(self) -> tuple[int, int] | None:
        """Highest-scoring eligible pixel not yet tried (first in C order on ties)."""
        ok = (self.contrast > self.floor) & ~self.blocked
        if not ok.any():
            return None
        flat = np.where(ok, self.score, -np.inf)
        r, c = np.unravel_index(int(np.argmax(flat)), flat.shape)
        return int(r), int(c)

    def box(self, r: int, c: int, extra: int = 0) -> tuple[slice, slice]:
        g = self.gsiz + extra
        return slice(max(0, r - g), min(self.h, r + g + 1)), slice(max(0, c - g), min(self.w, c + g + 1))

    def subtract(self, a: np.ndarray, c: np.ndarray, r: int, col: int) -> None:
        """Remove ``a·c`` ((h, w) footprint, (T,) trace) from the residual and refresh the scores
        where the filtered copies changed (the footprint's filtered image is non-zero: its support
        plus the kernel's reach, at most the box plus ``2·gsiz``)."""
        rows, cols = np.nonzero(a)
        support = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
        _subtract_outer(self.R, support, c, a[support])
        reach = self.box(r, col, extra=2 * self.gsiz)
        copies = [(self.Fs, self.center_psf)] + ([] if self.center_psf else [(self.Fc, True)])
        changed = []
        for F, centered in copies:
            image = separable_filter(a[None], self.gsig, self.gsiz, centered)[0]
            region = _nonzero_box(image, reach)
            if region is not None:
                _subtract_outer(F, region, c, image[region])
            changed.append(region)
        score_region, contrast_region = changed[0], changed[-1]
        if score_region is not None:
            self.score[score_region] = self._map(self.Fs, score_region)
        if contrast_region is not None:
            self.contrast[contrast_region] = self._map(self.Fc, contrast_region, positive=True)


def _nonzero_box(image: np.ndarray, within: tuple[slice, slice]) -> tuple[slice, slice] | None:
    """The smallest box inside ``within`` holding every non-zero pixel of ``image[within]``, or
    None: outside it, subtracting ``trace ⊗ image`` changes nothing."""
    box = nonzero_box(image[within], margin=0)
    if box is None:
        return None
    r0, c0 = within[0].start, within[1].start
    return slice(r0 + box[0].start, r0 + box[0].stop), slice(c0 + box[1].start, c0 + box[1].stop)


def _subtract_outer(F: PatchFrames, region: tuple[slice, slice], trace: np.ndarray, image: np.ndarray) -> None:
    """``F[:, region] -= trace ⊗ image``, a chunk of frames at a time."""
    rows, cols = region
    for chunk in F.chunks(image.size):
        frames = F[chunk, rows, cols]
        frames -= trace[chunk, None, None] * image[None]
        F[chunk, rows, cols] = frames


class _Box:
    """The residual on one box as a (T, pixels) matrix (Fortran pixel order), used only through
    products, each a pass over chunks of frames."""

    def __init__(self, R: PatchFrames, rows: slice, cols: slice):
        self.R, self.rows, self.cols = R, rows, cols

    def _chunks(self):
        for chunk in self.R.chunks((self.rows.stop - self.rows.start) * (self.cols.stop - self.cols.start)):
            yield chunk, frames_to_pixels(self.R[chunk, self.rows, self.cols]).astype(np.float64)

    def times(self, a: np.ndarray) -> np.ndarray:
        """``Rb·a`` (T,)."""
        out = np.empty(self.R.shape[0])
        for chunk, Rb in self._chunks():
            out[chunk] = Rb @ a
        return out

    def transposed_times(self, c: np.ndarray) -> np.ndarray:
        """``Rbᵀ·c`` (pixels,)."""
        return sum(Rb.T @ c[chunk] for chunk, Rb in self._chunks())


def _rank1(Rb: _Box, profile: np.ndarray, box: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """Non-negative ``a·c`` ≈ box residual ``Rb`` (T, n) by alternating least squares.

    The footprint is then cleaned (``clean_footprint``: the blob at its peak, no positive noise
    over the rest of the box — subtracting that noise times ``c`` would plant a trace-shaped
    artefact in the whole box) and both factors are fitted once more on that support.
    """
    c = np.maximum(Rb.times(profile), 0.0) / float(profile @ profile)
    a = profile
    for _ in range(RANK1_ITERATIONS):
        if not float(c @ c) > 0:
            return None
        a = np.maximum(Rb.transposed_times(c), 0.0) / float(c @ c)
        if not float(a @ a) > 0:
            return None
        c = np.maximum(Rb.times(a), 0.0) / float(a @ a)
    support = clean_footprint(a, box) > 0
    if not (support.any() and float(c @ c) > 0):
        return None
    a = np.where(support, np.maximum(Rb.transposed_times(c), 0.0) / float(c @ c), 0.0)
    if not float(a @ a) > 0:
        return None
    c = np.maximum(Rb.times(a), 0.0) / float(a @ a)
    return (a, c) if float(c @ c) > 0 else None


def _gaussian_profile(rows: slice, cols: slice, r: int, c: int, gsig: float) -> np.ndarray:
    yy, xx = np.mgrid[rows, cols]
    return image_to_column(np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2.0 * gsig ** 2)))


def _disc(shape: tuple[int, int], r: int, c: int, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - r) ** 2 + (xx - c) ** 2 <= radius ** 2


def _duplicate_of(trace: np.ndarray, centre: tuple[int, int], found_c: list[np.ndarray],
                  centres: list[tuple[int, int]], reach: int) -> int | None:
    """Index of a found neuron within ``reach`` pixels whose trace matches ``trace``, else None."""
    best, best_corr = None, DUPLICATE_CORR
    for k, (ck, (rk, colk)) in enumerate(zip(found_c, centres)):
        if max(abs(rk - centre[0]), abs(colk - centre[1])) > reach:
            continue
        corr = np.corrcoef(trace, ck)[0, 1]
        if corr > best_corr:
            best, best_corr = k, corr
    return best


def _greedy_components(st: _Greedy, K: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up to ``K`` (footprint (h, w), trace (T,)) pairs, removed from ``st.R`` as they are found.

    A candidate whose trace repeats a nearby neuron's (the part of a large neuron outside its
    first box) is added to that neuron's footprint instead of becoming a component.
    """
    found_a, found_c, centres = [], [], []
    while len(found_a) < K:
        centre = st.best()
        if centre is None:
            break
        r, c = centre
        st.blocked |= _disc(st.blocked.shape, r, c, max(1.0, st.gsig / 2.0))  # tried: never again
        rows, cols = st.box(r, c)
        box = (rows.stop - rows.start, cols.stop - cols.start)
        fit = _rank1(_Box(st.R, rows, cols), _gaussian_profile(rows, cols, r, c, st.gsig), box)
        if fit is None:
            continue
        a = np.zeros((st.h, st.w), np.float32)
        a[rows, cols] = column_to_image(fit[0], box)
        trace = fit[1].astype(np.float32)
        k = _duplicate_of(trace, centre, found_c, centres, reach=2 * st.gsiz)
        if k is not None:  # same neuron: a·c ≈ (β a)·c_k
            beta = float(trace.astype(np.float64) @ found_c[k]) / float(found_c[k].astype(np.float64) @ found_c[k])
            a, trace = (beta * a).astype(np.float32), found_c[k]
            found_a[k] = found_a[k] + a
        else:
            found_a.append(a)
            found_c.append(trace)
            centres.append(centre)
        st.subtract(a, trace, r, c)
    return found_a, found_c


def _columns(images: list[np.ndarray], dims: tuple[int, int]) -> np.ndarray:
    """(h, w) images → (h*w, n) float32 matrix, Fortran-ordered pixels."""
    if not images:
        return np.zeros((dims[0] * dims[1], 0), np.float32)
    return np.stack([image_to_column(a) for a in images], axis=1).astype(np.float32)


def initialize_greedy_roi(
    Y,
    *,
    K: int,
    gsig: float,
    gsiz: int,
    nb: int,
    rolling_sum: bool = True,
    rolling_length: int = 100,
    normalize_init: bool = True,
    center_psf: bool = False,
    smooth_rank: int | None = None,
    storage: PatchStorage = PatchStorage(),
) -> LowRankInit:
    """Greedy 2P initialization of one patch (see the module docstring).

    Parameters
    ----------
    Y : (T, h, w) movie of the patch, an array (worked on as float32) or :class:`PatchFrames`.
    K : most neurons to return (CaImAn ``K``); fewer when the patch holds fewer.
    gsig : neuron radius in pixels (``gSig``): sd of the blur.
    gsiz : half-size in pixels of the fitting box and of the blur kernel (``gSiz``).
    nb : background components (``nb``); 0 gives empty ``b`` (h*w, 0) and ``f`` (0, T).
    rolling_sum, rolling_length : score by the largest sum over ``rolling_length`` frames
        (capped to T) instead of the sum over the whole movie.
    normalize_init : work on each pixel divided by its (floored) median.
    center_psf : score with a zero-mean kernel, which ignores structure larger than the box.
    smooth_rank : rank of the smooth background removed before scoring (default ``nb``). A patch
        may model fewer background components (``nb_patch``) than the movie holds (``nb``); its
        candidates must still be scored without the whole background, or the part its own
        model leaves out outscores the neurons.
    storage : where the residual and its filtered copies go (default: memory).

    Returns
    -------
    :class:`LowRankInit` in movie units after :func:`refine_hals`; ``score`` is the initial
    pixel score map (h, w). Deterministic.
    """
    _check_params(K, gsig, gsiz, nb, rolling_length)
    Y = _check_movie(Y)
    T, h, w = Y.shape
    K, nb, gsig = int(K), int(nb), float(gsig)
    gsiz = max(1, int(round(float(gsiz))))
    scale = _pixel_scale(Y, normalize_init)
    Yn = _Normalized(Y, scale)
    smooth_rank = nb if smooth_rank is None else int(smooth_rank)
    if smooth_rank < 0:
        raise ParameterError(f"smooth_rank={smooth_rank} must be >= 0 (the background rank removed before scoring)")
    background = _smooth_background(Yn, smooth_rank, gsig, storage) if smooth_rank else None
    with _residual(Yn, background, storage) as R:
        st = _Greedy(R, gsig=gsig, gsiz=gsiz, window=min(int(rolling_length), T) if rolling_sum else None,
                     center_psf=bool(center_psf), storage=storage)
        try:
            score = st.score.astype(np.float32)
            found_a, found_c = _greedy_components(st, K)
        finally:
            st.close()
    if not found_a and nb == 0:
        return empty_init((h, w), T, score=score)
    A = _columns(found_a, (h, w))  # normalised units
    C = np.stack(found_c) if found_c else np.zeros((0, T), np.float32)
    scale_px = image_to_column(scale)[:, None]
    if nb:
        b, f = fit_background(ClippedResidual(Yn, A, C), nb, block=max(1, int(round(gsig))))
    else:
        b, f = np.zeros((h * w, 0)), np.zeros((0, T))
    A, b = A * scale_px, b * scale_px  # back to movie units
    init = LowRankInit(A=A.astype(np.float32), C=C.astype(np.float32), b=b.astype(np.float32),
                       f=f.astype(np.float32), score=score)
    return _drop_insignificant(refine_hals(Y, init, gsig=gsig, iterations=REFINE_ITERATIONS))


def _drop_insignificant(init: LowRankInit) -> LowRankInit:
    """Without the neurons whose refined trace never rises clearly above its noise.

    Leftovers of imperfect subtractions and patches with fewer neurons than ``K`` give
    components whose trace is noise (peak ~4-6 sd); real ones peak far higher.
    """
    keep = significant_traces(init.C, min_pnr=MIN_TRACE_PNR)
    return replace(init, A=init.A[:, keep], C=init.C[keep])


def auto_k(h: int, w: int, gsig: float) -> int:
    """The most neurons K='auto' looks for in an ``h`` × ``w`` patch: one per (2·gsig)² pixels.

    Somata of radius ≥ gsig packed as tightly as discs can be (hexagonally, π/(2√3) of the area) number at most
    h·w / (2√3·gsig²) ≈ h·w / (3.5·gsig²); a (2·gsig)² tile each is the same bound, rounded for the cells' gaps.
    The greedy search stops before it wherever no pixel stands out of its surround (``NOISE_Z``), so the bound
    only keeps a patch of pure noise-like texture from running on.
    """
    return max(1, int(h * w // max(1.0, (2.0 * float(gsig)) ** 2)))


def initialize(frames, section: InitSection, *, storage: PatchStorage = PatchStorage()) -> InitResult:
    """greedy_roi on a patch ``frames`` (T, h, w) on its ``ssub`` grid, with ``section``'s options.

    The patch fits its own ``patch_nb`` background components, but scores its candidates with
    the movie's whole ``nb``-component smooth background removed (see ``smooth_rank``). ``K`` None
    ('auto'): :func:`auto_k`, the search stopping where nothing stands out any more.
    """
    _, h, w = frames.shape
    K = auto_k(h, w, section.gsig_patch) if section.K is None else section.K
    found = initialize_greedy_roi(frames, K=K, gsig=section.gsig_patch, gsiz=section.gsiz_patch,
                                  nb=section.patch_nb, rolling_sum=section.rolling_sum,
                                  rolling_length=max(1, ROLLING_FRAMES // section.tsub),
                                  normalize_init=section.normalize_init, center_psf=section.center_psf,
                                  smooth_rank=max(section.patch_nb, section.nb), storage=storage)
    return as_init_result(frames, found, section)
