"""Accepted footprints far larger than the fit's typical one, cut back to their brightest weights (1P).

Under the ring background a dim cell's footprint can end up holding, beyond its halo, a low plateau of
light its own trace picked up in the patch (neuropil, a vessel, a co-active out-of-focus cell): the trace is
the footprint-weighted sum of the frames, a wide footprint gathers the area's background fluctuation, and the
next footprint update paints it back over the same area, so the plateau holds itself up. On the realistic
simulator such masks reach 2–3× their neuron's area while the fit's typical footprint is near its neuron's
(benchmarks/findings/footprint_fidelity.md, h22large, session 23). The plateau is faint per pixel but spread
over many, so it dominates the footprint's size, not its core.

The cells of one recording are of a size: an accepted footprint whose area (the pixels holding ``WEIGHT_SHARE`` of
its weight) is over ``MAX_AREA_RATIO`` times the median of the accepted footprints keeps only its highest weights,
as many as bring that area down to the bound. A scattering halo falls away from the core, so its highest weights
are the core and the near halo; what is cut is the far, flat part. The fit does it after the focus test: rejected
components (out-of-focus cells, neuropil) are broad by nature and keep the footprints that hold their light in the
model.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["MAX_AREA_RATIO", "MIN_POPULATION", "WEIGHT_SHARE", "cut_to_area", "pixels_holding", "weight_areas",
           "within_typical_size"]

#: A footprint's size is read as the area holding this share of its (positive) weight.
WEIGHT_SHARE = 0.9
#: A footprint may be this many times the median footprint's area (read on the training movies, realistic
#: CA1 and cortex seeds 1 and 4: at 1.75 no footprint within 1.25× its neuron's area is cut).
MAX_AREA_RATIO = 1.75
#: The median needs a population: with fewer footprints nothing is cut.
MIN_POPULATION = 10


#: relative slack on a share, so a cumulative sum that meets it exactly is not pushed one pixel on by rounding
SHARE_SLACK = 1e-12


def pixels_holding(descending: np.ndarray, share: float = WEIGHT_SHARE) -> np.ndarray:
    """(n,) for each M, how many of the M highest weights hold ``share`` of their sum (``descending``: positive
    weights, highest first): a footprint's area if only those M were kept; the last value is its whole area.
    The one definition of a footprint's area, here and in the accuracy scores (``shape_scoring.energy_masks``)."""
    cumulative = np.cumsum(descending)
    return np.searchsorted(cumulative, share * (1 - SHARE_SLACK) * cumulative, side="left") + 1


def weight_areas(A: sp.csc_matrix) -> np.ndarray:
    """(K,) the number of pixels holding WEIGHT_SHARE of each column's positive weight (0 for an empty one)."""
    A = sp.csc_matrix(A)
    out = np.zeros(A.shape[1], dtype=np.int64)
    for k in range(A.shape[1]):
        weights = A.data[A.indptr[k]:A.indptr[k + 1]]
        weights = np.sort(weights[weights > 0])[::-1]
        if weights.size:
            out[k] = pixels_holding(weights)[-1]
    return out


def cut_to_area(weights: np.ndarray, area: float) -> np.ndarray:
    """``weights`` with all but its highest ones zeroed: as many kept as leave at most ``area`` pixels
    holding WEIGHT_SHARE of what is kept (ties broken by position)."""
    weights = np.asarray(weights)
    order = np.argsort(-weights, kind="stable")
    descending = weights[order]
    positive = int(np.count_nonzero(descending > 0))
    kept = int(np.count_nonzero(pixels_holding(descending[:positive]) <= area))
    out = np.zeros_like(weights)
    out[order[:kept]] = weights[order[:kept]]
    return out


def within_typical_size(A: sp.csc_matrix, among: np.ndarray | None = None, *,
                        ratio: float = MAX_AREA_RATIO) -> tuple[sp.csc_matrix, np.ndarray]:
    """``A`` (pixels, K) with every footprint of ``among`` (column indices; default all) whose area is over
    ``ratio`` × the median of theirs cut to that area, the other columns as they are (``A`` itself when none is
    cut); and the indices of the cut columns."""
    A = A if sp.isspmatrix_csc(A) else sp.csc_matrix(A)
    among = np.arange(A.shape[1]) if among is None else np.asarray(among, dtype=np.int64)
    if among.size < MIN_POPULATION:
        return A, np.zeros(0, dtype=np.int64)
    areas = weight_areas(A[:, among])
    bound = ratio * float(np.median(areas))
    large = among[areas > bound]
    if large.size == 0:
        return A, large
    A = A.copy()
    for k in large:
        stored = slice(A.indptr[k], A.indptr[k + 1])
        A.data[stored] = cut_to_area(A.data[stored], bound)
    A.eliminate_zeros()
    return A, large
