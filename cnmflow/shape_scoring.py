"""Footprint-shape accuracy against ground truth: energy masks, IoU, duplicates.

:func:`cnmflow.scoring.score` asks whether each neuron was found (masks at 20% of the max,
IoU > 0.3). This module asks whether its *shape* was found, the figures of issue #16:

- **90%-energy mask** of a footprint: the fewest pixels holding ``fraction`` (0.9) of the
  footprint's energy, energy being the sum of its non-negative weights (brightest pixels
  first). A footprint with a long halo gets a large mask; one clipped to its core a small one.
- **IoU** of two masks: ``|A ∩ B| / |A ∪ B|``.
- **Matching**: Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on the cost
  ``1 − IoU`` among the pairs allowed at a threshold, the most matches first, then the least
  total cost (as in :func:`cnmflow.scoring.score`). ``f1_iou50`` allows IoU ≥ 0.5,
  ``f1_iou30`` IoU > 0.3. Precision = matches / estimated, recall = matches / true, F1 their
  harmonic mean (0 when both are 0).
- Of the pairs matched at IoU > 0.3: ``median_iou``, ``median_trace_corr`` (Pearson r of
  the estimated and true traces), and the median 90%-energy mask areas (px) of the true and
  the estimated footprints.
- **Neurons covered by two or more components**: every estimated component is attributed to
  the neuron it is matched to at IoU > 0.3, and an unmatched one to the true neuron whose mask
  holds the most of its mask (largest ``|T_i ∩ E_j|``; none if it touches no neuron) — so a
  wide component that is its own neuron's match is not counted on the neighbour its mask
  reaches further into. It *covers* that neuron when their IoU is > ``cover_iou`` (0.3) or more
  than ``cover_overlap`` (0.5) of the component's mask lies inside the neuron's mask. A
  neuron covered by ≥ 2 components is counted in ``n_multiply_covered``; the components beyond
  the first are ``n_surplus``. Attributing each component to one neuron keeps a correctly
  found neighbour, whose mask overlaps this neuron's halo, from counting as a duplicate.

NaN stands for "nothing to take a median of" (no match, or no traces given).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.optimize import linear_sum_assignment

from cnmflow.engine.typical_size import pixels_holding
from cnmflow.errors import ParameterError
from cnmflow.score_inputs import footprint_columns, pearson, trace_rows

__all__ = ["ShapeScore", "energy_masks", "iou_matrix", "shape_score"]


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class ShapeScore:
    n_true: int
    n_estimated: int
    precision_iou50: float
    recall_iou50: float
    f1_iou50: float
    precision_iou30: float
    recall_iou30: float
    f1_iou30: float
    median_iou: float  # of the IoU > 0.3 matches
    median_trace_corr: float  # of the IoU > 0.3 matches
    median_area_true: float  # px, 90%-energy masks of the matched true footprints
    median_area_estimated: float  # px, of the matched estimated footprints
    n_multiply_covered: int
    n_surplus: int
    matches: tuple[tuple[int, int], ...]  # IoU > 0.3 matches (true, estimated), sorted by true index
    ious: np.ndarray  # (n_matches,) IoU of each match
    trace_corrs: np.ndarray  # (n_matches,) Pearson r, NaN without traces
    covering: dict  # true index -> tuple of estimated indices covering it (only those with ≥ 2)

    def summary(self) -> dict:
        """Plain numbers (for JSON and MLflow metrics)."""
        names = ("n_true", "n_estimated", "precision_iou50", "recall_iou50", "f1_iou50", "precision_iou30",
                 "recall_iou30", "f1_iou30", "median_iou", "median_trace_corr", "median_area_true",
                 "median_area_estimated", "n_multiply_covered", "n_surplus")
        return {name: getattr(self, name) for name in names}


def energy_masks(footprints, *, dims=None, fraction: float = 0.9) -> scipy.sparse.csc_matrix:
    """Binary masks holding ``fraction`` of each footprint's energy (sum of non-negative weights).

    Parameters
    ----------
    footprints : (K, rows, cols) array, or (rows*cols, K) matrix in Fortran pixel order with ``dims``
    fraction : float
        In (0, 1]: the share of the energy each mask must hold.

    Returns
    -------
    scipy.sparse.csc_matrix
        ``(rows*cols, K)`` of 0/1 (float64), Fortran pixel order; an all-zero footprint has an
        empty mask.
    """
    _check_fraction(fraction)
    mat, _ = footprint_columns(footprints, dims, "footprints")
    return _energy_masks(mat, float(fraction))


def iou_matrix(masks_a: scipy.sparse.spmatrix, masks_b: scipy.sparse.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersections (px) of every pair of binary masks, ``(K_a, K_b)`` each."""
    a = scipy.sparse.csc_matrix(masks_a)
    b = scipy.sparse.csc_matrix(masks_b)
    inter = (a.T @ b).toarray()
    union = np.asarray(a.sum(axis=0)).ravel()[:, None] + np.asarray(b.sum(axis=0)).ravel()[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou, inter


def shape_score(
    truth_footprints,
    estimated_footprints,
    *,
    truth_traces=None,
    estimated_traces=None,
    dims=None,
    fraction: float = 0.9,
    cover_iou: float = 0.3,
    cover_overlap: float = 0.5,
) -> ShapeScore:
    """Score the footprints' shapes (see the module docstring for every figure).

    Footprints: ``(K, rows, cols)`` arrays, or ``(rows*cols, K)`` matrices in Fortran pixel order
    with ``dims=(rows, cols)``. Traces: ``(K, n_frames)``, both or neither.
    """
    _check_fraction(fraction)
    for name, value in (("cover_iou", cover_iou), ("cover_overlap", cover_overlap)):
        if not 0.0 <= float(value) < 1.0:
            raise ParameterError(f"{name}={value!r} is not allowed: give a fraction in [0, 1).")
    ta, dims_t = footprint_columns(truth_footprints, dims, "truth_footprints")
    ea, dims_e = footprint_columns(estimated_footprints, dims if dims is not None else dims_t, "estimated_footprints")
    if dims_t != dims_e:
        raise ParameterError(f"truth_footprints are {dims_t} but estimated_footprints are {dims_e}: "
                             "score footprints of the same field of view.")
    if (truth_traces is None) != (estimated_traces is None):
        raise ParameterError("give both truth_traces and estimated_traces, or neither.")
    n_true, n_est = ta.shape[1], ea.shape[1]
    mt, me = _energy_masks(ta, float(fraction)), _energy_masks(ea, float(fraction))
    area_t, area_e = np.asarray(mt.sum(axis=0)).ravel(), np.asarray(me.sum(axis=0)).ravel()
    iou, inter = iou_matrix(mt, me)

    m50 = _assign(iou, iou >= 0.5)
    m30 = _assign(iou, iou > 0.3)
    p50, r50, f50 = _prf(len(m50), n_true, n_est)
    p30, r30, f30 = _prf(len(m30), n_true, n_est)
    ious = np.array([iou[i, j] for i, j in m30], dtype=np.float64)
    if truth_traces is not None:
        tt = trace_rows(truth_traces, n_true, "truth_traces")
        et = trace_rows(estimated_traces, n_est, "estimated_traces")
        if tt.shape[1] != et.shape[1]:
            raise ParameterError(f"truth_traces have {tt.shape[1]} frames but estimated_traces have {et.shape[1]}.")
        corrs = np.array([pearson(tt[i], et[j]) for i, j in m30], dtype=np.float64)
    else:
        corrs = np.full(len(m30), np.nan)
    covering = _covering(iou, inter, area_e, m30, cover_iou=float(cover_iou), cover_overlap=float(cover_overlap))
    return ShapeScore(
        n_true=int(n_true), n_estimated=int(n_est),
        precision_iou50=p50, recall_iou50=r50, f1_iou50=f50, precision_iou30=p30, recall_iou30=r30, f1_iou30=f30,
        median_iou=_median(ious), median_trace_corr=_median(corrs),
        median_area_true=_median(np.array([area_t[i] for i, _ in m30], dtype=np.float64)),
        median_area_estimated=_median(np.array([area_e[j] for _, j in m30], dtype=np.float64)),
        n_multiply_covered=len(covering), n_surplus=int(sum(len(js) - 1 for js in covering.values())),
        matches=tuple(m30), ious=ious, trace_corrs=corrs, covering=covering,
    )


def surplus_pairs(result: ShapeScore) -> list[tuple[int, int]]:
    """(neuron, component) for each surplus component: on a neuron covered twice, every component
    covering it but the neuron's own match (or but the first, when it has none)."""
    own = dict(result.matches)
    return sorted((i, j) for i, js in result.covering.items()
                  for j in ([j for j in js if j != own[i]] if i in own else list(js)[1:]))


def covered_twice_by_followers(result: ShapeScore, truth_traces, estimated_traces, *, min_r: float = 0.5) -> list[int]:
    """The neurons covered twice where a surplus component's trace also follows the neuron
    (Pearson r >= ``min_r``): duplicates in the sense of a copy of the neuron, as opposed to another
    source (an out-of-focus cell, neuropil) whose mask falls on the neuron's."""
    tt, et = np.atleast_2d(np.asarray(truth_traces)), np.atleast_2d(np.asarray(estimated_traces))
    return sorted({i for i, j in surplus_pairs(result) if pearson(tt[i], et[j]) >= min_r})


# --------------------------------------------------------------------------- helpers
def _check_fraction(fraction) -> None:
    if not 0.0 < float(fraction) <= 1.0:
        raise ParameterError(f"fraction={fraction!r} is not allowed: give the share of energy in (0, 1], e.g. 0.9.")


def _energy_masks(mat: scipy.sparse.csc_matrix, fraction: float) -> scipy.sparse.csc_matrix:
    pos = scipy.sparse.csc_matrix(mat.maximum(0))
    pos.eliminate_zeros()
    rows_out: list[np.ndarray] = []
    ptr = [0]
    for j in range(pos.shape[1]):
        values = pos.data[pos.indptr[j] : pos.indptr[j + 1]]
        pixels = pos.indices[pos.indptr[j] : pos.indptr[j + 1]]
        if values.size:
            order = np.argsort(-values, kind="stable")
            n = int(pixels_holding(values[order], fraction)[-1])
            rows_out.append(np.sort(pixels[order[:n]]))
        else:
            rows_out.append(np.zeros(0, dtype=np.int64))
        ptr.append(ptr[-1] + rows_out[-1].size)
    indices = np.concatenate(rows_out) if rows_out else np.zeros(0, dtype=np.int64)
    return scipy.sparse.csc_matrix((np.ones(indices.size), indices, np.array(ptr)), shape=pos.shape)


def _assign(iou: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """Most valid matches first, then the least total ``1 − IoU`` (invalid pairs cost more than all)."""
    if iou.size == 0 or not valid.any():
        return []
    big = float(min(iou.shape) + 1)
    rows, cols = linear_sum_assignment(np.where(valid, 1.0 - iou, big))
    return sorted((int(i), int(j)) for i, j in zip(rows, cols) if valid[i, j])


def _prf(n_matched: int, n_true: int, n_est: int) -> tuple[float, float, float]:
    p = n_matched / n_est if n_est else 0.0
    r = n_matched / n_true if n_true else 0.0
    return float(p), float(r), float(2 * p * r / (p + r)) if p + r > 0 else 0.0


def _covering(iou, inter, area_e, matches: list[tuple[int, int]], *, cover_iou: float, cover_overlap: float) -> dict:
    if inter.size == 0:
        return {}
    owner = np.argmax(inter, axis=0)  # the neuron holding most of each component's mask ...
    for i, j in matches:  # ... unless it is matched: then its own neuron
        owner[j] = i
    cols = np.arange(inter.shape[1])
    held = inter[owner, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.where(area_e > 0, held / area_e, 0.0)
    covers = (held > 0) & ((iou[owner, cols] > cover_iou) | (inside > cover_overlap))
    out: dict[int, list[int]] = {}
    for j in np.flatnonzero(covers):
        out.setdefault(int(owner[j]), []).append(int(j))
    return {i: tuple(js) for i, js in sorted(out.items()) if len(js) >= 2}


def _median(x: np.ndarray) -> float:
    return float(np.nanmedian(x)) if x.size and np.isfinite(x).any() else float("nan")
