"""Is a two-photon component a soma? Where its footprint's weight lies around its centre, and how its trace rises.

greedy_roi seeds somata of radius ~gSig. In a two-photon movie the neuropil (dendrites and axons in
focus between the somata) fluctuates with the population over tens of µm, in more local modes than a
patch's low-rank background (``nb_patch``) can follow, and greedy_roi's components take them up: a
footprint of neuropil texture spread over 300–1,200 px, often cut straight by the patch's edges, where a
soma's holds ~100 px. A soma's footprint — a ring around its nucleus, or a disc where the scan plane
grazes the cell — holds nearly all its weight within 1.5 radii of its weighted centre; a neuropil
component holds a third to two thirds there.

Shape alone also takes cells: where the patch's one background component cannot follow the movie's
background, a cell's footprint takes up a skirt of it (on the Gaussian two-photon benchmark, four of sixty cells,
shares .59–.69). Their traces still are a cell's — sparse transients over a resting level, skewed up (raw
trace skewness 1.1–1.9) — where a neuropil component's follows a sum over many cells and drifts about its mean
(−0.9 to 0.7). So a component is rejected only when it is both spread out and not skewed up: suite2p's cell
classifier reads the same two properties (its ``compact`` and ``skew`` features; Pachitariu et al. 2017, bioRxiv
061507). On three unseen movies of the realistic two-photon simulator (:func:`cnmflow.synthetic.simulate_realistic_2p`,
cortex L2/3) this took F1 at IoU > 0.3 from .67 to .80–.85 at ``nb_patch`` 1 (recall −.02 at most), and on the
Gaussian benchmark from .960 to .968 (benchmarks/findings/two_photon_realistic.md).

The radius is ``COMPACT_RADIUS_FACTOR`` × the larger of gSig and the median RMS radius of the fit's skewed-up
footprints (the cells'), so that a gSig set below the cells' radius does not cut true rings. The median over every
component widened the disc to 11–12 px on fits where neuropil components were most of them (strong neuropil), and let
them pass (F1 at IoU > 0.3 .60–.70 against .74–.80 with the cells' median, two of six unseen movies).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.trace_shape import skewness
from cnmflow.pixel_order import pixel_position

__all__ = ["COMPACT_RADIUS_FACTOR", "MIN_POPULATION", "SOMA_MIN_SKEW", "compact_shares", "not_compact"]

#: The disc a soma's footprint must hold its weight in: this many times the soma's radius.
COMPACT_RADIUS_FACTOR = 1.5
#: The footprints' median radius needs a population: with fewer components the radius is gSig's alone.
MIN_POPULATION = 10
#: A raw trace skewed at least this much is a cell's, whatever its footprint took up (module docstring).
SOMA_MIN_SKEW = 1.0


def _distances_squared(A: sp.csc_matrix, dims: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per footprint: its positive weights and their squared distances (px²) from its weighted centre."""
    A = sp.csc_matrix(A)
    weights, distances = [], []
    for k in range(A.shape[1]):
        start, stop = A.indptr[k], A.indptr[k + 1]
        w = np.clip(A.data[start:stop].astype(np.float64), 0.0, None)
        rows, cols = pixel_position(A.indices[start:stop], dims)
        total = w.sum()
        if total <= 0:
            weights.append(np.zeros(0))
            distances.append(np.zeros(0))
            continue
        r0, c0 = (w * rows).sum() / total, (w * cols).sum() / total
        weights.append(w)
        distances.append((rows - r0) ** 2 + (cols - c0) ** 2)
    return weights, distances


def compact_shares(A: sp.csc_matrix, dims: tuple[int, int], *, gsig: float,
                   somata: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(K,) each footprint's share of its positive weight within the soma's disc around its weighted centre (0 when
    empty), and that disc's radius (px; see the module docstring). ``somata`` ((K,) bool, default all): the
    components whose footprints give the typical radius."""
    weights, distances = _distances_squared(A, dims)
    radii = np.array([np.sqrt((w * d).sum() / w.sum()) if w.size else 0.0 for w, d in zip(weights, distances)])
    if somata is not None:
        radii = radii[np.asarray(somata, dtype=bool)]
    typical = float(np.median(radii)) if radii.size >= MIN_POPULATION else 0.0
    radius = COMPACT_RADIUS_FACTOR * max(float(gsig), typical)
    shares = [(w * (d <= radius * radius)).sum() / w.sum() if w.size else 0.0 for w, d in zip(weights, distances)]
    return np.asarray(shares, dtype=np.float64), radius


def not_compact(A: sp.csc_matrix, dims: tuple[int, int], *, gsig: float, compact_thr: float,
                raw_traces: np.ndarray) -> np.ndarray:
    """Indices of the components holding less than ``compact_thr`` of their footprint's weight within the soma's
    disc whose raw traces (denoised + residual, (K, T)) are skewed less than ``SOMA_MIN_SKEW``. The disc's typical
    radius is read on the skewed-up components alone: where neuropil components are most of a fit, their median
    would widen the disc until they pass."""
    if compact_thr <= 0 or A.shape[1] == 0:
        return np.zeros(0, dtype=int)
    skewed_up = skewness(raw_traces) >= SOMA_MIN_SKEW
    shares, _ = compact_shares(A, dims, gsig=gsig, somata=skewed_up)
    return np.flatnonzero((shares < compact_thr) & ~skewed_up)
