"""The motion-corrected movie, split back per input movie: ``motion_corrected.{k}.tif`` or ``.isxd``.

As the IDEAS motion-correction tool writes them: float32 frames, an isxd input's own timing and
spacing (so ``input.timing == output.timing``), a tif/avi input as an ImageJ TIFF whose frame
interval is 1/fr. Each file is written under a temporary name and renamed into place, so a
killed writer leaves no file that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnmflow.atomic_write import atomic_path
from cnmflow.isx_package import isx_package
from cnmflow.movies.info import MovieInfo
from cnmflow.outputs.isxd_sets import output_spacing, output_timing

#: Frames written at a time (a float32 chunk of a 512x512 movie is 64 MB).
CHUNK_FRAMES = 64


def write_corrected_movie(path: str | os.PathLike, frames: np.ndarray, movie: MovieInfo, *, fr: float,
                          dxy: float) -> Path:
    """Write ``frames`` (n, rows, cols), movie ``movie``'s part of the corrected series, to ``path``."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        if path.suffix == ".isxd":
            _write_isxd(tmp, frames, movie, fr=fr, dxy=dxy)
        else:
            _write_tif(tmp, frames, fr=fr)
    return path


def _write_tif(path: Path, frames: np.ndarray, *, fr: float) -> None:
    import tifffile

    n, rows, cols = frames.shape
    with tifffile.TiffWriter(path, bigtiff=4 * n * rows * cols > 2**31, imagej=True) as tif:
        def chunks():
            for start in range(0, n, CHUNK_FRAMES):
                yield from np.asarray(frames[start:start + CHUNK_FRAMES], dtype=np.float32)

        tif.write(chunks(), shape=(n, rows, cols), dtype=np.float32,
                  metadata={"axes": "TYX", "finterval": 1.0 / fr})


def _write_isxd(path: Path, frames: np.ndarray, movie: MovieInfo, *, fr: float, dxy: float) -> None:
    written = isx_package().Movie.write(str(path), output_timing(movie, fr=fr), output_spacing(movie, dxy=dxy), np.float32)
    for start in range(0, frames.shape[0], CHUNK_FRAMES):
        block = np.asarray(frames[start:start + CHUNK_FRAMES], dtype=np.float32)
        for offset, frame in enumerate(block):
            written.set_frame_data(start + offset, frame)
    written.flush()
