"""CNMF's low-rank 2P background across patches: per-patch ``b·f`` pieces into one global model.

Each patch fits ``nb_patch`` background components of its own. Put back on the field of view,
the pieces are weighted by how many patches cover each pixel, so that overlaps are not counted
twice ("de-overlapped"). With ``low_rank_background`` the sum ``B = Σ_p b_p f_p`` is then
compressed into ``nb`` global non-negative components, by HALS on the factored product
(never forming the pixels × frames matrix); without it every patch keeps its own components.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.hals import update_traces
from cnmflow.engine.init.low_rank import dominant_sign_parts
from cnmflow.engine.patch_job.result import PatchResult
from cnmflow.engine.patches import embed_footprints
from cnmflow.engine.resample import block_means_along
from cnmflow.engine.ring_projections import background_free_projections
from cnmflow.engine.traces import SETTLING_SWEEPS, LowRankBackground
from cnmflow.pixel_order import image_to_column

#: HALS sweeps compressing the patch backgrounds into nb global components.
COMPRESSION_SWEEPS = 50


def combine_patch_backgrounds(results: list[PatchResult], dims: tuple[int, int], *, nb: int,
                              low_rank: bool) -> LowRankBackground:
    """The global background at the patches' (tsub) frame rate; ``nb = 0`` gives an empty model."""
    pixels = dims[0] * dims[1]
    n_frames = max((result.C.shape[1] for result in results), default=0)
    with_background = [result for result in results if nb > 0 and result.b.shape[1]]
    if not with_background:
        return LowRankBackground(b=np.zeros((pixels, 0), np.float32), f=np.zeros((0, n_frames), np.float32))
    coverage = np.zeros(dims)
    for result in with_background:
        coverage[result.box.slices()] += 1.0
    b_stack = sp.hstack([embed_footprints(result.b, result.box, dims) for result in with_background], format="csc")
    b_stack = sp.csc_matrix(sp.diags(1.0 / np.maximum(image_to_column(coverage), 1.0)) @ b_stack)
    f_stack = np.vstack([result.f for result in with_background]).astype(np.float64)
    if not low_rank or b_stack.shape[1] <= nb:
        return LowRankBackground(b=b_stack.toarray().astype(np.float32), f=f_stack.astype(np.float32))
    b, f = compress_factored(b_stack, f_stack, rank=nb)
    return LowRankBackground(b=b.astype(np.float32), f=f.astype(np.float32))


def compress_factored(B: sp.spmatrix, F: np.ndarray, *, rank: int,
                      sweeps: int = COMPRESSION_SWEEPS) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative ``b (pixels, rank)``, ``f (rank, T)`` with ``b f ≈ B F``, touching only factors.

    Started from the leading singular pairs of ``B F`` (their dominant-sign parts, as NNDSVD
    does), then HALS: ``bᵀ(BF) = (bᵀB)F`` and ``(BF)fᵀ = B(Ffᵀ)`` are all that is needed.
    """
    B = sp.csc_matrix(B, dtype=np.float64)
    b, f = _leading_pairs(B, F, rank)
    for _ in range(sweeps):
        BtF = (np.asarray((B.T @ b)).T) @ F            # bᵀ B F  (rank, T)
        bb = b.T @ b
        for j in range(rank):
            f[j] = np.maximum(f[j] + (BtF[j] - bb[j] @ f) / max(bb[j, j], 1e-12), 0.0)
        BFf = np.asarray(B @ (F @ f.T))                # B F fᵀ (pixels, rank)
        ff = f @ f.T
        for j in range(rank):
            b[:, j] = np.maximum(b[:, j] + (BFf[:, j] - b @ ff[:, j]) / max(ff[j, j], 1e-12), 0.0)
    return b, f


def _leading_pairs(B: sp.csc_matrix, F: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading ``rank`` singular pairs of ``B F`` from the small Gram of ``B``, made non-negative."""
    gram = (B.T @ B).toarray()
    eigvals, V = np.linalg.eigh(gram)
    keep = eigvals > eigvals.max() * 1e-12
    sigma = np.sqrt(eigvals[keep])
    U = np.asarray(B @ (V[:, keep] / sigma))                # orthonormal basis of B's columns
    core = (sigma[:, None] * V[:, keep].T) @ F              # B F = U · core
    P, S, Qt = np.linalg.svd(core, full_matrices=False)
    b = np.zeros((B.shape[0], rank))
    f = np.zeros((rank, F.shape[1]))
    for j in range(min(rank, S.size)):
        u, v = dominant_sign_parts(U @ P[:, j], Qt[j])
        b[:, j], f[j] = np.sqrt(S[j]) * u, np.sqrt(S[j]) * v
    return b, f


def settle_traces(movie, A: sp.csc_matrix, background: LowRankBackground, C_low: np.ndarray, *, tsub: int,
                  chunk_frames: int, joint: bool) -> tuple[np.ndarray, LowRankBackground]:
    """The components' tsub-rate traces re-solved against the global background (one movie pass).

    A patch's own background (``nb_patch`` components) can be poorer than the movie's, and what
    it leaves out leaks into its neurons' traces: neighbours then correlate through the shared
    background and would be merged. ``[A b]ᵀY`` and non-negative HALS on (``C``, ``f``) give the
    global background's traces ``f`` and, with ``joint``, every component's trace solved with
    its neighbours'. Without ``joint`` each trace is its own footprint's view of ``Y − b·f``:
    a neuron found by two patches then keeps the same trace in both copies, where a joint solve
    would share its activity out between them and hide that they are one.
    """
    K = A.shape[1]
    if K == 0 or background.nb == 0:
        return C_low, background
    basis = sp.hstack([sp.csc_matrix(A), sp.csc_matrix(background.b)], format="csc")
    U = background_free_projections(movie, basis, None, C_low, chunk_frames=chunk_frames)
    U_low = _tsub_rate(U, tsub, C_low.shape[1])
    gram = (basis.T @ basis).toarray()
    X = update_traces(np.vstack([C_low, background.f]), U_low, gram, iterations=SETTLING_SWEEPS)
    f = X[K:]
    if joint:
        C = X[:K]
    else:
        C = (U_low[:K] - gram[:K, K:] @ f) / np.maximum(np.diag(gram)[:K, None], np.finfo(float).tiny)
    return C.astype(np.float32), LowRankBackground(b=background.b, f=f.astype(np.float32))


def _tsub_rate(U: np.ndarray, tsub: int, n_blocks: int) -> np.ndarray:
    """(n, T) full-rate rows → (n, n_blocks) means over tsub frames (a last partial block too)."""
    if tsub == 1:
        return U[:, :n_blocks]
    return block_means_along(U, tsub, axis=1)[:, :n_blocks]
