"""Image files of the outputs (``local_corr_img.tif``) and the atomic-write helper they share.

Every file is written under a temporary name in the destination folder and renamed into
place, so a reader (or a crashed run) never sees a half-written file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

__all__ = ["atomic_path", "write_correlation_tif"]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    The temporary name keeps the suffix of ``path`` (``.name.tmp-<hex>.svg``) so writers that
    look at the extension still work.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:12]}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        # on success tmp no longer exists; on failure remove whatever was written
        tmp.unlink(missing_ok=True)


def write_correlation_tif(path: Path, correlation: np.ndarray) -> Path:
    """Write the correlation image as a float32 ``(rows, cols)`` TIFF (``local_corr_img.tif``).

    Values are written as they are (NaN kept); the input is not modified. Returns ``path``.
    """
    path = Path(path)
    image = np.asarray(correlation)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"correlation image must be a non-empty (rows, cols) array, got shape {image.shape}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, photometric="minisblack")
    return path
