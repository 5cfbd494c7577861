"""How cnmflow flattens images: pixels in Fortran (column-major) order, as CaImAn users read them.

Footprint ``k`` of ``A`` (pixels, K) is the image ``A[:, k].reshape((rows, cols), order="F")``:
pixel ``(row, col)`` sits at index ``col * rows + row``. Movies stay ``(n_frames, rows, cols)``
in C order, so every move between the two layouts goes through this module (the engine, the
outputs and the scoring all read footprints this way). The helpers are reshapes and transposes
of views: they copy only where numpy must.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "image_to_column",
    "column_to_image",
    "images_to_columns",
    "columns_to_images",
    "frames_to_pixels",
    "pixels_to_frames",
    "pixel_index",
    "pixel_position",
    "c_order_index",
    "fortran_index",
    "to_fortran_rows",
]


def image_to_column(image: np.ndarray) -> np.ndarray:
    """(rows, cols) image → (rows*cols,) column in Fortran pixel order."""
    return np.asarray(image).ravel(order="F")


def column_to_image(column: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """(rows*cols,) Fortran-ordered column → (rows, cols) image (a view where possible)."""
    return np.asarray(column).reshape(dims, order="F")


def images_to_columns(images: np.ndarray) -> np.ndarray:
    """(K, rows, cols) stack of images → (rows*cols, K) columns, e.g. dense footprints ``A``."""
    return frames_to_pixels(np.asarray(images)).T


def columns_to_images(columns: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """(rows*cols, K) Fortran-ordered columns (dense) → (K, rows, cols) stack of images."""
    return pixels_to_frames(np.asarray(columns).T, dims)


def frames_to_pixels(frames: np.ndarray) -> np.ndarray:
    """(n, rows, cols) frames → (n, rows*cols) with pixels in Fortran order."""
    n = frames.shape[0]
    return frames.transpose(0, 2, 1).reshape(n, -1)


def pixels_to_frames(matrix: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """(n, rows*cols) Fortran-ordered pixels → (n, rows, cols) frames."""
    rows, cols = dims
    return matrix.reshape(matrix.shape[0], cols, rows).transpose(0, 2, 1)


def pixel_index(row, col, dims: tuple[int, int]):
    """Fortran index of pixel ``(row, col)`` (ints or broadcastable integer arrays): ``col * rows + row``."""
    return col * dims[0] + row


def pixel_position(index, dims: tuple[int, int]):
    """``(row, col)`` of Fortran pixel index ``index`` (int or integer array): the inverse of :func:`pixel_index`."""
    return index % dims[0], index // dims[0]


def c_order_index(row, col, dims: tuple[int, int]):
    """C (row-major) index of pixel ``(row, col)``: where it sits in ``frame.ravel()``."""
    return row * dims[1] + col


def fortran_index(dims: tuple[int, int]) -> np.ndarray:
    """For each pixel in C (row-major) order, its index in Fortran (column-major) order:
    ``A[fortran_index(dims)]`` gives footprint rows in the order of ``frames.reshape(n, -1)``."""
    rows, cols = dims
    return np.arange(rows * cols).reshape((cols, rows)).T.ravel()


def to_fortran_rows(X: np.ndarray, to_fortran: np.ndarray) -> np.ndarray:
    """The rows of a C-pixel-ordered ``X`` in Fortran order (the inverse of indexing by ``fortran_index``)."""
    out = np.empty_like(X)
    out[to_fortran] = X
    return out
