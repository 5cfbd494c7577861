"""CNMF-E initialization (method_init = "corr_pnr"): greedy seeding on corr x PNR, per-seed
rank-1 initialization, written from Zhou et al., eLife 2018 (stages 3 and 4 of
docs/shared reference cnmf-algorithm.md).

Works on one patch, ``movie`` (T, h, w) float32, already downsampled: an array, or a
:class:`~cnmflow.engine.patch_frames.PatchFrames` in a scratch file for a long recording. Every
step reads chunks of frames, so memory does not follow the number of frames.

Outline
-------
1. ``F`` = each frame filtered with the seed-search kernel (Mexican hat on a disc when
   ``center_psf``), temporally mean-subtracted; ``noise`` = PSD noise of ``F`` per pixel;
   ``pnr`` = max_t F / noise; ``correlation`` = 8-neighbour correlation of ``F`` with values under
   3 * noise zeroed (see ``summary_images``).
2. Search image = corr * pnr, 3x3 median filtered over the pixels passing min_pnr with corr at
   least ``SEED_CORE_CORR_FRACTION`` * min_corr (others 0), zero where corr < min_corr or pnr < min_pnr;
   seeds are its local maxima (max filter of size round(gsiz / 4)) in descending order.
3. For each seed (still a positive local maximum of the *current* search image), in a box of
   half-width gsiz: the filtered traces correlating > 0.9 with the seed's filtered trace average
   into the neuron trace ``c_f`` (background-free: the kernel removes smooth background);
   pixels correlating < 0.3 give a local background trace ``b`` from the raw residual; every raw
   pixel trace of the box is regressed on ``[c_f, b, 1]``; the non-negative coefficient on
   ``c_f`` (support: the connected region at the seed where the coefficients, Gaussian-pooled,
   are significantly above zero — ``footprint_shape.supported_pixels`` — so a scattering halo is
   kept as far as the data shows it) is the footprint ``a``. ``A = a / |a|``, ``C = |a| * c_f`` shifted so that
   its median is 0 (raw movie units, baseline ~0).
   A seed whose trace follows a component found within gSiz of it (r >= ``HALO_TRACE_CORR``;
   the residual search is also given the first search's components) sits on that neuron's halo
   and is not initialised.
4. ``a * C`` is removed from the raw residual and ``filter(a) * C`` from ``F``; PNR, correlation
   and the search image are updated around the box; the next seed follows. Rounds repeat on the
   updated search image until no untried seed is left or ``max_components`` is reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from cnmflow.engine.footprint_shape import supported_pixels
from cnmflow.engine.init.result import InitResult
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage, as_frames, frame_mean
from cnmflow.engine.sections import InitSection
from cnmflow.engine.summary_images import CORR_THRESHOLD, CorrelationSums, FrameFilter, filter_kernel
from cnmflow.errors import ParameterError
from cnmflow.pixel_order import image_to_column

__all__ = ["CorrPnrInit", "footprint_peaks", "initialize", "initialize_corr_pnr", "seed_candidates"]

#: filtered-trace correlation with the seed above which a pixel contributes to the neuron trace
CORR_NEURON = 0.9
#: filtered-trace correlation with the seed below which a pixel contributes to the local background
CORR_BACKGROUND = 0.3
#: filtered values below this many noise sds are zeroed before the correlation image the seeds are
#: searched on (CaImAn's ``thresh_init`` = 2 in ``init_neurons_corr_pnr``); the correlation image
#: reported for display and for choosing min_corr keeps ``CORR_THRESHOLD`` (CaImAn's ``correlation_pnr``)
SEED_CORR_THRESHOLD = 2.0
#: a footprint pixel is kept while its regression coefficients on the neuron trace, Gaussian-pooled
#: over FOOTPRINT_POOL_SIGMA·gSig, stand this many standard errors above zero
#: (``footprint_shape.supported_pixels``): the footprint reaches as far as the movie shows the
#: neuron — its scattering halo included — however far that is below its peak
FOOTPRINT_MIN_T = 3.0
FOOTPRINT_POOL_SIGMA = 0.5
#: and where the pooled coefficients are above this fraction of their maximum. The standard errors
#: assume temporally independent residuals; slow background sources (out-of-focus blobs, neuropil)
#: that correlate with a trace by chance over a short recording pass such a test, and a floor of a
#: few % keeps them out (at 0.03 a neuron on the 300-frame Gaussian movies of tests/engine/test_fit.py
#: took in a neighbouring blob; 0.08 of the pooled maximum is ~5-6% of the raw peak)
FOOTPRINT_REL_THRESHOLD = 0.08
#: no later seed inside a found footprint's core: pixels above this fraction of its peak
SEED_EXCLUSION_FRACTION = 0.5
#: a later seed within gSiz of a found component whose trace correlates with that component's at
#: least this much is the found neuron's halo left in the residual (its signal plus neuropil), not a
#: neuron of its own: it is not initialised
HALO_TRACE_CORR = 0.3
#: a seed's 3x3 core (the search image's median) counts the pixels passing min_pnr whose correlation
#: is at least this fraction of min_corr (1: CaImAn's rule, they pass it too). A dim soma's core
#: pixels straddle min_corr, and at 1 the median removed its few passing pixels as it removes a lone
#: noisy one (issue #16: realistic cortex L2/3 at 0.7 / 5 missed 35 of 140 cells, 19 never a seed).
#: min_pnr is not relaxed so: at 0.95 · min_pnr realistic CA1 (0.6 / 7, where PNR binds) took two
#: more out-of-focus cells and lost F1@0.5 (benchmarks/findings/footprint_fidelity.md, h16seed)
SEED_CORE_CORR_FRACTION = 0.9
_MAX_ROUNDS = 50


@dataclass(frozen=True)
class CorrPnrInit:
    """Initial components of one patch, with the seeds and the filtered movie's noise."""

    A: np.ndarray  # (h*w, K) float32, Fortran pixel order, non-negative, unit L2 columns
    C: np.ndarray  # (K, T) float32 raw-scale traces (movie units, median 0)
    center: np.ndarray  # (K, 2) int seed positions (row, col)
    correlation: np.ndarray  # (h, w) float32 correlation image of the first pass
    pnr: np.ndarray  # (h, w) float32 PNR image of the first pass
    noise: np.ndarray | None = None  # (h, w) float32 noise of the filtered movie

    @property
    def n_components(self) -> int:
        return int(self.A.shape[1])


def _search_image(correlation, pnr, min_corr, min_pnr):
    """corr x PNR, 3x3-median filtered, where a pixel passes both thresholds and has a core.

    The median counts the pixels passing ``min_pnr`` whose correlation comes within
    ``SEED_CORE_CORR_FRACTION`` of ``min_corr`` (the rest count 0), so a lone noisy pixel scores 0
    while a dim soma's core, whose pixels straddle ``min_corr``, keeps its passing pixels. The
    pixel itself must pass ``min_corr`` and ``min_pnr`` as given: their meaning is kept.
    """
    ok = (correlation >= min_corr) & (pnr >= min_pnr)
    core = (correlation >= min_corr - (1.0 - SEED_CORE_CORR_FRACTION) * abs(min_corr)) & (pnr >= min_pnr)
    v = np.where(core, correlation * pnr, 0.0).astype(np.float32)
    v = ndi.median_filter(v, size=3, mode="nearest")
    v[~ok] = 0
    return v


def _dilation_size(gsiz) -> int:
    return max(1, int(round(float(gsiz) / 4.0)))


def _border_mask(shape, border_pix: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    b = int(border_pix)
    if b > 0:
        m[:b] = m[-b:] = True
        m[:, :b] = m[:, -b:] = True
    return m


def _ordered_maxima(v: np.ndarray, size: int, blocked: np.ndarray) -> np.ndarray:
    vmax = ndi.maximum_filter(v, size=size, mode="constant", cval=0.0)
    cand = (v > 0) & (v == vmax) & ~blocked
    r, c = np.nonzero(cand)
    vals = v[r, c]
    order = np.lexsort((c, r, -vals))  # descending value, ties by position: deterministic
    return np.stack([r[order], c[order]], axis=1).astype(int)


def _check_params(gsig, gsiz, min_corr, min_pnr, border_pix, max_components):
    if not (np.isfinite(gsig) and gsig > 0):
        raise ParameterError(f"gSig={gsig!r} must be a positive number of pixels")
    if not (np.isfinite(gsiz) and gsiz >= 1):
        raise ParameterError(f"gSiz={gsiz!r} must be >= 1 pixel (typically 4*gSig+1)")
    if not np.isfinite(min_corr) or not np.isfinite(min_pnr):
        raise ParameterError(f"min_corr={min_corr!r}, min_pnr={min_pnr!r} must be finite numbers")
    if border_pix < 0:
        raise ParameterError(f"border_pix={border_pix!r} must be >= 0")
    if max_components is not None and max_components < 0:
        raise ParameterError(f"K (max_components)={max_components!r} must be >= 0 or None")


def seed_candidates(correlation, pnr, *, min_corr, min_pnr, gsiz, border_pix=0) -> np.ndarray:
    """Local maxima of the search image, ``(n, 2)`` (row, col), by descending search value.

    Search image = correlation * pnr, 3x3 median filtered over each pixel's core (``_search_image``),
    zeroed where correlation < min_corr or pnr < min_pnr; maxima over windows of size
    round(gsiz / 4); pixels within ``border_pix`` of the border are excluded.
    """
    correlation = np.asarray(correlation, dtype=np.float32)
    pnr = np.asarray(pnr, dtype=np.float32)
    if correlation.shape != pnr.shape or correlation.ndim != 2:
        raise ParameterError(f"correlation {correlation.shape} and pnr {pnr.shape} must be equal 2-D shapes")
    v = _search_image(correlation, pnr, min_corr, min_pnr)
    return _ordered_maxima(v, _dilation_size(gsiz), _border_mask(v.shape, border_pix))


class _State:
    """Working residuals and images of the greedy initialization.

    The raw movie is only read: found components are subtracted from it box by box when a seed
    needs its raw residual (``raw_residual``). The filtered residual ``F`` is the one
    movie-sized array the state owns (a :class:`PatchFrames`: in a scratch file when long); every
    pass over it reads a chunk of frames of the box it needs, so no (frames × box) temporary exists.
    """

    def __init__(self, movie: PatchFrames, gsig, center_psf, noise, min_corr, min_pnr, storage: PatchStorage):
        T, h, w = movie.shape
        self.T, self.h, self.w = T, h, w
        self.Y = movie  # float32, never written
        self.gsig = float(gsig)
        #: (footprint (h, w), trace (T,), the footprint's bounding box r0, r1, c0, c1) removed so far
        self.found: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]] = []
        self.filt = FrameFilter(filter_kernel(gsig, center_psf=center_psf), (h, w))
        self.kr = self.filt.r
        self.mean = frame_mean(movie)
        # Filtered, mean-subtracted residual, written a chunk of frames at a time.
        self.F = storage.allocate((T, h, w))
        self.peak = np.full((h, w), -np.inf, dtype=np.float32)  # max over frames of F
        for chunk in self.F.chunks():
            filtered = self.filt(movie[chunk], minus=self.mean)
            np.maximum(self.peak, filtered.max(axis=0), out=self.peak)
            self.F[chunk] = filtered
        if noise is None:  # every frame's PSD, a band of rows at a time
            noise = pixel_noise(self.F, max_frames_per_block=T, n_blocks=1)
        noise = np.asarray(noise, dtype=np.float32)
        if noise.shape != (h, w):
            raise ParameterError(f"noise has shape {noise.shape}; expected the patch's frame shape {(h, w)}")
        self.sn = np.where(noise > 0, noise, np.inf).astype(np.float32)
        self.thr = (SEED_CORR_THRESHOLD * self.sn).astype(np.float32)
        self.min_corr, self.min_pnr = min_corr, min_pnr
        self.pnr = np.maximum(self.peak / self.sn, 0).astype(np.float32)
        seeding, shown = CorrelationSums((h, w)), CorrelationSums((h, w))
        shown_thr = (CORR_THRESHOLD * self.sn).astype(np.float32)
        for chunk in self.F.chunks():
            frames = self.F[chunk]
            seeding.add(frames, threshold=self.thr)
            if SEED_CORR_THRESHOLD != CORR_THRESHOLD:
                shown.add(frames, threshold=shown_thr)
        self.cn = seeding.image()
        #: the first pass's correlation image as CaImAn's ``correlation_pnr`` shows it
        self.cn_reported = self.cn if SEED_CORR_THRESHOLD == CORR_THRESHOLD else shown.image()
        self.search = _search_image(self.cn, self.pnr, min_corr, min_pnr)

    def close(self) -> None:
        self.F.close()

    def raw_residual(self, chunk: slice, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """(frames, pixels) float64: frames ``chunk`` of the raw movie on rows r0:r1, cols c0:c1, minus
        the components found so far and minus the movie's mean there (a shift that keeps float64 sums
        of squares accurate; the regression is invariant to it)."""
        box = self.Y[chunk, r0:r1, c0:c1].astype(np.float64)
        box -= self.mean[r0:r1, c0:c1]
        for a, c, (a0, a1, b0, b1) in self.found:
            # only where the footprint is non-zero (its bounding box): elsewhere x − c·0 is x
            q0, q1, p0, p1 = max(r0, a0), min(r1, a1), max(c0, b0), min(c1, b1)
            if q0 < q1 and p0 < p1:
                box[:, q0 - r0:q1 - r0, p0 - c0:p1 - c0] -= c[chunk, None, None] * a[None, q0:q1, p0:p1]
        return box.reshape(box.shape[0], -1)

    def remove(self, a: np.ndarray, c: np.ndarray) -> None:
        """Take a found component out of ``F`` around its footprint (and off the raw residual), and
        update PNR, correlation and the search image there, in one pass over ``F``.

        The filtered footprint reaches the filter's radius beyond the footprint's bounding box, so
        only that region changes (the seed's whole init box is 2·gSiz+1 wide, about twice a cell)."""
        rows, cols = np.nonzero(a)
        self.found.append((a, c, (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)))
        r0, r1, c0, c1 = self.found[-1][2]
        h, w, kr = self.h, self.w, self.kr
        q0, q1, p0, p1 = max(0, r0 - kr), min(h, r1 + kr), max(0, c0 - kr), min(w, c1 + kr)
        fa = self.filt(a[None])[0][q0:q1, p0:p1]
        trace = c - c.mean()
        # correlation needs one neighbour ring around the region
        e0, e1, f0, f1 = max(0, q0 - 1), min(h, q1 + 1), max(0, p0 - 1), min(w, p1 + 1)
        inner = (slice(q0 - e0, q1 - e0), slice(p0 - f0, p1 - f0))
        peak = np.full((q1 - q0, p1 - p0), -np.inf, dtype=np.float32)
        sums = CorrelationSums((e1 - e0, f1 - f0))
        for chunk in self.F.chunks((e1 - e0) * (f1 - f0)):
            frames = self.F[chunk, e0:e1, f0:f1]
            frames[:, inner[0], inner[1]] -= trace[chunk, None, None] * fa[None]
            self.F[chunk, q0:q1, p0:p1] = frames[:, inner[0], inner[1]]
            np.maximum(peak, frames[:, inner[0], inner[1]].max(axis=0), out=peak)
            sums.add(frames, threshold=self.thr[e0:e1, f0:f1])
        self.peak[q0:q1, p0:p1] = peak
        self.pnr[q0:q1, p0:p1] = np.maximum(peak / self.sn[q0:q1, p0:p1], 0)
        self.cn[q0:q1, p0:p1] = sums.image()[inner]
        # search image: median filter needs one more ring; results valid 1 px inside that ring
        g0, g1, k0, k1 = max(0, q0 - 2), min(h, q1 + 2), max(0, p0 - 2), min(w, p1 + 2)
        v = _search_image(self.cn[g0:g1, k0:k1], self.pnr[g0:g1, k0:k1], self.min_corr, self.min_pnr)
        s0, s1, t0, t1 = max(0, q0 - 1), min(h, q1 + 1), max(0, p0 - 1), min(w, p1 + 1)
        self.search[s0:s1, t0:t1] = v[s0 - g0:s1 - g0, t0 - k0:t1 - k0]


def _blob_at(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    k = lab[seed]
    if k == 0:
        # seed pixel dropped by the threshold: take the component nearest the seed
        rr, cc = np.nonzero(lab)
        d = (rr - seed[0]) ** 2 + (cc - seed[1]) ** 2
        k = lab[rr[np.argmin(d)], cc[np.argmin(d)]]
    return lab == k


def _init_one(st: _State, r: int, c: int, gsiz: int):
    """Rank-1 initialization at seed (r, c). Returns (a (h, w) float32, C (T,)) or None.

    Three passes over the box, a chunk of frames at a time: the filtered traces' correlation with
    the seed's, the neuron trace ``c_f`` from the best-correlated pixels, and the regression of the
    raw residual on ``[c_f, b]`` from sums of products.
    """
    T, h, w = st.T, st.h, st.w
    if st.peak[r, c] < st.min_pnr * st.sn[r, c]:
        return None  # no transient left at the seed
    r0, r1, c0, c1 = max(0, r - gsiz), min(h, r + gsiz + 1), max(0, c - gsiz), min(w, c + gsiz + 1)
    bh, bw = r1 - r0, c1 - c0
    seed = (r - r0, c - c0)
    at_seed = seed[0] * bw + seed[1]
    corr, box_mean = _seed_correlation(st, (r0, r1, c0, c1), at_seed)
    hi = _blob_at(corr.reshape(bh, bw) > CORR_NEURON, seed)
    hi[seed] = True
    hi = hi.ravel()
    c_f = np.empty(T)
    for chunk in st.F.chunks(bh * bw):
        c_f[chunk] = st.F[chunk, r0:r1, c0:c1].reshape(-1, bh * bw)[:, hi].mean(axis=1, dtype=np.float64)
    c_f -= box_mean[hi].mean()
    if not np.any(c_f > 0):
        return None
    lo = (corr < CORR_BACKGROUND)
    coef, stderr = _regress_on_trace(st, (r0, r1, c0, c1), c_f, lo / lo.sum() if lo.sum() >= 3 else None)
    a = np.maximum(coef.reshape(bh, bw), 0)
    # the support comes from the 3x3-median-smoothed coefficients (robust to noisy pixels); the
    # values inside it stay unsmoothed (a median filter would shave the peak of a small blob)
    smooth = ndi.median_filter(a, size=3, mode="nearest")
    peak = smooth.max()
    if not peak > 0:
        return None
    significant = supported_pixels(coef.reshape(bh, bw), stderr.reshape(bh, bw),
                                   sigma=FOOTPRINT_POOL_SIGMA * st.gsig, min_t=FOOTPRINT_MIN_T, peak=seed,
                                   min_fraction=FOOTPRINT_REL_THRESHOLD)
    keep = significant & (a > 0)
    a = np.where(keep, a, 0)
    norm = np.sqrt((a ** 2).sum())
    if not norm > 0:
        return None
    ci = c_f * norm
    ci = ci - np.median(ci)
    A = np.zeros((h, w), dtype=np.float32)
    A[r0:r1, c0:c1] = a / norm
    return A, ci.astype(np.float32)


def _seed_correlation(st: _State, box: tuple[int, int, int, int], at_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of each filtered trace of the box with the seed's, and the traces' means."""
    r0, r1, c0, c1 = box
    pixels = (r1 - r0) * (c1 - c0)
    total, squares, with_seed = np.zeros(pixels), np.zeros(pixels), np.zeros(pixels)
    for chunk in st.F.chunks(pixels):
        Fb = st.F[chunk, r0:r1, c0:c1].reshape(-1, pixels).astype(np.float64)
        total += Fb.sum(axis=0)
        squares += np.einsum("tp,tp->p", Fb, Fb)
        with_seed += Fb.T @ Fb[:, at_seed]
    mean = total / st.T
    centred_squares = np.maximum(squares - st.T * mean * mean, 0)
    covariance = with_seed - st.T * mean * mean[at_seed]
    norms = np.sqrt(centred_squares) * np.sqrt(centred_squares[at_seed])
    return np.where(norms > 0, covariance / np.where(norms > 0, norms, 1), 0), mean


def _regress_on_trace(st: _State, box: tuple[int, int, int, int], c_f: np.ndarray,
                      background_weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Coefficient on ``c_f`` of each raw-residual pixel trace of the box regressed on ``[c_f, b]``,
    and its standard error (from the pixel's own residual variance, as ordinary least squares).

    ``b`` = the raw residual averaged with ``background_weights`` (the poorly correlated pixels),
    the local background. Data and regressors are taken mean-free: the constant is implicit. The
    normal equations come from sums over chunks of frames (``c_f`` is already mean-free).
    """
    r0, r1, c0, c1 = box
    pixels = (r1 - r0) * (c1 - c0)
    n = st.T
    s_y, s_yy, s_cy, s_by = np.zeros(pixels), np.zeros(pixels), np.zeros(pixels), np.zeros(pixels)
    s_b = s_bb = s_cb = 0.0
    for chunk in st.F.chunks(pixels):
        Yb = st.raw_residual(chunk, r0, r1, c0, c1)
        s_y += Yb.sum(axis=0)
        s_yy += np.einsum("tp,tp->p", Yb, Yb)
        s_cy += c_f[chunk] @ Yb
        if background_weights is not None:
            b = Yb @ background_weights
            s_b += b.sum()
            s_bb += b @ b
            s_cb += c_f[chunk] @ b
            s_by += b @ Yb
    m_y = s_y / n
    yy = np.maximum(s_yy - n * m_y * m_y, 0)
    cc = c_f @ c_f
    cy = s_cy - c_f.sum() * m_y
    if not cc > 0:
        return np.zeros(pixels), np.full(pixels, np.inf)
    on_trace_alone = cy / cc
    alone = (on_trace_alone, _stderr(yy - on_trace_alone * cy, n - 2, 1.0 / cc))
    if background_weights is None:
        return alone
    m_b = s_b / n
    bb = s_bb - n * m_b * m_b
    if not bb > 1e-12 * max(s_bb / n, 1e-300) * n:   # a constant local background: nothing to regress on
        return alone
    cb = s_cb - c_f.sum() * m_b
    by = s_by - n * m_b * m_y
    inverse = np.linalg.pinv(np.array([[cc, cb], [cb, bb]]))
    beta = inverse @ np.vstack([cy, by])
    return beta[0], _stderr(yy - beta[0] * cy - beta[1] * by, n - 3, inverse[0, 0])


def _stderr(residual_squares: np.ndarray, dof: int, inverse_gram: float) -> np.ndarray:
    """Ordinary least squares standard error of a coefficient: sqrt(σ²·(XᵀX)⁻¹), σ² = RSS / dof."""
    return np.sqrt(np.maximum(residual_squares, 0) / max(dof, 1) * max(inverse_gram, 0.0))


def initialize_corr_pnr(
    movie: np.ndarray,
    *,
    gsig: float,
    gsiz: int,
    min_corr: float,
    min_pnr: float,
    center_psf: bool = True,
    max_components: int | None = None,
    border_pix: int = 0,
    noise: np.ndarray | None = None,
    storage: PatchStorage = PatchStorage(),
    found_before: tuple[np.ndarray, np.ndarray] | None = None,
) -> CorrPnrInit:
    """Greedy CNMF-E initialization of one patch ``movie`` (T, h, w).

    ``noise``: per-pixel noise of the *filtered* movie (``SummaryImages.noise``), computed when
    None. ``max_components``: stop after that many components (None: no limit). Seeds within
    ``border_pix`` of the border are not used. Deterministic; K = 0 is a normal result.
    ``movie`` is only read (a float32 array is not copied). ``storage`` says where the filtered
    copy of the movie goes (default: memory). ``found_before``: (centres (K, 2), traces (K, T)) of
    components an earlier search found in this movie; no seed on their halos (``HALO_TRACE_CORR``).
    """
    movie = as_frames(movie)
    if movie.ndim != 3:
        raise ParameterError(f"movie must be (n_frames, rows, cols), got shape {movie.shape}")
    _check_params(gsig, gsiz, min_corr, min_pnr, border_pix, max_components)
    T, h, w = movie.shape
    if T < 4:
        raise ParameterError(f"patch has {T} frame(s); initialization needs at least 4")
    gsiz_i = max(1, int(round(float(gsiz))))
    st = _State(movie, gsig, center_psf, noise, float(min_corr), float(min_pnr), storage)
    try:
        return _greedy(st, gsig=gsig, gsiz=gsiz_i, border_pix=border_pix, max_components=max_components,
                       found_before=found_before)
    finally:
        st.close()


def _greedy(st: _State, *, gsig: float, gsiz: int, border_pix: int, max_components: int | None,
            found_before: tuple[np.ndarray, np.ndarray] | None = None) -> CorrPnrInit:
    """Seeds in descending search value, each initialised and removed before the next (step 3-4)."""
    T, h, w = st.T, st.h, st.w
    corr0, pnr0 = st.cn_reported.copy(), st.pnr.copy()

    blocked = _border_mask((h, w), border_pix)
    size = _dilation_size(gsiz)
    excl_r = max(1.0, float(gsig) / 2.0)
    er = int(np.ceil(excl_r))
    dy, dx = np.mgrid[-er:er + 1, -er:er + 1]
    disc = (dy ** 2 + dx ** 2) <= excl_r ** 2
    A_list, C_list, centers = [], [], []
    # an earlier search's components, which a new seed's trace is compared with besides this search's
    earlier_traces = [] if found_before is None else list(np.asarray(found_before[1], dtype=np.float32))
    earlier_centers = [] if found_before is None else [tuple(map(int, c)) for c in found_before[0]]
    cap = np.inf if max_components is None else int(max_components)

    for _ in range(_MAX_ROUNDS):
        if len(A_list) >= cap:
            break
        seeds = _ordered_maxima(st.search, size, blocked)
        if len(seeds) == 0:
            break
        for r, c in seeds:
            if len(A_list) >= cap:
                break
            if blocked[r, c] or st.search[r, c] <= 0:
                continue
            # still a local maximum of the current search image?
            w0, w1 = max(0, r - size // 2), min(h, r + size - size // 2)
            v0, v1 = max(0, c - size // 2), min(w, c + size - size // 2)
            if st.search[r, c] < st.search[w0:w1, v0:v1].max():
                continue
            blocked[r, c] = True
            out = _init_one(st, int(r), int(c), gsiz)
            if out is None:
                continue
            a, ci = out
            # no second seed on top of this one (nor on a halo just turned down: its pixels would seed it again)
            _block_core(blocked, a, (int(r), int(c)), disc)
            if _on_found_halo(ci, (int(r), int(c)), earlier_traces + C_list, earlier_centers + centers, gsiz):
                continue
            st.remove(a, ci)
            A_list.append(a)
            C_list.append(ci)
            centers.append((int(r), int(c)))

    K = len(A_list)
    if K:
        A = np.stack([image_to_column(a) for a in A_list], axis=1).astype(np.float32)
        C = np.stack(C_list).astype(np.float32)
        center = np.asarray(centers, dtype=int)
    else:
        A = np.zeros((h * w, 0), dtype=np.float32)
        C = np.zeros((0, T), dtype=np.float32)
        center = np.zeros((0, 2), dtype=int)
    return CorrPnrInit(A=A, C=C, center=center, correlation=corr0, pnr=pnr0,
                      noise=np.where(np.isfinite(st.sn), st.sn, 0).astype(np.float32))


def _block_core(blocked: np.ndarray, a: np.ndarray, seed: tuple[int, int], disc: np.ndarray) -> None:
    """Mark a footprint's core (above SEED_EXCLUSION_FRACTION of its peak) and the ``disc`` around
    its seed as no place for a later seed."""
    h, w = blocked.shape
    r, c = seed
    er = disc.shape[0] // 2
    blocked |= a > SEED_EXCLUSION_FRACTION * a.max()
    y0, y1, x0, x1 = r - er, r + er + 1, c - er, c + er + 1
    sy0, sx0 = max(0, y0), max(0, x0)
    sub = disc[sy0 - y0:disc.shape[0] - (y1 - min(h, y1)), sx0 - x0:disc.shape[1] - (x1 - min(w, x1))]
    blocked[sy0:min(h, y1), sx0:min(w, x1)] |= sub


def _on_found_halo(trace: np.ndarray, seed: tuple[int, int], traces: list[np.ndarray],
                   centers: list[tuple[int, int]], gsiz: int) -> bool:
    """Whether a new component's trace follows a component found within ``gsiz`` of its seed
    (Pearson r >= HALO_TRACE_CORR): the seed sat on that neuron's halo."""
    near = [k for k, (r, c) in enumerate(centers) if np.hypot(r - seed[0], c - seed[1]) <= gsiz]
    if not near:
        return False
    x = trace - trace.mean()
    others = np.stack([traces[k] for k in near]).astype(np.float64)
    others -= others.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(others, axis=1) * np.linalg.norm(x)
    r = np.where(norms > 0, others @ x / np.where(norms > 0, norms, 1.0), 0.0)
    return bool(r.max() >= HALO_TRACE_CORR)


def footprint_peaks(A: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """(K, 2) int (row, col) of each footprint's largest weight (columns of ``A``, Fortran order)."""
    A = np.asarray(A)
    if A.shape[1] == 0:
        return np.zeros((0, 2), dtype=int)
    row, col = np.unravel_index(np.argmax(A, axis=0), dims, order="F")
    return np.stack([row, col], axis=1).astype(int)


def initialize(frames, section: InitSection, *, storage: PatchStorage = PatchStorage(),
               found_before: tuple[np.ndarray, np.ndarray] | None = None) -> InitResult:
    """corr_pnr on a patch ``frames`` (T, h, w) on its ``ssub`` grid, with ``section``'s options.

    The seeds may lie anywhere in the patch: the patch job zeroes ``border_pix`` once the
    footprints are back at full resolution. No low-rank background (``b``, ``f`` empty).
    """
    found = initialize_corr_pnr(frames, max_components=section.K, min_pnr=section.min_pnr, gsig=section.gsig_patch,
                                gsiz=section.gsiz_patch, min_corr=section.min_corr, center_psf=section.center_psf,
                                border_pix=0, storage=storage, found_before=found_before)
    T, h, w = frames.shape
    return InitResult(A=found.A, C=found.C, b=np.zeros((h * w, 0), np.float32), f=np.zeros((0, T), np.float32),
                      correlation=found.correlation, pnr=found.pnr)
