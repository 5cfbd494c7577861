"""CNMF-E's ring background seen through the footprints and traces, without forming it.

The ring model's background of a frame ``y`` is ``B = b0 + Up·W·D(y − A·c − b0)``
(:mod:`cnmflow.engine.background`). The HALS updates need only ``Aᵀ(Y − B)`` (traces) and
``(Y − B)·Cᵀ`` (footprints); with ``M = Aᵀ·Up·W``, a small (K × ring-grid pixels) matrix,

* ``Aᵀ(Y − B) = Aᵀ(Y − b0) − M·(D(Y − b0) − D·A·C)``
* ``(Y − B)·Cᵀ = Y·Cᵀ − b0·sᵀ − Up·W·(D(Y)·Cᵀ − D·A·C_B·Cᵀ − D·b0·sᵀ)``, ``s = C·1``

(``C_B``: the traces the background was formed with). Each frame then costs a block mean and a
few small products instead of a full-resolution background image. The patch's refinement
(dense footprints, frames from a :class:`~cnmflow.engine.patch_frames.PatchFrames`) and the
full field of view's trace solve (sparse footprints, frames from the movie) evaluate these
expressions in their own order of operations, each kept as it was so the numbers stay the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.background import RingModel
from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.patch_frames import PatchFrames
from cnmflow.engine.resample import downsampled_dims, resampling_operators, spatial_block_means
from cnmflow.pixel_order import fortran_index, pixels_to_frames, to_fortran_rows


@dataclass(frozen=True)
class RingGrid:
    """The ring model's resampling operators for one patch shape, and the C → Fortran pixel orders
    of the full and the ring grid (frames arrive in C order; the factors are Fortran-ordered)."""

    down: sp.csr_matrix            # (d_ds, d) block means onto the ring grid
    up: sp.csr_matrix              # (d, d_ds) bilinear upsampling back
    to_fortran: np.ndarray         # (d,) C-order positions of the Fortran-ordered pixels
    to_fortran_small: np.ndarray   # (d_ds,) the same on the ring grid

    @classmethod
    def of(cls, dims: tuple[int, int], ring: RingModel) -> "RingGrid":
        down, up = resampling_operators(dims, ring.ssub_B)
        return cls(down=down, up=up, to_fortran=fortran_index(dims), to_fortran_small=fortran_index(ring.dims_ds))


def footprint_ring_weights(A: np.ndarray, grid: RingGrid, W: sp.spmatrix) -> np.ndarray:
    """``M = Aᵀ·Up·W`` (K, d_ds) for dense Fortran-ordered footprints ``A`` (d, K)."""
    return (grid.up.T @ A).T @ W


def patch_trace_projections(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingModel,
                            grid: RingGrid) -> np.ndarray:
    """``Aᵀ(Y − B)`` (K, T) of a patch, ``B`` the ring background formed with the traces ``C``."""
    b0 = ring.b0.astype(np.float64)
    A_small = grid.down @ A                                           # (d_ds, K)
    M = footprint_ring_weights(A, grid, ring.W)                       # (K, d_ds)
    U = _trace_projections(Y, A[grid.to_fortran], M[:, grid.to_fortran_small], ring.ssub_B)
    U -= (A.T @ b0)[:, None] - M @ A_small @ C - (M @ (grid.down @ b0))[:, None]
    return U


def patch_footprint_projections(Y: PatchFrames, A: np.ndarray, C: np.ndarray, C_background: np.ndarray,
                                ring: RingModel, grid: RingGrid) -> np.ndarray:
    """``(Y − B)·Cᵀ`` (d, K) of a patch, Fortran-ordered pixels; ``B`` formed with ``C_background``."""
    b0 = ring.b0.astype(np.float64)
    s_total = C.sum(axis=1)
    YC, small_YC = _footprint_projections(Y, C, ring.ssub_B)
    small_term = (to_fortran_rows(small_YC, grid.to_fortran_small) - (grid.down @ A) @ (C_background @ C.T)
                  - np.outer(grid.down @ b0, s_total))
    return to_fortran_rows(YC, grid.to_fortran) - np.outer(b0, s_total) - grid.up @ (ring.W @ small_term)


def _trace_projections(Y: PatchFrames, A_rows: np.ndarray, M_rows: np.ndarray, ssub_B: int) -> np.ndarray:
    """``A_rowsᵀ·Y − M_rows·D(Y)`` for every frame, (K, T); the rows of both in C pixel order."""
    U = np.empty((A_rows.shape[1], Y.shape[0]))
    for chunk in Y.chunks():
        frames = Y[chunk]
        small = spatial_block_means(frames, ssub_B, edge="partial")
        U[:, chunk] = ((frames.reshape(frames.shape[0], -1) @ A_rows).T
                       - M_rows @ small.reshape(small.shape[0], -1).T)
    return U


def _footprint_projections(Y: PatchFrames, C: np.ndarray, ssub_B: int) -> tuple[np.ndarray, np.ndarray]:
    """``Y·Cᵀ`` (d, K) and ``D(Y)·Cᵀ`` (d_ds, K), pixels in C order, summed over chunks of frames."""
    T, h, w = Y.shape
    YC = np.zeros((h * w, C.shape[0]))
    small_YC = np.zeros((math.prod(downsampled_dims((h, w), ssub_B)), C.shape[0]))
    for chunk in Y.chunks():
        frames = Y[chunk]
        small = spatial_block_means(frames, ssub_B, edge="partial")
        YC += frames.reshape(frames.shape[0], -1).T @ C[:, chunk].T
        small_YC += small.reshape(small.shape[0], -1).T @ C[:, chunk].T
    return YC, small_YC


#: Frames per sparse product in :func:`sparse_times_frames`.
PRODUCT_FRAMES = 16


def sparse_times_frames(M: sp.spmatrix, rows: np.ndarray) -> np.ndarray:
    """``M·rowsᵀ`` (K, n) for a sparse ``M`` (K, pixels) and frames as (n, pixels) rows, the same
    numbers as one product.

    scipy copies the dense operand into C order first, here a transposing copy of the frames; for a
    whole chunk that copy misses the CPU cache at every value and costs ~15x the product itself.
    ``PRODUCT_FRAMES`` frames at a time it stays in cache (~3.5x less CPU for the whole step).
    """
    parts = [M @ rows[part].T for part in chunk_slices(rows.shape[0], PRODUCT_FRAMES)]
    return np.concatenate(parts, axis=1) if parts else M @ rows.T


def background_free_projections(movie, A: sp.spmatrix, ring: RingModel | None, C: np.ndarray, *,
                                chunk_frames: int, filters: sp.spmatrix | None = None) -> np.ndarray:
    """``U = Wᵀ(Y − B)`` (columns of W, T) of the whole movie in one pass (``B = 0`` without a ring model).

    ``A`` (pixels, K) sparse, Fortran order, with ``C`` (K, T): the components the ring background is
    formed without (``B = ring(Y − A·C)``). ``filters`` ``W`` (pixels, n), the images the movie is read
    through, default ``A``: a solve that reads its neurons through other filters than their footprints
    projects only what it uses.
    """
    A = sp.csc_matrix(A)
    W = A if filters is None else sp.csc_matrix(filters)
    T = movie.shape[0]
    U = np.zeros((W.shape[1], T), dtype=np.float64)
    # Frames arrive in C order; reorder the small operators instead of transposing every frame.
    W_c = sp.csr_matrix(W[fortran_index(movie.shape[1:])])              # (pixels in C order, n)
    if ring is not None:
        down, up = resampling_operators(ring.dims, ring.ssub_B)
        M = sp.csr_matrix((W.T @ up) @ ring.W)                       # (n, d_ds), Fortran order
        MDA = (M @ (down @ A)).toarray()                             # (n, K)
        M_c = sp.csr_matrix(M[:, fortran_index(ring.dims_ds)])       # columns in C order
    # Frames are taken relative to b0 (≈ each pixel's mean) so the bright background cancels
    # before the float32 products, not after them.
    b0_image = pixels_to_frames(ring.b0[None, :], ring.dims)[0].astype(np.float32) if ring is not None else None
    for chunk in chunk_slices(T, chunk_frames):
        frames = np.asarray(movie[chunk], dtype=np.float32)
        if b0_image is not None:
            frames = frames - b0_image
        n = frames.shape[0]
        U[:, chunk] = sparse_times_frames(W_c.T, frames.reshape(n, -1))
        if ring is not None:
            small = spatial_block_means(frames, ring.ssub_B, edge="partial").reshape(n, -1)  # (n, d_ds), C order
            U[:, chunk] -= (M_c @ small.T) - MDA @ C[:, chunk]
    return U
