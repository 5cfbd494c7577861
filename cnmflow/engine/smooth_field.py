"""A smooth, low-rank field the ring background leaves in ``Y − B − A·C``, solved with the traces.

CNMF-E's ring model predicts a pixel's background from pixels ~gSiz·ring_size_factor away. A
fluctuating field that curves on that scale (neuropil, out-of-focus cells, the 1P haze) is not
predicted exactly, and what is left at a neuron enters its raw trace as the field's local mean.
On the realistic CA1 simulator that residual neuropil is the largest term between the traces and
the truth (benchmarks/findings/footprint_fidelity.md, issue #16 diagnosis). Here it is modelled as ``b·f``: ``b`` a
few smooth spatial modes spanned by bilinear tents spaced 6·gSig apart (wider than a neuron, so
a mode is fixed by the whole field, not by one cell), ``f`` their traces, solved jointly with the
neurons' traces in the same block-coordinate sweeps, unconstrained in sign. A second, local field
on tents 3·gSig apart is solved on what the neurons and the wide field leave (out-of-focus cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from cnmflow.engine.resample import resampling_operators

#: Smooth modes kept (the leading singular vectors of the residual on the tent grid).
FIELD_RANK = 8
#: Tent spacing in units of gSig (~1.5 gSiz: wider than a neuron and its surround; 3, 4, 6 and 8 tried).
TENT_SPACING_GSIG = 6.0
#: A second, local field on tents half as far apart, solved after the wide one: out-of-focus cells
#: (blurred, a few gSig across) that the wide modes cannot follow and that share the neurons'
#: kinetics, so they stayed in the dim neurons' traces (issue #16).
LOCAL_FIELD_RANK = 8
LOCAL_TENT_SPACING_GSIG = 3.0
#: At most this many tents along a side: their projections are kept for every frame (like the
#: neurons'), so a large field of view at a small gSig gets wider tents, not more memory.
MAX_TENTS_PER_SIDE = 24
#: At least this many tents per mode: on a small field of view (a 64² one at gSig 4 has 9 tents)
#: fewer modes, so that they stay smoother than what a few neurons do together.
TENTS_PER_MODE = 4


@dataclass(frozen=True)
class SmoothField:
    """The field's modes as seen by the trace solve: all small matrices, no image."""

    U: np.ndarray        # (rank, T) ``bᵀ(Y − B)``
    V_neurons: np.ndarray  # (K, rank) ``Aᵀb``
    V_field: np.ndarray  # (rank, rank) ``bᵀb``
    f: np.ndarray        # (rank, T) initial traces, least squares given the neurons' traces
    modes: np.ndarray    # (n_tents, rank) ``β``, the modes on the tents: ``b = G·β``


def tent_basis(dims: tuple[int, int], spacing: int) -> sp.csc_matrix:
    """Bilinear tents (pixels, n_tents), Fortran-ordered pixels, ``spacing`` pixels apart."""
    return sp.csc_matrix(resampling_operators(dims, max(int(spacing), 2))[1])


def tent_spacing(gsig: float, dims: tuple[int, int], spacing_gsig: float = TENT_SPACING_GSIG) -> int:
    """Wider than a neuron with its surround (the default), so that no mode fits one cell."""
    return max(int(round(spacing_gsig * gsig)), math.ceil(max(dims) / MAX_TENTS_PER_SIDE), 2)


def tent_gram_factor(V_tents: np.ndarray) -> tuple[np.ndarray, bool]:
    """The Cholesky factor of the tents' Gram matrix ``GᵀG`` (lightly regularised): the tents are
    fixed through a trace solve, so it is factored once and reused by every pass."""
    ridge = 1e-9 * np.trace(V_tents) / max(len(V_tents), 1)
    return scipy.linalg.cho_factor(V_tents + ridge * np.eye(len(V_tents)))


def smooth_field(U_tents: np.ndarray, V_tents: np.ndarray, V_cross: np.ndarray, C: np.ndarray, *,
                 rank: int = FIELD_RANK, gram_factor: tuple[np.ndarray, bool] | None = None) -> SmoothField:
    """The field's leading modes from the tents' projections.

    ``U_tents = Gᵀ(Y − B)`` (n, T), ``V_tents = GᵀG``, ``V_cross = AᵀG`` (K, n), ``C`` the
    neurons' traces the background was formed with. The residual field on the tents,
    ``Θ = (GᵀG)⁻¹ Gᵀ(Y − B − A·C)``, centred in time, gives the modes ``β`` (its leading left
    singular vectors); ``b = G·β``. ``gram_factor``: :func:`tent_gram_factor` of ``V_tents``.
    """
    residual = U_tents - V_cross.T @ C
    theta = scipy.linalg.cho_solve(tent_gram_factor(V_tents) if gram_factor is None else gram_factor, residual)
    theta -= theta.mean(axis=1, keepdims=True)
    rank = int(min(rank, theta.shape[0] // TENTS_PER_MODE, max(theta.shape[1] - 1, 0)))
    beta = _leading_modes(theta, rank)
    U = beta.T @ U_tents
    V_neurons = V_cross @ beta
    V_field = beta.T @ V_tents @ beta
    f = np.linalg.solve(V_field, U - V_neurons.T @ C) if rank else np.zeros((0, C.shape[1]))
    return SmoothField(U=U, V_neurons=V_neurons, V_field=V_field, f=f, modes=beta)


def _leading_modes(theta: np.ndarray, rank: int) -> np.ndarray:
    """The ``rank`` leading left singular vectors of ``theta`` (n_tents, T), largest first, as the
    leading eigenvectors of ``θθᵀ``: only those few are computed, where a full SVD of θ dominated
    the trace solve's time once the fields were re-estimated in every pass."""
    n = theta.shape[0]
    if rank <= 0:
        return np.zeros((n, 0))
    vectors = scipy.linalg.eigh(theta @ theta.T, subset_by_index=[n - rank, n - 1])[1]
    return vectors[:, ::-1]
