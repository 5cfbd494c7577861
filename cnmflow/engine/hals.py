"""Hierarchical alternating least squares (HALS) updates of footprints and traces.

Both updates only need small sufficient statistics of the background-subtracted movie
(``U = Aᵀ Ỹ`` for traces, ``P = Ỹ Cᵀ`` for footprints), which streaming code accumulates frame
chunk by frame chunk; the updates themselves never touch the movie (Cichocki & Phan 2009, as
used for CNMF-E by Zhou et al. 2018).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from cnmflow.pixel_order import column_to_image, image_to_column


def update_traces(C: np.ndarray, U: np.ndarray, V: np.ndarray, *, iterations: int = 3) -> np.ndarray:
    """Non-negative traces minimising ‖Ỹ − A C‖² given ``U = Aᵀ Ỹ`` (K, T) and ``V = Aᵀ A`` (K, K)."""
    C = np.array(C, dtype=np.float64, copy=True)
    diag = np.maximum(np.diag(V), np.finfo(float).tiny)
    for _ in range(iterations):
        for k in range(C.shape[0]):
            C[k] = np.maximum(C[k] + (U[k] - V[k] @ C) / diag[k], 0.0)
    return C


def update_footprints(A: np.ndarray, P: np.ndarray, Q: np.ndarray, support: np.ndarray, *,
                      iterations: int = 3) -> np.ndarray:
    """Non-negative footprints on ``support`` given ``P = Ỹ Cᵀ`` (pixels, K) and ``Q = C Cᵀ`` (K, K)."""
    A = np.array(A, dtype=np.float64, copy=True)
    diag = np.maximum(np.diag(Q), np.finfo(float).tiny)
    for _ in range(iterations):
        for k in range(A.shape[1]):
            column = A[:, k] + (P[:, k] - A @ Q[:, k]) / diag[k]
            A[:, k] = np.where(support[:, k], np.maximum(column, 0.0), 0.0)
    return A


def dilated_support(A: np.ndarray, dims: tuple[int, int], *, radius: int) -> np.ndarray:
    """Where each footprint may grow: its non-zero pixels dilated by a disc of ``radius`` pixels."""
    support = np.zeros(A.shape, dtype=bool)
    for k in range(A.shape[1]):
        support[:, k] = dilate_footprint(A[:, k], dims, radius=radius)
    return support


def dilate_footprint(column: np.ndarray, dims: tuple[int, int], *, radius: int) -> np.ndarray:
    """(pixels,) mask: one Fortran-ordered footprint's non-zero pixels dilated by a disc of ``radius``.

    The pixels within Euclidean distance ``radius`` of a non-zero pixel: the same set as a binary
    dilation by the disc ``dy² + dx² ≤ radius²``, from one distance transform whatever the radius
    (a dilation's cost grows with the disc's area; at 2·gSig = 12 px it was ~3 ms a footprint).
    """
    image = column_to_image(column, dims) > 0
    if not image.any():
        return np.zeros(np.asarray(column).shape, dtype=bool)
    return image_to_column(ndi.distance_transform_edt(~image) <= radius)


def clean_footprint(column: np.ndarray, dims: tuple[int, int], *, energy: float = 0.9999,
                    max_fraction: float = 0.1, supported: np.ndarray | None = None) -> np.ndarray:
    """Median-smooth a footprint, drop pixels under ``max_fraction`` of its peak, keep the pixels
    holding ``energy`` of the rest and its largest connected part (CaImAn's maxthr / nrgthr).

    ``supported`` (pixels,) bool, Fortran order: where the data supports the footprint (see
    ``footprint_shape.supported_pixels``); only those pixels are kept, so a footprint ends where
    the data stops showing it rather than at a fixed fraction of its peak (``max_fraction`` is
    then only a floor, or 0).
    """
    image = ndi.median_filter(column_to_image(column, dims), size=3, mode="nearest")
    peak = image.max()
    if peak <= 0:
        return np.zeros_like(column)
    keep = image >= max_fraction * peak
    if supported is not None:
        keep &= column_to_image(supported, dims)
    image = np.where(keep, image, 0.0)
    if not image.any():
        return np.zeros_like(column)
    values = np.sort(image.ravel())[::-1]
    cumulative = np.cumsum(values ** 2)
    cutoff = values[min(np.searchsorted(cumulative, energy * cumulative[-1]), values.size - 1)]
    kept = image >= max(cutoff, np.finfo(np.float32).tiny)
    labels, n_labels = ndi.label(kept)
    if n_labels > 1:
        sizes = ndi.sum(image, labels, index=np.arange(1, n_labels + 1))
        kept = labels == (1 + int(np.argmax(sizes)))
    return image_to_column(np.where(kept, image, 0.0))


def update_footprints_with_surround(A: np.ndarray, P: np.ndarray, Q: np.ndarray, support: np.ndarray, *,
                                    iterations: int = 3) -> np.ndarray:
    """Non-negative footprints (pixels, K) fitted jointly with a non-negative map of each one's
    surround trace on the same support, given ``P = Ỹ·[C; R]ᵀ`` (pixels, 2K) and
    ``Q = [C; R]·[C; R]ᵀ`` (2K, 2K), ``R`` (K, T) the residual light around each footprint.

    A trace carries some of the unmodelled light around its cell (out-of-focus cells, neuropil);
    a footprint regressed on it alone takes that light's broad shape. With the surround's trace in
    the regression a pixel's weight is the neuron's share only. Returns the footprints and maps,
    (pixels, 2K).
    """
    fitted = np.hstack([np.asarray(A, dtype=np.float64), np.zeros(A.shape)])
    supports = np.hstack([support, support])
    rows = [np.flatnonzero(column) for column in supports.T]
    diag = np.maximum(np.diag(Q), np.finfo(float).tiny)
    for _ in range(iterations):
        for k, index in enumerate(rows):      # only the support's rows: the rest stay 0
            fitted[index, k] = np.maximum(fitted[index, k] + (P[index, k] - fitted[index] @ Q[:, k]) / diag[k], 0.0)
    return fitted
