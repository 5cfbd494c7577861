"""Merging components that are one neuron found twice (overlapping footprints, correlated traces)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True)
class MergeResult:
    A: sp.csc_matrix        # (pixels, K') footprints after merging
    C: np.ndarray           # (K', T) traces after merging
    merged_groups: tuple[tuple[int, ...], ...]   # input indices merged into one component


def merge_components(A: sp.spmatrix, C: np.ndarray, *, merge_thr: float, max_rounds: int = 5,
                     rank1_iterations: int = 10) -> MergeResult:
    """Merge groups of spatially overlapping components whose traces correlate above ``merge_thr``.

    Each connected group of such pairs becomes one component: the rank-1 non-negative
    factorization of the group's summed ``a_k c_k`` (restricted to the pixels of the group).
    Repeats until nothing merges, since a merged trace may now correlate with a neighbour.
    """
    A = sp.csc_matrix(A, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    groups_so_far: list[tuple[int, ...]] = [(k,) for k in range(A.shape[1])]
    all_merges: list[tuple[int, ...]] = []
    for _ in range(max_rounds):
        groups = _merge_groups(A, C, merge_thr=merge_thr)
        if not groups:
            break
        merged_ids = set(np.concatenate(groups).tolist())
        keep = [k for k in range(A.shape[1]) if k not in merged_ids]
        new_columns, new_traces, new_origins = [], [], []
        for group in groups:
            column, trace = _rank1_merge(A[:, group], C[group], iterations=rank1_iterations)
            new_columns.append(column)
            new_traces.append(trace)
            origin = tuple(sorted(i for k in group for i in groups_so_far[k]))
            new_origins.append(origin)
            all_merges.append(origin)
        A = sp.hstack([A[:, keep], sp.csc_matrix(np.column_stack(new_columns))], format="csc")
        C = np.vstack([C[keep], np.vstack(new_traces)]).astype(np.float32)
        groups_so_far = [groups_so_far[k] for k in keep] + new_origins
    return MergeResult(A=A, C=C, merged_groups=tuple(all_merges))


def _merge_groups(A: sp.csc_matrix, C: np.ndarray, *, merge_thr: float) -> list[np.ndarray]:
    n = A.shape[1]
    if n < 2:
        return []
    binary = (A > 0).astype(np.float32)
    overlap = (binary.T @ binary).toarray() > 0
    corr = np.corrcoef(C) if C.shape[1] > 1 else np.zeros((n, n))
    corr = np.nan_to_num(corr, nan=0.0)
    pairs = overlap & (corr > merge_thr)
    np.fill_diagonal(pairs, False)
    n_groups, labels = connected_components(sp.csr_matrix(pairs), directed=False)
    groups = [np.flatnonzero(labels == label) for label in range(n_groups)]
    return [group for group in groups if group.size > 1]


def _rank1_merge(A_group: sp.csc_matrix, C_group: np.ndarray, *, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Best non-negative a·c ≈ Σ a_k c_k over the group's pixels, by alternating least squares."""
    pixels = np.unique(A_group.indices)
    local = A_group[pixels].toarray().astype(np.float64)          # (n_pixels, group)
    traces = C_group.astype(np.float64)                           # (group, T)
    weights = np.linalg.norm(local, axis=0)
    a = local @ weights / max(weights @ weights, 1e-12)           # norm-weighted mean footprint
    c = np.zeros(traces.shape[1])
    for _ in range(iterations):
        # c = max(0, aᵀ Y / aᵀa); a = max(0, Y c / cᵀc) without forming Y.
        c = np.maximum((a @ local) @ traces / max(a @ a, 1e-12), 0.0)
        if not c.any():
            break
        a = np.maximum(local @ (traces @ c) / max(c @ c, 1e-12), 0.0)
    column = np.zeros(A_group.shape[0], dtype=np.float32)
    column[pixels] = a
    return column, c.astype(np.float32)
