"""Full-rate traces of every component against the background, deconvolved with OASIS.

Two background models: CNMF-E's ring model (1P, ``nb = 0``) and CNMF's low-rank ``b·f`` (2P,
``nb > 0``). One streaming pass over the movie gives ``U = Aᵀ(Y − B)`` (ring) or the projections
``[A b]ᵀY`` (low rank, where the background traces ``f`` are solved alongside the neurons'); the
block-coordinate (HALS) sweep that follows works on the small (K, T) and (K, K) matrices only,
deconvolving each component's raw trace ``C_k + YrA_k`` in turn (Pnevmatikakis et al. 2016,
temporal update). Under the ring model a smooth low-rank field (what the ring leaves, e.g. neuropil;
:mod:`cnmflow.engine.smooth_field`) is solved in the same sweeps, so it stays out of the traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.background import RingModel, ring_background
from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.deconvolution import deconvolve_trace, deconvolve_trace_refining_sn
from cnmflow.engine.estimates import Estimates
from cnmflow.engine.hals import clean_footprint, dilate_footprint, update_traces
from cnmflow.engine.ring_projections import background_free_projections
from cnmflow.engine.sections import TraceSection
from cnmflow.engine.smooth_field import (FIELD_RANK, LOCAL_FIELD_RANK, LOCAL_TENT_SPACING_GSIG, smooth_field,
                                         tent_basis, tent_gram_factor, tent_spacing)
from cnmflow.pixel_order import frames_to_pixels, image_to_column, pixels_to_frames

#: Block-coordinate sweeps over all components (CaImAn's temporal update also does 2).
TEMPORAL_SWEEPS = 2
#: Non-negative least-squares sweeps over neurons and background before deconvolving (low-rank model).
SETTLING_SWEEPS = 10
#: Passes of the ring model's solve, each re-estimating the smooth field from the previous pass's
#: traces, and sweeps per pass. The field and the traces converge together: more passes leave less
#: out-of-focus light and neuropil in the dim traces (CA1 seed 1, dim third's median r 0.87 at 2
#: passes, 0.92 at 4, 0.94 at 6; issue #16).
FIELD_PASSES = 6
PASS_SWEEPS = 1
#: Ring model: re-solves of each trace with the noise sd its solution leaves unexplained
#: (:func:`cnmflow.engine.deconvolution.deconvolve_trace_refining_sn`); the PSD estimate
#: overestimates a bright trace's noise and shrinks its transients (issue #16). Three since the
#: core-weighted filters (FILTER_POWER) and the converged fields (FIELD_PASSES) leave less
#: contamination for a lower sd to fit as calcium (CA1 seed 1 at 6 passes: r 0.983 → 0.988).
SN_REFINEMENTS = 3
#: Ring model: each neuron's trace is read through its footprint raised to this power (a
#: Petrov-Galerkin projection ``w_k = a_k**FILTER_POWER``): the footprint's faint halo, where
#: out-of-focus cells and neuropil outweigh the cell, counts less than its core (issue #16).
FILTER_POWER = 3.0


@dataclass(frozen=True)
class LowRankBackground:
    """CNMF's 2P background ``B = b·f``: ``nb`` non-negative spatial components and their traces."""

    b: np.ndarray                    # (pixels, nb) float32, Fortran-ordered pixels
    f: np.ndarray                    # (nb, T) float32

    @property
    def nb(self) -> int:
        return int(self.b.shape[1])


@dataclass(frozen=True)
class TraceModel:
    """Footprints and the background model traces are solved against (one of ring / low_rank)."""

    A: sp.csc_matrix                 # (pixels, K)
    ring: RingModel | None
    low_rank: LowRankBackground | None = None


@dataclass(frozen=True)
class TraceResult:
    C: np.ndarray           # (K, T) denoised, baseline included
    S: np.ndarray           # (K, T)
    YrA: np.ndarray         # (K, T) raw − C
    bl: np.ndarray
    c1: np.ndarray
    g: np.ndarray           # (K, p)
    neurons_sn: np.ndarray
    lam: np.ndarray
    f: np.ndarray | None = None  # (nb, T) background traces solved with the neurons' (low-rank model)


def background_subtracted_chunks(movie, model: TraceModel, C: np.ndarray, *, chunk_frames: int):
    """Yield (start, stop, pixels × frames matrix of Y − B) over the movie, one chunk at a time."""
    T, rows, cols = movie.shape
    dims = (rows, cols)
    for chunk in chunk_slices(T, chunk_frames):
        start, stop = chunk.start, chunk.stop
        frames = np.asarray(movie[start:stop], dtype=np.float32)
        if model.ring is not None:
            neural = pixels_to_frames(np.asarray((model.A @ C[:, start:stop]).T), dims)
            frames = frames - ring_background(model.ring, frames, neural)
        yield start, stop, frames_to_pixels(frames).T


def solve_traces(movie, model: TraceModel, C_init: np.ndarray, *, section: TraceSection,
                 chunk_frames: int = 500) -> TraceResult:
    """Deconvolved traces for fixed footprints and background; see the module docstring.

    With a low-rank background its traces ``f`` are solved in the same sweeps, as
    non-negative least squares without deconvolution, and returned in ``TraceResult.f``. With
    the ring model, the smooth field it leaves (:mod:`cnmflow.engine.smooth_field`) is solved in
    the same sweeps, unconstrained, so that it does not stay in the neurons' traces.
    """
    A = sp.csc_matrix(model.A)
    K, T = A.shape[1], movie.shape[0]
    background = model.low_rank
    nb = background.nb if background is not None else 0
    if K + nb == 0:
        return _no_traces(T, section.p, f=None if background is None else background.f)
    if background is None:
        results, raw, X = _ring_solve(movie, model, C_init, section=section, chunk_frames=chunk_frames)
    else:
        # Neurons and background components form one basis: U = [A b]ᵀY, V = [A b]ᵀ[A b].
        basis = sp.hstack([A, sp.csc_matrix(background.b)], format="csc")
        U = background_free_projections(movie, basis, None, C_init, chunk_frames=chunk_frames)
        V = (basis.T @ basis).toarray()
        # Cheap non-negative sweeps first let neurons and background settle against each other
        # (the background's traces move every neuron's), before the costlier deconvolving sweeps.
        X = update_traces(np.vstack([C_init, background.f]), U, V, iterations=SETTLING_SWEEPS)
        results, raw = _sweeps(X, U, V, K, section=section, nonneg_rest=True)
    f = None if background is None else X[K:].astype(np.float32)
    if K == 0:
        return _no_traces(T, section.p, f=f)
    C = X[:K]
    return TraceResult(
        C=C.astype(np.float32), S=np.array([r.s for r in results], dtype=np.float32),
        YrA=(raw - C).astype(np.float32), bl=np.array([r.bl for r in results]),
        c1=np.array([r.c1 for r in results]),
        g=np.array([r.g for r in results], dtype=float).reshape(K, section.p),
        neurons_sn=np.array([r.sn for r in results]), lam=np.array([r.lam for r in results]), f=f)


def _sweeps(X: np.ndarray, U: np.ndarray, V: np.ndarray, K: int, *, section: TraceSection, nonneg_rest: bool,
            sweeps: int = TEMPORAL_SWEEPS, sn_refinements: int = 0):
    """Block-coordinate sweeps, in place on ``X``: the first ``K`` rows deconvolved (their noise
    sd refined ``sn_refinements`` times), the rest (background traces) least squares,
    non-negative when ``nonneg_rest``."""
    diag = np.maximum(np.diag(V), np.finfo(float).tiny)
    g_prior = _prior_g(section)
    results = [None] * K
    raw = np.zeros((K, X.shape[1]))
    for _ in range(sweeps):
        for k in range(K):
            raw[k] = X[k] + (U[k] - V[k] @ X) / diag[k]
            deconvolved = _deconvolve(raw[k], section, g_prior, sn_refinements)
            X[k] = deconvolved.denoised
            results[k] = deconvolved
        for j in range(K, X.shape[0]):
            update = X[j] + (U[j] - V[j] @ X) / diag[j]
            X[j] = np.maximum(update, 0.0) if nonneg_rest else update
    return results, raw


def _deconvolve(raw: np.ndarray, section: TraceSection, g_prior, sn_refinements: int):
    """One component's raw trace deconvolved, with the PSD noise sd or refined from it."""
    if sn_refinements:
        return deconvolve_trace_refining_sn(raw, p=section.p, g=g_prior, bas_nonneg=section.bas_nonneg,
                                            refinements=sn_refinements)
    return deconvolve_trace(raw, p=section.p, g=g_prior, bas_nonneg=section.bas_nonneg)


def _ring_solve(movie, model: TraceModel, C_init: np.ndarray, *, section: TraceSection, chunk_frames: int):
    """The ring model's sweeps, the smooth field's modes re-estimated from the neurons' traces
    before each of FIELD_PASSES passes (the first from ``C_init``, the patches' traces). The
    neurons' rows are read through their core-weighted filters (:func:`core_filters`)."""
    A = sp.csc_matrix(model.A)
    K, T = A.shape[1], movie.shape[0]
    dims = movie.shape[1:]
    wide = tent_basis(dims, tent_spacing(section.gSig, dims))
    local = tent_basis(dims, tent_spacing(section.gSig, dims, LOCAL_TENT_SPACING_GSIG))
    filters = core_filters(A, FILTER_POWER)
    basis = sp.hstack([A, wide, local], format="csc")
    padded = np.vstack([C_init, np.zeros((basis.shape[1] - K, T), C_init.dtype)])
    # the neurons' rows read through their filters, the tents' through themselves: (filters | tents)ᵀ(Y − B)
    U_all = background_free_projections(movie, basis, model.ring, padded, chunk_frames=chunk_frames,
                                        filters=sp.hstack([filters, wide, local], format="csc"))
    V_all = (basis.T @ basis).toarray()
    V_filtered = (filters.T @ basis).toarray()
    wide_rows, local_rows = slice(K, K + wide.shape[1]), slice(K + wide.shape[1], None)
    factors = (tent_gram_factor(V_all[wide_rows, wide_rows]), tent_gram_factor(V_all[local_rows, local_rows]))
    C = C_init.astype(np.float64)
    for _ in range(FIELD_PASSES):
        U, V, X = _with_fields(U_all, V_all, C, K, wide.shape[1], V_filtered=V_filtered, gram_factors=factors)
        results, raw = _sweeps(X, U, V, K, section=section, nonneg_rest=False, sweeps=PASS_SWEEPS,
                               sn_refinements=SN_REFINEMENTS)
        C = X[:K]
    return results, raw, X


def core_filters(A: sp.csc_matrix, power: float) -> sp.csc_matrix:
    """Each footprint raised to ``power`` (same support): the filter its trace is read through.

    The trace solve's update ``c_k += w_kᵀ(Y − B − Σ a_j c_j) / w_kᵀa_k`` is unbiased for any
    filter ``w_k`` on the model; ``w_k = a_k`` (least squares) weighs a dim cell's faint halo,
    where the out-of-focus cells and neuropil the fields miss outweigh the cell, as much as its
    core does, in proportion to its footprint. A higher power counts the core more.
    """
    filters = sp.csc_matrix(A, dtype=np.float64, copy=True)
    filters.data = np.abs(filters.data) ** power
    return filters


def _with_fields(U_all: np.ndarray, V_all: np.ndarray, C: np.ndarray, K: int, n_wide: int, *,
                 V_filtered: np.ndarray, gram_factors: tuple | None = None):
    """The neurons' projections ``U``, Gram matrix ``V`` and traces ``X`` with the wide smooth
    field's modes, then the local field's (solved on what the neurons and the wide field leave).
    ``U_all``: the neurons' rows read through their filters ``W``, ``Wᵀ(Y − B)``, then the tents';
    ``V_all`` the Gram matrix of ``[A, tents]``, whose neurons' rows the filters' ``V_filtered`` =
    ``Wᵀ[A, tents]`` replace; ``gram_factors``: the wide and local tents' Gram factors
    (:func:`tent_gram_factor`), if known."""
    wide_rows, local_rows = slice(K, K + n_wide), slice(K + n_wide, None)
    wide_factor, local_factor = gram_factors if gram_factors is not None else (None, None)
    wide = smooth_field(U_all[wide_rows], V_all[wide_rows, wide_rows], V_all[:K, wide_rows], C, rank=FIELD_RANK,
                        gram_factor=wide_factor)
    U = np.vstack([U_all[:K], wide.U])
    V = np.block([[V_all[:K, :K], wide.V_neurons], [wide.V_neurons.T, wide.V_field]])
    X = np.vstack([C, wide.f])
    cross = np.vstack([V_all[:K, local_rows], wide.modes.T @ V_all[wide_rows, local_rows]])
    local = smooth_field(U_all[local_rows], V_all[local_rows, local_rows], cross, X, rank=LOCAL_FIELD_RANK,
                         gram_factor=local_factor)
    V = np.block([[V, local.V_neurons], [local.V_neurons.T, local.V_field]])
    U = np.vstack([U, local.U])
    V[:K] = np.hstack([V_filtered[:, :K], V_filtered[:, wide_rows] @ wide.modes,
                       V_filtered[:, local_rows] @ local.modes])
    return U, V, np.vstack([X, local.f])


def _no_traces(n_frames: int, p: int, *, f: np.ndarray | None) -> TraceResult:
    empty = np.zeros((0, n_frames), np.float32)
    return TraceResult(C=empty, S=empty, YrA=empty, bl=np.zeros(0), c1=np.zeros(0), g=np.zeros((0, p)),
                       neurons_sn=np.zeros(0), lam=np.zeros(0), f=f)


def _prior_g(section: TraceSection) -> tuple[float, ...] | None:
    """p = 1: the decay from decay_time and fr; p = 2: estimated from each trace."""
    if section.p == 1 and section.fr:
        return (float(np.exp(-1.0 / (section.decay_time * section.fr))),)
    return None


def refine_footprints(movie, model: TraceModel, C: np.ndarray, *, section: TraceSection,
                      chunk_frames: int = 500) -> TraceModel:
    """One HALS footprint update on the full field of view, each footprint on its dilated support.

    Only the support pixels' statistics are accumulated (``P_k = Ỹ[support_k] C_kᵀ``), so memory
    stays proportional to the footprints' area, not pixels × K. A low-rank background takes part
    as ``nb`` more components: its traces enter ``Q = XXᵀ`` (``X = [C; f]``), and its footprints
    ``b`` are updated after the neurons' when ``update_background_components``.
    """
    A = sp.csc_matrix(model.A)
    K = A.shape[1]
    background = model.low_rank
    if K == 0 and background is None:
        return model
    rows, cols = movie.shape[1:]
    dims = (rows, cols)
    b = np.zeros((rows * cols, 0)) if background is None else background.b.astype(np.float64)
    X = C.astype(np.float64) if background is None else np.vstack([C, background.f]).astype(np.float64)
    radius = max(int(round(section.gSig)), 1)
    supports = [np.flatnonzero(dilate_footprint(A[:, k].toarray().ravel(), dims, radius=radius)) for k in range(K)]
    P = [np.zeros(idx.size) for idx in supports]
    P_background = np.zeros(b.shape)
    for start, stop, Ytilde in background_subtracted_chunks(movie, model, C, chunk_frames=chunk_frames):
        block = X[:, start:stop]
        for k, idx in enumerate(supports):
            P[k] += Ytilde[idx] @ block[k]
        if b.shape[1]:
            P_background += Ytilde @ block[K:].T.astype(np.float32)
    Q = X @ X.T
    basis_rows = sp.hstack([A, sp.csc_matrix(b)], format="csr")
    columns = []
    for k, idx in enumerate(supports):
        current = np.asarray(basis_rows[idx] @ Q[:, k]).ravel()
        own = A[:, k].toarray().ravel()[idx]
        updated = np.maximum(own + (P[k] - current) / max(Q[k, k], 1e-12), 0.0)
        column = np.zeros(rows * cols)
        column[idx] = updated
        columns.append(clean_footprint(column, dims))
    A = sp.csc_matrix(np.column_stack(columns).astype(np.float32) if columns else A)
    if background is None:
        return TraceModel(A=A, ring=model.ring)
    if section.update_background_components:
        b = _update_background_footprints(A, b, P_background, Q)
    return TraceModel(A=A, ring=None, low_rank=LowRankBackground(b=b.astype(np.float32), f=background.f))


def _update_background_footprints(A: sp.csc_matrix, b: np.ndarray, P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """HALS on the background footprints given the neurons' new footprints (``P = Y fᵀ``)."""
    K = A.shape[1]
    b = b.copy()
    neural = np.asarray(A @ Q[:K, K:])                                   # (pixels, nb)
    for j in range(b.shape[1]):
        current = neural[:, j] + b @ Q[K:, K + j]
        b[:, j] = np.maximum(b[:, j] + (P[:, j] - current) / max(Q[K + j, K + j], 1e-12), 0.0)
    return b


def normalize(traces: TraceResult, model: TraceModel, *, dims: tuple[int, int], sn: np.ndarray,
              ssub_B: int) -> Estimates:
    """Unit-norm footprints with traces scaled to match (CaImAn's ``normalize_components``)."""
    A = sp.csc_matrix(model.A, dtype=np.float32)
    norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())
    norms = np.where(norms > 0, norms, 1.0)
    A = sp.csc_matrix(A @ sp.diags(1.0 / norms)).astype(np.float32)
    ring = model.ring
    pixels = dims[0] * dims[1]
    b, f = _unit_background(model.low_rank)
    return Estimates(
        A=A, C=traces.C, S=traces.S, YrA=traces.YrA, bl=traces.bl, c1=traces.c1,
        g=traces.g, neurons_sn=traces.neurons_sn, lam=traces.lam, dims=dims,
        sn=image_to_column(np.asarray(sn, np.float32)),
        b0=ring.b0.astype(np.float32) if ring is not None else np.zeros(0 if model.low_rank is not None else pixels, np.float32),
        W=ring.W if ring is not None else sp.csr_matrix((0, 0), dtype=np.float32),
        ssub_B=ring.ssub_B if ring is not None else ssub_B, b=b, f=f,
    ).with_traces_scaled(norms)


def _unit_background(background: LowRankBackground | None) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm background footprints with their traces scaled to match (empty without nb)."""
    if background is None or background.nb == 0:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    f = background.f
    norms = np.linalg.norm(background.b, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    return (background.b / norms).astype(np.float32), (f * norms[:, None]).astype(np.float32)
