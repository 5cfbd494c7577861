"""Shared result of the 2P initializations and their in-patch HALS refinement.

``greedy_roi`` and ``sparse_NMF`` both end in the CNMF model of one patch,
``Y ≈ A·C + b·f`` (Pnevmatikakis et al., Neuron 2016, eq. 2 with a rank-nb background), with
every factor non-negative. :func:`refine_hals` polishes such a factorisation with a few rounds
of hierarchical alternating least squares (Cichocki & Phan 2009): traces ``[C; f]`` given the
footprints, then footprints ``[A, b]`` given the traces. Both updates use the small statistics
``[A, b]ᵀ·Y`` and ``Y·[C; f]ᵀ`` only (see :mod:`cnmflow.engine.hals`), computed in float64 a
chunk of frames at a time: the patch (possibly a scratch file) is never copied whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from cnmflow.engine.chunking import frame_chunks
from cnmflow.engine.hals import clean_footprint, dilated_support, update_footprints, update_traces
from cnmflow.engine.init.result import InitResult
from cnmflow.engine.noise import noise_psd
from cnmflow.engine.resample import spatial_block_means
from cnmflow.engine.sections import InitSection
from cnmflow.engine.summary_images import correlation_pnr
from cnmflow.errors import ParameterError
from cnmflow.pixel_order import (columns_to_images, fortran_index, frames_to_pixels, images_to_columns,
                                 pixels_to_frames, to_fortran_rows)

__all__ = ["LowRankInit", "refine_hals", "fit_background", "nonnegative_factorization", "dominant_sign_parts",
           "ClippedResidual", "empty_init", "temporal_median", "as_init_result", "footprints_dot_frames",
           "frames_dot_traces"]

#: background NMF: at most this many HALS sweeps on the block-averaged copy, stopping once a sweep
#: lowers the squared error by less than BACKGROUND_NMF_TOL of it; then per-pixel NNLS sweeps
BACKGROUND_NMF_ITERATIONS = 200
BACKGROUND_NMF_TOL = 1e-6
BACKGROUND_NNLS_ITERATIONS = 50


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class LowRankInit:
    """Initial CNMF factorisation of one patch, ``Y ≈ A·C + b·f``.

    Pixels are Fortran-ordered (``A[:, k].reshape((h, w), order="F")``). Footprints ``A`` and
    ``b`` have unit L2 columns; the traces carry the scale, in movie units.
    """

    A: np.ndarray  # (h*w, K) float32 >= 0
    C: np.ndarray  # (K, T) float32 >= 0
    b: np.ndarray  # (h*w, nb) float32 >= 0 background footprints
    f: np.ndarray  # (nb, T) float32 >= 0 background traces
    score: np.ndarray  # (h, w) float32, the image the centres were picked from

    @property
    def n_components(self) -> int:
        return int(self.A.shape[1])

    @property
    def nb(self) -> int:
        return int(self.b.shape[1])


def as_init_result(frames, found: LowRankInit, section: InitSection) -> InitResult:
    """A 2P initialisation of the patch ``frames`` as the result every variant returns, with the
    corr_pnr seed-search images of the patch (shown and stitched like the 1P ones)."""
    images = correlation_pnr(frames, gsig=section.gsig_patch, center_psf=section.center_psf)
    return InitResult(A=found.A, C=found.C, b=found.b, f=found.f, correlation=images.correlation, pnr=images.pnr)


def temporal_median(frames: np.ndarray) -> np.ndarray:
    """Each pixel's median over the frames (axis 0) of finite floating-point ``frames``, exactly
    ``np.median(frames, axis=0)``.

    The same values from one selection: a partition at the upper middle, whose lower part's
    maximum is the lower middle, instead of np.median's partition at both (~40% less CPU; the
    medians are a sizable part of a 2P patch job).
    """
    n = frames.shape[0]
    middle = n // 2
    part = np.partition(frames, middle, axis=0)
    if n % 2:
        return part[middle]
    return (part[:middle].max(axis=0) + part[middle]) / part.dtype.type(2)


def empty_init(dims: tuple[int, int], n_frames: int, *, score: np.ndarray | None = None) -> LowRankInit:
    """No components and no background: the result for a patch with nothing to find."""
    n_pixels = int(dims[0]) * int(dims[1])
    return LowRankInit(
        A=np.zeros((n_pixels, 0), np.float32), C=np.zeros((0, n_frames), np.float32),
        b=np.zeros((n_pixels, 0), np.float32), f=np.zeros((0, n_frames), np.float32),
        score=np.zeros(dims, np.float32) if score is None else np.asarray(score, np.float32),
    )


def _residual_norm(y_norm: float, W: np.ndarray, P: np.ndarray, Q: np.ndarray) -> float:
    """``‖Y − W·H‖²`` from ``P = Y·Hᵀ`` and ``Q = H·Hᵀ``, without forming the residual."""
    return y_norm - 2.0 * float(np.sum(W * P)) + float(np.sum((W.T @ W) * Q))


def _clean(W: np.ndarray, K: int, dims: tuple[int, int]) -> np.ndarray:
    """Neuron columns through ``clean_footprint`` (median, threshold, largest blob); background kept."""
    W = W.copy()
    for k in range(K):
        W[:, k] = clean_footprint(W[:, k], dims)
    return W


def _check_init(shape: tuple[int, int], init: LowRankInit, dims: tuple[int, int]) -> None:
    """``shape`` = (pixels, frames) of the patch the factorisation must match."""
    n_pixels, T = shape
    K, nb = init.A.shape[1], init.b.shape[1]
    expected = {"A": (n_pixels, K), "C": (K, T), "b": (n_pixels, nb), "f": (nb, T)}
    for name, shape_ in expected.items():
        got = np.shape(getattr(init, name))
        if got != shape_:
            raise ParameterError(f"init.{name} has shape {got}; the patch {dims} x {T} frames needs {shape_}")


def _normalised(W: np.ndarray, H: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm footprints (scale moved into the traces); ``keep`` drops all-zero neurons."""
    norms = np.sqrt((W ** 2).sum(axis=0))
    energy = norms * np.sqrt((H ** 2).sum(axis=1))
    keep = np.ones(W.shape[1], bool)
    keep[:K] = energy[:K] > 0
    scale = np.where(norms > 0, norms, 1.0)
    return W / scale, H * scale[:, None], keep


def fit_background(Z, nb: int, *, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rank-``nb`` non-negative ``b·f`` ≈ ``Z`` (T, h, w), ``Z >= 0``: b (h*w, nb), f (nb, T), float64.

    The background is spatially smooth, so its traces ``f`` come from an NMF
    (:func:`nonnegative_factorization`, deterministic) of ``block x block`` block means; each
    full-resolution pixel of ``b`` is then the non-negative least-squares fit of ``Z`` on ``f``.
    ``Z`` is an array or anything that gives chunks of frames by ``Z[frames]``; it is read twice, a
    chunk at a time.
    """
    T, h, w = Z.shape
    if nb == 0:
        return np.zeros((h * w, 0)), np.zeros((0, T))
    chunks = list(frame_chunks(T, h * w))
    small = np.concatenate([spatial_block_means(np.asarray(Z[chunk]), block, edge="replicate") for chunk in chunks])
    b_small, f = nonnegative_factorization(frames_to_pixels(small).T.astype(np.float64), nb,
                                           iterations=BACKGROUND_NMF_ITERATIONS, tol=BACKGROUND_NMF_TOL)
    # start each pixel from its block's value, then exact non-negative least-squares sweeps
    blocks = columns_to_images(b_small, small.shape[1:])
    b0 = np.ascontiguousarray(images_to_columns(np.repeat(np.repeat(blocks, block, 1), block, 2)[:, :h, :w]))
    P = frames_dot_traces(Z, f, chunks)
    b = update_footprints(b0, P, f @ f.T, np.ones(b0.shape, bool), iterations=BACKGROUND_NNLS_ITERATIONS)
    return b, f


def nonnegative_factorization(X: np.ndarray, rank: int, *, iterations: int = 200,
                              tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative ``W`` (p, rank), ``H`` (rank, n) minimising ``‖X − W·H‖²`` for ``X >= 0`` (p, n).

    NNDSVDa start (Boutsidis & Gallopoulos 2008: the dominant-sign parts of the leading singular
    pairs, zeros filled with the mean of ``X``), then HALS sweeps (``W`` given ``H``, then ``H``
    given ``W``) until one lowers the squared error by less than ``tol`` of it, or ``iterations``.
    Deterministic. A rank-1 start is already the optimum (a non-negative matrix's leading
    singular pair is non-negative), so the common one-component background stops after two sweeps.
    """
    W, H = _nndsvda(X, rank)
    x_norm = float(np.sum(X * X))
    previous = np.inf
    for _ in range(int(iterations)):
        W = update_footprints(W, X @ H.T, H @ H.T, np.ones(W.shape, bool), iterations=1)
        XtW, WtW = W.T @ X, W.T @ W
        H = update_traces(H, XtW, WtW, iterations=1)
        error = x_norm - 2.0 * float(np.sum(XtW * H)) + float(np.sum(WtW * (H @ H.T)))
        if np.isfinite(previous) and previous - error <= tol * previous:
            break
        previous = error
    return W, H


def _nndsvda(X: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """NNDSVDa start of :func:`nonnegative_factorization`, the singular pairs from the smaller Gram matrix."""
    p, n = X.shape
    rank = min(int(rank), p, n)
    gram = X @ X.T if p <= n else X.T @ X
    values, vectors = scipy.linalg.eigh(gram, subset_by_index=[gram.shape[0] - rank, gram.shape[0] - 1])
    W, H = np.zeros((p, rank)), np.zeros((rank, n))
    for j, k in enumerate(range(rank - 1, -1, -1)):  # largest first
        sigma = float(np.sqrt(max(values[k], 0.0)))
        if not sigma > 0:
            continue
        u, v = (vectors[:, k], vectors[:, k] @ X / sigma) if p <= n else (X @ vectors[:, k] / sigma, vectors[:, k])
        u, v = dominant_sign_parts(u, v)
        u_norm, v_norm = float(np.linalg.norm(u)), float(np.linalg.norm(v))
        if u_norm > 0 and v_norm > 0:
            scale = np.sqrt(sigma * u_norm * v_norm)
            W[:, j], H[j] = scale * u / u_norm, scale * v / v_norm
    mean = float(X.mean())
    W[W == 0], H[H == 0] = mean, mean
    return W, H


def dominant_sign_parts(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positive parts of a singular pair ``u, v`` or of ``−u, −v`` (its sign is arbitrary),
    whichever pair keeps the larger product of norms (NNDSVD's choice)."""
    if np.linalg.norm(np.minimum(u, 0)) * np.linalg.norm(np.minimum(v, 0)) > \
            np.linalg.norm(np.maximum(u, 0)) * np.linalg.norm(np.maximum(v, 0)):
        u, v = -u, -v
    return np.maximum(u, 0), np.maximum(v, 0)


class ClippedResidual:
    """``max(Y − A·C, 0)`` a chunk of frames at a time, for a (T, h, w) ``frames`` provider (indexed
    by a frame slice) and Fortran-ordered footprints: what the background is fitted to."""

    def __init__(self, frames, A: np.ndarray, C: np.ndarray):
        self.frames, self.A, self.C, self.shape = frames, A, C, frames.shape

    def __getitem__(self, chunk: slice) -> np.ndarray:
        residual = np.asarray(self.frames[chunk], dtype=np.float32)
        if self.A.shape[1]:
            residual = residual - pixels_to_frames((self.A @ self.C[:, chunk]).T, self.shape[1:])
        return np.maximum(residual, 0.0)


def _frame_rows(Y, chunk: slice) -> np.ndarray:
    """Frames ``chunk`` of a (T, h, w) movie as a (frames, pixels) float64 matrix, pixels in C order
    (a reshape, no reordering copy; the factors' rows are put in C order instead)."""
    frames = np.asarray(Y[chunk])
    return frames.reshape(frames.shape[0], -1).astype(np.float64, copy=False)


def footprints_dot_frames(Y, W: np.ndarray, chunks: list[slice]) -> np.ndarray:
    """``Wᵀ·Y`` (K, T) for a (T, h, w) movie and Fortran-ordered ``W``, a chunk of frames at a time."""
    W_rows = W[fortran_index(Y.shape[1:])]
    out = np.empty((W.shape[1], Y.shape[0]))
    for chunk in chunks:
        out[:, chunk] = (_frame_rows(Y, chunk) @ W_rows).T
    return out


def frames_dot_traces(Y, H: np.ndarray, chunks: list[slice]) -> np.ndarray:
    """``Y·Hᵀ`` (pixels in Fortran order, K) for a (T, h, w) movie, summed over chunks of frames."""
    out = np.zeros((Y.shape[1] * Y.shape[2], H.shape[0]))
    for chunk in chunks:
        out += _frame_rows(Y, chunk).T @ H[:, chunk].T
    return to_fortran_rows(out, fortran_index(Y.shape[1:]))


def refine_hals(Y, init: LowRankInit, *, gsig: float, iterations: int = 5) -> LowRankInit:
    """A few HALS rounds on the patch: ``(C, f)`` given ``(A, b)``, then ``(A, b)`` given ``(C, f)``.

    Minimises ``‖Y − A·C − b·f‖²`` (Frobenius, movie units) with every factor non-negative.
    Footprint k may only grow within its starting support dilated by ``round(gsig)`` pixels (a
    neuron does not wander off); background footprints are unrestricted. After each spatial update
    the neuron footprints go through :func:`~cnmflow.engine.hals.clean_footprint` (without it
    they would creep outwards by fitting noise). Cleaning can cost a little fit, so the result
    is the round — footprints with the traces fitted to them — with the smallest error: never
    worse than the input. Neurons that end up all-zero are dropped.

    Parameters
    ----------
    Y : (T, h, w) movie of the patch: an array (any real dtype) or
        :class:`~cnmflow.engine.patch_frames.PatchFrames`, read a chunk of frames at a time.
    init : starting factorisation of the same patch.
    gsig : neuron radius in pixels (CaImAn ``gSig``), > 0.
    iterations : HALS rounds, >= 0.

    Returns
    -------
    A new :class:`LowRankInit` with unit-norm footprints; ``score`` is passed through.
    """
    if not (np.isfinite(gsig) and gsig > 0):
        raise ParameterError(f"gsig={gsig!r} must be a positive number of pixels")
    if int(iterations) != iterations or iterations < 0:
        raise ParameterError(f"iterations={iterations!r} must be an integer >= 0")
    if getattr(Y, "ndim", None) != 3:
        raise ParameterError(f"Y must be a (n_frames, rows, cols) movie, got shape {getattr(Y, 'shape', None)}")
    T, h, w = (int(n) for n in Y.shape)
    dims = (h, w)
    _check_init((h * w, T), init, dims)
    chunks = list(frame_chunks(T, h * w))
    K = init.A.shape[1]
    W = np.hstack([init.A, init.b]).astype(np.float64)
    H = np.vstack([init.C, init.f]).astype(np.float64)
    radius = max(1, int(round(float(gsig))))
    y_norm = sum(float(np.sum(_frame_rows(Y, chunk) ** 2)) for chunk in chunks)
    best_error = _residual_norm(y_norm, W, frames_dot_traces(Y, H, chunks), H @ H.T)
    best = W, H
    # The support is fixed from the starting footprints: dilating each round's footprints would
    # let a neuron creep outwards by gSig per round and soak up background it correlates with.
    support = np.ones(W.shape, bool)
    support[:, :K] = dilated_support(W[:, :K], dims, radius=radius)
    for round_ in range(int(iterations) + 1 if iterations else 0):
        H = update_traces(H, footprints_dot_frames(Y, W, chunks), W.T @ W)
        P, Q = frames_dot_traces(Y, H, chunks), H @ H.T
        error = _residual_norm(y_norm, W, P, Q)
        if error <= best_error:
            best_error, best = error, (W, H)
        if round_ == iterations:
            break
        W = _clean(update_footprints(W, P, Q, support), K, dims)
    W, H = best
    W, H, keep = _normalised(W, H, K)
    k_keep = keep[:K]
    return LowRankInit(
        A=W[:, :K][:, k_keep].astype(np.float32), C=H[:K][k_keep].astype(np.float32),
        b=W[:, K:].astype(np.float32), f=H[K:].astype(np.float32),
        score=np.asarray(init.score, np.float32),
    )


def significant_traces(C: np.ndarray, *, min_pnr: float = 8.0) -> np.ndarray:
    """(K,) whether each (K, T) trace peaks at least ``min_pnr`` noise sd above its median.

    The noise is the trace's own high-frequency (PSD) noise; a component that is only a
    leftover of a subtraction or of the background peaks a few sd at most, a neuron far higher.
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    if C.shape[0] == 0:
        return np.zeros(0, bool)
    noise = noise_psd(C)
    height = C.max(axis=1) - np.median(C, axis=1)
    return height >= min_pnr * np.where(np.isfinite(noise) & (noise > 0), noise, np.inf)
