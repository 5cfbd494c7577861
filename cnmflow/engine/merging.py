"""Merging components that are one neuron found twice (overlapping footprints, correlated traces)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from cnmflow.engine.patches import footprint_similarity


#: Footprint cosine similarity above which components from two patches may be one neuron.
DUPLICATE_SIMILARITY = 0.6


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
        groups = _groups(merging_pairs(A, C, merge_thr))
        if not groups:
            break
        A, C, origins = _merge_groups(A, C, groups, iterations=rank1_iterations)
        groups_so_far = [tuple(sorted(i for k in origin for i in groups_so_far[k])) for origin in origins]
        all_merges.extend(groups_so_far[len(groups_so_far) - len(groups):])
    return MergeResult(A=A, C=C, merged_groups=tuple(all_merges))


def merge_duplicates(A: sp.spmatrix, C: np.ndarray, owners: np.ndarray, *, merge_thr: float,
                     min_similarity: float = DUPLICATE_SIMILARITY, rank1_iterations: int = 10,
                     cut: np.ndarray | None = None) -> MergeResult:
    """One neuron found by several patches (``owners``: the patch of each component) → one component.

    Copies come from different patches, look alike (footprint cosine similarity at least
    ``min_similarity``; a copy cut by its patch's edge still shares most of the neuron) and
    carry the same activity (traces correlating above ``merge_thr``).

    ``cut`` ((K,) bool): whether each footprint reaches a side of its patch inside the field of view. Where a
    group holds a copy its patch did not cut, the merged footprint keeps to the support of the smallest such copy:
    a patch whose background could not follow the neuropil lends its copy a skirt of it, and the union of the
    copies' pixels carried every skirt into the merge (realistic 2P movies: 3–6 groups per 256² fit, the
    merged footprint's IoU with its neuron .9 → .1–.4). Copies that are all cut are joined over their union.
    """
    A = sp.csc_matrix(A, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    owners = np.asarray(owners)
    pairs = (footprint_similarity(A) >= min_similarity) & _correlated(C, merge_thr)
    groups = _groups(pairs & (owners[:, None] != owners[None, :]))
    if not groups:
        return MergeResult(A=A, C=C, merged_groups=())
    supports = None if cut is None else [_whole_copy_support(A, group, np.asarray(cut, bool)) for group in groups]
    A, C, origins = _merge_groups(A, C, groups, iterations=rank1_iterations, supports=supports)
    return MergeResult(A=A, C=C, merged_groups=tuple(origins[len(origins) - len(groups):]))


def _whole_copy_support(A: sp.csc_matrix, group: np.ndarray, cut: np.ndarray) -> np.ndarray | None:
    """The pixels of the group's smallest copy that its patch did not cut (None: every copy is cut)."""
    whole = group[~cut[group]]
    if whole.size == 0:
        return None
    sizes = np.diff(A.indptr)[whole]
    core = int(whole[np.argmin(sizes)])
    return A.indices[A.indptr[core]:A.indptr[core + 1]]


def merge_groups(A: sp.spmatrix, C: np.ndarray, groups: list[np.ndarray], *,
                 rank1_iterations: int = 10) -> MergeResult:
    """Each of ``groups`` (disjoint input indices) → one component, as :func:`merge_components` combines a group
    (the rank-1 non-negative factorization of its summed ``a_k c_k``), appended after the untouched components:
    for groups another rule found (a pair on one soma, :func:`cnmflow.engine.in_focus.weak_soma_pairs`)."""
    A = sp.csc_matrix(A, dtype=np.float32)
    C = np.asarray(C, dtype=np.float32)
    if not groups:
        return MergeResult(A=A, C=C, merged_groups=())
    A, C, origins = _merge_groups(A, C, groups, iterations=rank1_iterations)
    return MergeResult(A=A, C=C, merged_groups=tuple(origins[len(origins) - len(groups):]))


def connected_groups(pairs: list[tuple[int, int]], n: int) -> list[np.ndarray]:
    """The connected groups (of two or more, ascending indices) of ``pairs`` among ``n`` components."""
    linked = np.zeros((n, n), bool)
    for j, k in pairs:
        linked[j, k] = linked[k, j] = True
    return _groups(linked)


def merging_pairs(A: sp.spmatrix, C: np.ndarray, merge_thr: float) -> np.ndarray:
    """(K, K) the pairs :func:`merge_components` joins: footprints that share a pixel, traces correlating above
    ``merge_thr``."""
    return _overlapping(sp.csc_matrix(A)) & _correlated(np.asarray(C), merge_thr)


def _overlapping(A: sp.csc_matrix) -> np.ndarray:
    binary = (A > 0).astype(np.float32)
    return (binary.T @ binary).toarray() > 0


def _correlated(C: np.ndarray, merge_thr: float) -> np.ndarray:
    n = C.shape[0]
    corr = np.corrcoef(C) if C.shape[1] > 1 and n > 1 else np.zeros((n, n))
    return np.nan_to_num(np.atleast_2d(corr), nan=0.0) > merge_thr


def _groups(pairs: np.ndarray) -> list[np.ndarray]:
    """Connected groups (of two or more) of the symmetric ``pairs`` relation."""
    pairs = pairs.copy()
    if pairs.shape[0] < 2:
        return []
    np.fill_diagonal(pairs, False)
    n_groups, labels = connected_components(sp.csr_matrix(pairs), directed=False)
    groups = [np.flatnonzero(labels == label) for label in range(n_groups)]
    return [group for group in groups if group.size > 1]


def _merge_groups(A: sp.csc_matrix, C: np.ndarray, groups: list[np.ndarray], *, iterations: int,
                  supports: list[np.ndarray | None] | None = None
                  ) -> tuple[sp.csc_matrix, np.ndarray, list[tuple[int, ...]]]:
    """Each group → its rank-1 merge (over ``supports[i]``'s pixels where given, else the group's), appended after
    the untouched components; ``origins`` maps every output component to the input indices it came from."""
    merged_ids = set(np.concatenate(groups).tolist())
    keep = [k for k in range(A.shape[1]) if k not in merged_ids]
    new_columns, new_traces = [], []
    for index, group in enumerate(groups):
        pixels = None if supports is None else supports[index]
        column, trace = _rank1_merge(A[:, group], C[group], iterations=iterations, pixels=pixels)
        new_columns.append(column)
        new_traces.append(trace)
    A = sp.hstack([A[:, keep], sp.csc_matrix(np.column_stack(new_columns))], format="csc")
    C = np.vstack([C[keep], np.vstack(new_traces)]).astype(np.float32)
    origins = [(k,) for k in keep] + [tuple(int(k) for k in group) for group in groups]
    return A, C, origins


def _rank1_merge(A_group: sp.csc_matrix, C_group: np.ndarray, *, iterations: int,
                 pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best non-negative a·c ≈ Σ a_k c_k over ``pixels`` (default: the group's), by alternating least squares."""
    pixels = np.unique(A_group.indices) if pixels is None else np.asarray(pixels)
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
