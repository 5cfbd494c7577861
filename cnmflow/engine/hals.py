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
    near = distance_within(column_to_image(column, dims) > 0, reach=radius)
    if near is None:
        return np.zeros(np.asarray(column).shape, dtype=bool)
    box, distance = near
    out = np.zeros(dims, dtype=bool)
    out[box] = distance <= radius
    return image_to_column(out)


def distance_within(image: np.ndarray, *, reach: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """(box, distance): each pixel's Euclidean distance to ``image``'s nearest True pixel, on the box
    of ``image`` that holds every pixel within ``reach`` of one (None when ``image`` has none). One
    distance transform on that box, not on the whole patch: outside it every distance exceeds ``reach``."""
    box = nonzero_box(image, margin=int(np.floor(reach)) + 1)
    if box is None:
        return None
    return box, ndi.distance_transform_edt(~image[box])


def nonzero_box(image: np.ndarray, *, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of ``image``'s non-zero pixels grown by ``margin`` (cut at the image's
    edges), or None when it has none: per-footprint image operations whose result is zero
    farther out work on this box, not on the whole patch (issue #22)."""
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    if rows.size == 0:
        return None
    return (slice(max(int(rows[0]) - margin, 0), int(rows[-1]) + margin + 1),
            slice(max(int(cols[0]) - margin, 0), int(cols[-1]) + margin + 1))


def clean_footprint(column: np.ndarray, dims: tuple[int, int], *, energy: float = 0.9999,
                    max_fraction: float = 0.1, supported: np.ndarray | None = None) -> np.ndarray:
    """Median-smooth a footprint, drop pixels under ``max_fraction`` of its peak, keep the pixels
    holding ``energy`` of the rest and its largest connected part (CaImAn's maxthr / nrgthr).

    ``supported`` (pixels,) bool, Fortran order: where the data supports the footprint (see
    ``footprint_shape.supported_pixels``); only those pixels are kept, so a footprint ends where
    the data stops showing it rather than at a fixed fraction of its peak (``max_fraction`` is
    then only a floor, or 0).

    Computed on the footprint's bounding box grown by 2 px: beyond its first pixel outside, every
    3×3 window holds at most 3 non-zero pixels of 9, so the median — and all that follows — is 0.
    """
    image = column_to_image(column, dims)
    box = nonzero_box(image, margin=2)
    if box is None:
        return np.zeros_like(column)
    cleaned = _clean_image(image[box], energy=energy, max_fraction=max_fraction,
                           supported=None if supported is None else column_to_image(supported, dims)[box])
    if cleaned is None:
        return np.zeros_like(column)
    out = np.zeros(dims, dtype=cleaned.dtype)
    out[box] = cleaned
    return image_to_column(out)


def _clean_image(image: np.ndarray, *, energy: float, max_fraction: float,
                 supported: np.ndarray | None) -> np.ndarray | None:
    """:func:`clean_footprint` on an image (a box holding the footprint); None when nothing is kept."""
    image = ndi.median_filter(image, size=3, mode="nearest")
    peak = image.max()
    if peak <= 0:
        return None
    keep = image >= max_fraction * peak
    if supported is not None:
        keep &= supported
    image = np.where(keep, image, 0.0)
    if not image.any():
        return None
    values = np.sort(image.ravel())[::-1]
    cumulative = np.cumsum(values ** 2)
    cutoff = values[min(np.searchsorted(cumulative, energy * cumulative[-1]), values.size - 1)]
    kept = image >= max(cutoff, np.finfo(np.float32).tiny)
    labels, n_labels = ndi.label(kept)
    if n_labels > 1:
        sizes = ndi.sum(image, labels, index=np.arange(1, n_labels + 1))
        kept = labels == (1 + int(np.argmax(sizes)))
    return np.where(kept, image, 0.0)


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
