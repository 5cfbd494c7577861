"""Image files of the outputs: ``local_corr_img.tif``, the correlation image of the whole series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from cnmflow.atomic_write import atomic_path

__all__ = ["write_correlation_tif"]


def write_correlation_tif(path: Path, correlation: np.ndarray) -> Path:
    """Write the correlation image as a float32 ``(rows, cols)`` TIFF (``local_corr_img.tif``).

    Values are written as they are (NaN kept); the input is not modified. Returns ``path``.
    """
    path = Path(path)
    image = np.asarray(correlation)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"correlation image must be a non-empty (rows, cols) array, got shape {image.shape}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    with atomic_path(path, suffix=path.suffix) as tmp:
        tifffile.imwrite(tmp, image, photometric="minisblack")
    return path
