"""What both scorers (:mod:`cnmflow.scoring`, :mod:`cnmflow.shape_scoring`) accept, and how they correlate traces.

Footprints come as (K, rows, cols) images or a (rows*cols, K) matrix in Fortran pixel order
(dense or sparse, then with ``dims``); traces as (K, n_frames). Bad shapes are a ParameterError
naming the argument.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from cnmflow.errors import ParameterError

__all__ = ["footprint_columns", "trace_rows", "pearson"]


def footprint_columns(footprints, dims, name: str) -> tuple[scipy.sparse.csc_matrix, tuple[int, int]]:
    """Return a (rows*cols, K) CSC matrix in Fortran pixel order and the dims."""
    if scipy.sparse.issparse(footprints):
        if dims is None:
            raise ParameterError(f"{name} is a sparse (pixels, K) matrix: pass dims=(rows, cols) to score().")
        mat = scipy.sparse.csc_matrix(footprints, dtype=np.float64)
    else:
        arr = np.asarray(footprints, dtype=np.float64)
        if arr.ndim == 3:
            k, rows, cols = arr.shape
            if dims is not None and tuple(int(d) for d in dims) != (rows, cols):
                raise ParameterError(
                    f"{name} has frames of {rows}x{cols} but dims={tuple(dims)!r}: make them agree or omit dims."
                )
            dims = (rows, cols)
            mat = scipy.sparse.csc_matrix(arr.transpose(0, 2, 1).reshape(k, rows * cols).T)
        elif arr.ndim == 2:
            if dims is None:
                raise ParameterError(f"{name} is a 2-D (pixels, K) array: pass dims=(rows, cols) to score().")
            mat = scipy.sparse.csc_matrix(arr)
        else:
            raise ParameterError(
                f"{name} has shape {arr.shape}: give (K, rows, cols) or a (rows*cols, K) matrix with dims."
            )
    try:
        rows, cols = (int(d) for d in dims)
    except (TypeError, ValueError):
        raise ParameterError(f"dims={dims!r} is not allowed: give (rows, cols).") from None
    if mat.shape[0] != rows * cols:
        raise ParameterError(
            f"{name} has {mat.shape[0]} pixel rows but dims={rows}x{cols} means {rows * cols}: "
            "pass (rows*cols, K) in Fortran pixel order, or (K, rows, cols)."
        )
    return mat, (rows, cols)


def trace_rows(traces, k: int, name: str) -> np.ndarray:
    """``traces`` as a float64 (K, n_frames) array, one row per footprint (one trace may come 1-D when K = 1)."""
    if scipy.sparse.issparse(traces):
        traces = traces.toarray()
    arr = np.asarray(traces, dtype=np.float64)
    if arr.ndim == 1 and k == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] != k:
        raise ParameterError(f"{name} has shape {arr.shape}: give (K, n_frames) with K = {k} (one row per footprint).")
    return arr


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two traces; NaN when either is constant."""
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")
