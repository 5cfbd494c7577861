"""Accuracy of estimated components against ground truth (the metric the papers report).

Each footprint is binarised at ``threshold × its max``; the cost of pairing a true and an
estimated component is ``1 − IoU`` of the binary masks; pairs whose centroids (centre of
mass of the non-negative footprint weights) are ``max_distance`` px apart or more are
forbidden; the Hungarian algorithm picks the assignment, and a pair counts as a match when
its cost is below ``max_cost`` (IoU > 0.3 by default).

The assignment maximises the number of valid matches first and minimises their total cost
second (invalid pairs get a cost larger than any set of valid pairs), so a poor pair never
displaces a valid one.

Conventions for empty sets: precision = matched / estimated and recall = matched / true,
each defined as 0 when its denominator is 0; F1 = 0 when precision + recall = 0. So an empty
estimate scores precision 0, recall 0, F1 0 (and an empty truth with an empty estimate too).
``median_trace_corr`` is NaN when nothing matched or no traces were given; ``trace_corrs``
has one entry per match (NaN when traces were not given or a trace is constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.optimize import linear_sum_assignment

from cnmflow.errors import ParameterError
from cnmflow.score_inputs import footprint_columns, pearson, trace_rows

__all__ = ["Score", "score"]


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class Score:
    precision: float
    recall: float
    f1: float
    n_true: int
    n_estimated: int
    n_matched: int
    median_trace_corr: float  # NaN when nothing matched (or no traces given)
    matches: tuple[tuple[int, int], ...]  # (true index, estimated index), sorted by true index
    trace_corrs: np.ndarray  # (n_matched,) Pearson r per match, same order as matches

    def summary(self) -> dict:
        """Plain-float dict (for logging / MLflow metrics)."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "n_true": self.n_true,
            "n_estimated": self.n_estimated,
            "n_matched": self.n_matched,
            "median_trace_corr": self.median_trace_corr,
        }


def _masks_and_centroids(mat: scipy.sparse.csc_matrix, dims, threshold: float):
    rows, cols = dims
    k = mat.shape[1]
    pos = scipy.sparse.csc_matrix(mat.maximum(0))  # a new matrix: the input is never modified
    pos.eliminate_zeros()
    maxes = pos.max(axis=0).toarray().ravel() if k else np.zeros(0)
    # binarise column by column on the stored entries (threshold relative to each max)
    coo = pos.tocoo()
    keep = (coo.data > 0) & (coo.data >= threshold * maxes[coo.col])
    masks = scipy.sparse.csc_matrix(
        (np.ones(int(keep.sum())), (coo.row[keep], coo.col[keep])), shape=(rows * cols, k)
    )
    sizes = np.asarray(masks.sum(axis=0)).ravel()
    # centroids from the non-negative weights; pixel index p = col*rows + row (Fortran)
    pix = np.arange(rows * cols)
    r_coord = (pix % rows).astype(np.float64)
    c_coord = (pix // rows).astype(np.float64)
    w = np.asarray(pos.sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        cr = (pos.T @ r_coord) / w
        cc = (pos.T @ c_coord) / w
    centroids = np.column_stack([cr, cc]) if k else np.zeros((0, 2))
    return masks, sizes, centroids


def score(
    truth_footprints,
    estimated_footprints,
    *,
    truth_traces=None,
    estimated_traces=None,
    dims=None,
    threshold: float = 0.2,
    max_cost: float = 0.7,
    max_distance: float = 10.0,
) -> Score:
    """Match estimated components to true ones and score them (see the module docstring).

    Footprints: ``(K, rows, cols)`` dense arrays, or ``(rows*cols, K)`` sparse/dense matrices
    in Fortran pixel order (then ``dims=(rows, cols)`` is required). Traces: ``(K, n_frames)``,
    optional; when both are given, ``trace_corrs`` holds the Pearson correlation of each
    matched pair.
    """
    if not (0.0 <= float(threshold) < 1.0):
        raise ParameterError(f"threshold={threshold!r} is not allowed: give a fraction of the max in [0, 1).")
    if not (0.0 < float(max_cost) <= 1.0):
        raise ParameterError(f"max_cost={max_cost!r} is not allowed: give a value in (0, 1] (1 − IoU).")
    if not float(max_distance) > 0:
        raise ParameterError(f"max_distance={max_distance!r} is not allowed: give a distance in pixels > 0.")
    ta, dims_t = footprint_columns(truth_footprints, dims, "truth_footprints")
    ea, dims_e = footprint_columns(estimated_footprints, dims if dims is not None else dims_t, "estimated_footprints")
    if dims_t != dims_e:
        raise ParameterError(
            f"truth_footprints are {dims_t[0]}x{dims_t[1]} but estimated_footprints are {dims_e[0]}x{dims_e[1]}: "
            "score footprints of the same field of view."
        )
    n_true, n_est = ta.shape[1], ea.shape[1]

    tt = et = None
    if (truth_traces is None) != (estimated_traces is None):
        raise ParameterError("give both truth_traces and estimated_traces, or neither.")
    if truth_traces is not None:
        tt = trace_rows(truth_traces, n_true, "truth_traces")
        et = trace_rows(estimated_traces, n_est, "estimated_traces")
        if tt.shape[1] != et.shape[1]:
            raise ParameterError(
                f"truth_traces have {tt.shape[1]} frames but estimated_traces have {et.shape[1]}: "
                "score traces of the same movie."
            )

    matches: list[tuple[int, int]] = []
    if n_true and n_est:
        mt, st, ct = _masks_and_centroids(ta, dims_t, float(threshold))
        me, se, ce = _masks_and_centroids(ea, dims_t, float(threshold))
        inter = (mt.T @ me).toarray()
        union = st[:, None] + se[None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        cost = 1.0 - iou
        dist = np.sqrt(((ct[:, None, :] - ce[None, :, :]) ** 2).sum(axis=2))
        valid = (cost < max_cost) & (dist < max_distance)  # NaN distances (empty footprints) are invalid
        big = float(min(n_true, n_est) + 1)  # more than any sum of valid costs
        rows_, cols_ = linear_sum_assignment(np.where(valid, cost, big))
        matches = sorted((int(i), int(j)) for i, j in zip(rows_, cols_) if valid[i, j])

    n_matched = len(matches)
    precision = n_matched / n_est if n_est else 0.0
    recall = n_matched / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    if tt is not None:
        corrs = np.array([pearson(tt[i], et[j]) for i, j in matches], dtype=np.float64)
    else:
        corrs = np.full(n_matched, np.nan)
    med = float(np.nanmedian(corrs)) if n_matched and np.isfinite(corrs).any() else float("nan")
    return Score(
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        n_true=int(n_true),
        n_estimated=int(n_est),
        n_matched=int(n_matched),
        median_trace_corr=med,
        matches=tuple(matches),
        trace_corrs=corrs,
    )
