"""Initialization for dendritic data (method_init = "sparse_nmf"): a sparse non-negative
factorisation of the movie (shared reference ``cnmf-algorithm.md``, section "2P ... sparse_NMF").

Dendrites and axons are long, thin and overlapping, so neither a Gaussian blob model nor a box
around a centre fits them. Instead the whole patch is factorised at once:

1. ``X`` = the movie minus each pixel's temporal median (the activity, baseline ~0).
2. Start: ``max(X, 0) ≈ A·C`` with ``K`` non-negative components (scikit-learn ``NMF``,
   coordinate descent, NNDSVD start: deterministic).
3. Sparsity: hierarchical ALS (HALS) on ``X`` for ``min ½‖X − A·C‖² + Σ_p λ_p Σ_k A_pk`` with unit-norm
   traces, ``λ_p = alpha · σ_p`` and ``σ_p`` the pixel's noise sd. With unit traces the
   projection of pure noise on a trace has sd ``σ_p``, so ``alpha`` reads "a pixel joins a
   footprint only where the trace explains it by more than ``alpha`` noise sd", whatever the
   movie's units and SNR (an L1 weight on the raw data would not: its effect scales with the
   signal). The clipped data only seed step 2: clipping biases every projection upwards.
   Once the supports are chosen, the values on them are fitted once more without the penalty
   (which would otherwise shrink every footprint by ``λ``).
4. Components are ordered by energy ``‖a‖·‖c‖`` (descending) with unit-norm footprints;
   all-zero ones are dropped.
5. Background: a rank-``nb`` non-negative factorisation of ``max(Y − A·C, 0)`` (it holds the
   medians), as in greedy_roi.
"""

from __future__ import annotations

import warnings

import numpy as np

from cnmflow.engine.chunking import frame_chunks, row_bands
from cnmflow.engine.hals import update_footprints, update_traces
from cnmflow.engine.init.low_rank import (ClippedResidual, LowRankInit, as_init_result, fit_background,
                                         footprints_dot_frames, frames_dot_traces, temporal_median)
from cnmflow.engine.init.result import InitResult
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage, as_frames
from cnmflow.engine.resample import block_means_along
from cnmflow.engine.sections import InitSection
from cnmflow.errors import ParameterError
from cnmflow.pixel_order import frames_to_pixels, image_to_column

__all__ = ["initialize", "initialize_sparse_nmf"]


#: the background's traces are fitted on block means of this size (it is smooth)
BACKGROUND_BLOCK = 2
#: unpenalised NMF iterations for the start, and tolerance
START_ITERATIONS = 200
START_TOL = 1e-4
#: frames the start's NMF sees at most (longer patches: block means over time)
START_MAX_FRAMES = 1000


def _check_params(K, nb, alpha, iterations) -> None:
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ParameterError(f"K={K!r} must be an integer >= 1 (the number of components)")
    if isinstance(nb, bool) or int(nb) != nb or nb < 0:
        raise ParameterError(f"nb={nb!r} must be an integer >= 0 (background components)")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ParameterError(f"alpha={alpha!r} must be a number >= 0 (noise sd a footprint pixel must exceed)")
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 1:
        raise ParameterError(f"iterations={iterations!r} must be an integer >= 1")


def _start(X, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Unpenalised NMF of ``max(X, 0)``: footprints (pixels, K), traces (K, T).

    ``X`` is the activity as (T, h, w) frames. Up to ``START_MAX_FRAMES`` frames the NMF sees them
    all; a longer patch is factorised on block means over time (the footprints are what the start
    is for) and its full-rate traces come from one exact trace update.
    """
    T, h, w = X.shape
    step = -(-T // START_MAX_FRAMES)
    columns = []
    for chunk in frame_chunks(T, h * w, multiple_of=step):  # whole blocks of step frames
        frames = frames_to_pixels(np.maximum(np.asarray(X[chunk], dtype=np.float64), 0.0))
        columns.append(block_means_along(frames, step, axis=0))
    from sklearn.decomposition import NMF  # here, not at the top: 1P runs and their workers never pay for it
    from sklearn.exceptions import ConvergenceWarning

    model = NMF(n_components=K, init="nndsvd", solver="cd", max_iter=START_ITERATIONS, tol=START_TOL,
                random_state=0)
    with warnings.catch_warnings():  # an unfinished descent is still a usable start
        warnings.simplefilter("ignore", ConvergenceWarning)
        footprints = model.fit_transform(np.concatenate(columns).T)
    traces = model.components_.astype(np.float64)
    if step == 1:
        return footprints, traces
    start_traces = np.repeat(traces, step, axis=1)[:, :T]
    chunks = list(frame_chunks(T, h * w))
    return footprints, update_traces(start_traces, footprints_dot_frames(X, footprints, chunks),
                                     footprints.T @ footprints)


def _unit_traces(A: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescale so every non-zero trace has unit L2 norm (the product ``A·C`` is unchanged)."""
    norms = np.sqrt((C ** 2).sum(axis=1))
    safe = np.where(norms > 0, norms, 1.0)
    return A * np.where(norms > 0, safe, 0.0), C / safe[:, None]


def _sparse_hals(X, A: np.ndarray, C: np.ndarray, lam: np.ndarray, iterations: int):
    """HALS for ``½‖X − A·C‖² + Σ_p lam_p Σ_k A_pk``, A, C >= 0, unit-norm traces; ``X`` as
    (T, h, w) frames, read a chunk of frames per product."""
    chunks = list(frame_chunks(X.shape[0], X.shape[1] * X.shape[2]))
    for _ in range(iterations):
        C = update_traces(C, footprints_dot_frames(X, A, chunks), A.T @ A)
        A, C = _unit_traces(A, C)
        P, Q = frames_dot_traces(X, C, chunks), C @ C.T
        for k in range(A.shape[1]):
            if Q[k, k] > 0:  # column k minimises its share exactly (soft threshold at lam)
                A[:, k] = np.maximum(A[:, k] + (P[:, k] - A @ Q[:, k] - lam) / Q[k, k], 0.0)
    # the penalty chose the supports; fit the values there without its shrinkage, then the traces
    C = update_traces(C, footprints_dot_frames(X, A, chunks), A.T @ A)
    A = update_footprints(A, frames_dot_traces(X, C, chunks), C @ C.T, A > 0)
    C = update_traces(C, footprints_dot_frames(X, A, chunks), A.T @ A)
    return A, C


class _Activity:
    """The patch less each pixel's temporal median, ``Y − median`` (float64), a chunk of frames at a time."""

    def __init__(self, Y: PatchFrames, median: np.ndarray):
        self.Y, self.median, self.shape = Y, median, Y.shape

    def __getitem__(self, chunk: slice) -> np.ndarray:
        return self.Y[chunk].astype(np.float64) - self.median


def initialize_sparse_nmf(
    Y: np.ndarray,
    *,
    K: int,
    nb: int,
    alpha: float = 2.0,
    iterations: int = 30,
) -> LowRankInit:
    """Sparse NMF initialization of one patch for dendritic data (see the module docstring).

    Parameters
    ----------
    Y : (T, h, w) movie of the patch: an array (worked on as float32) or
        :class:`~cnmflow.engine.patch_frames.PatchFrames`, read a chunk of frames at a time.
    K : number of components to fit (CaImAn ``K``); all-zero ones are dropped.
    nb : background components; 0 gives empty ``b`` (h*w, 0) and ``f`` (0, T).
    alpha : sparsity, in pixel noise sd: the L1 weight on footprint pixel p is ``alpha·σ_p``
        (the role of CaImAn's ``alpha_snmf``); 0 gives plain NMF.
    iterations : sparse HALS rounds after the NMF start.

    Returns
    -------
    :class:`LowRankInit` in movie units, components by decreasing energy; ``score`` is the
    image of the activity's temporal maximum (h, w). Deterministic.
    """
    _check_params(K, nb, alpha, iterations)
    if getattr(Y, "ndim", None) != 3 or Y.shape[0] < 4:
        raise ParameterError(f"Y must be a (n_frames >= 4, rows, cols) movie, got shape {getattr(Y, 'shape', None)}")
    Y = as_frames(Y)
    T, h, w = Y.shape
    if K > min(T, h * w):
        raise ParameterError(f"K={K} components do not fit a patch of {h}x{w} pixels and {T} frames")
    median = np.empty((h, w), np.float32)
    for band in row_bands(Y.shape):
        median[band] = temporal_median(Y[:, band])
    X = _Activity(Y, median)
    peak = np.full((h, w), -np.inf)
    for chunk in Y.chunks():
        np.maximum(peak, X[chunk].max(axis=0), out=peak)
    score = peak.astype(np.float32)
    lam = float(alpha) * image_to_column(pixel_noise(Y)).astype(np.float64)
    A, C = _unit_traces(*_start(X, int(K)))
    A, C = _sparse_hals(X, A, C, lam, int(iterations))
    norms = np.sqrt((A ** 2).sum(axis=0))
    energy = norms * np.sqrt((C ** 2).sum(axis=1))
    order = [k for k in np.argsort(-energy, kind="stable") if energy[k] > 0]
    A, C = A[:, order] / norms[order], C[order] * norms[order, None]
    b, f = fit_background(ClippedResidual(Y, A, C), int(nb), block=BACKGROUND_BLOCK)
    b_norms = np.sqrt((b ** 2).sum(axis=0))
    b, f = b / np.where(b_norms > 0, b_norms, 1.0), f * b_norms[:, None]  # unit footprints, like A
    return LowRankInit(A=A.astype(np.float32), C=C.astype(np.float32), b=b.astype(np.float32),
                       f=f.astype(np.float32), score=score)


def initialize(frames, section: InitSection, *, storage: PatchStorage = PatchStorage()) -> InitResult:
    """sparse_NMF on a patch ``frames`` (T, h, w) on its ``ssub`` grid, with ``section``'s options
    (``K`` components, the patch's ``patch_nb`` background components). The factorisation reads
    ``frames`` a chunk at a time and makes no frame-sized copy, so ``storage`` is not needed."""
    return as_init_result(frames, initialize_sparse_nmf(frames, K=section.K, nb=section.patch_nb), section)
