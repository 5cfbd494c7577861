"""The series as the fit reads it: a single raw movie file in place, or one raw work file written chunk by chunk.

A single movie whose frames lie in its file as one raw block (an uncompressed TIFF, an isxd without
frame headers) is read where it lies: no work file, each chunk converted to float32 as it is read.
Anything else (a series, a compressed TIFF, an AVI, an isxd with dropped frames) is concatenated
into one raw file in the inputs' own integer type when they share one of at most 16 bits (exact
through float32, half the bytes of a float32 copy for uint16), else in float32.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cnmflow.atomic_write import atomic_path
from cnmflow.errors import MovieError
from cnmflow.movies.info import check_chunk
from cnmflow.movies.read import iter_chunks, raw_layout
from cnmflow.movies.series import MovieSeries

WORK_PREFIX = ".cnmflow-work-"


#: Integer types a work copy keeps as they are: every value is exact through float32.
EXACT_INTEGER_BYTES = 2


@dataclass(frozen=True)
class ConcatenatedMovie:
    """The series as one raw C-order (frames, rows, cols) file: a work copy, or the input itself.

    ``dtype`` is the type as stored, byte order included; ``offset`` the bytes before frame 0.
    ``in_place``: the file is the user's input movie, read where it lies; no run ever removes it.
    """

    path: Path
    shape: tuple[int, int, int]
    offsets: dict[int, tuple[int, int]]
    filled_frames: dict[int, tuple[int, ...]]
    dtype: str = "float32"
    offset: int = 0
    in_place: bool = False

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def open(self, mode: str = "r") -> np.memmap:
        """The movie as a (frames, rows, cols) memory map in its stored type (the engine reads it in
        float32 chunks); pass it on, slice it in chunks, do not read it whole."""
        return np.memmap(self.path, dtype=np.dtype(self.dtype), mode=mode, shape=self.shape, order="C",
                         offset=self.offset)


def in_place(series: MovieSeries) -> ConcatenatedMovie | None:
    """The series read where it lies, when it is one movie whose frames form a raw block; else None."""
    if len(series.movies) != 1 or series.movies[0].lost_frames:
        return None
    layout = raw_layout(series.movies[0])
    if layout is None:
        return None
    return ConcatenatedMovie(path=layout.path, shape=(series.n_frames, *series.frame_shape),
                             offsets=series.offsets(), filled_frames={}, dtype=layout.dtype.str,
                             offset=layout.offset, in_place=True)


def work_dtype(series: MovieSeries) -> np.dtype:
    """The type a work copy of ``series`` is stored in: the movies' common integer type when every
    value survives the float32 round trip and no frame is interpolated, else float32."""
    types = {np.dtype(movie.dtype) for movie in series.movies}
    if len(types) == 1 and not any(movie.lost_frames for movie in series.movies):
        (dtype,) = types
        if dtype.kind in "ui" and dtype.itemsize <= EXACT_INTEGER_BYTES:
            return dtype.newbyteorder("=")
    return np.dtype(np.float32)


@contextmanager
def work_directory(output_dir: str | os.PathLike) -> Iterator[Path]:
    """A private, uniquely named work directory inside `output_dir`, removed on exit (also on errors)."""
    output_dir = Path(os.fspath(output_dir)).expanduser()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=output_dir)).resolve()
    except OSError as exc:
        raise MovieError(f"cannot create a work directory in {output_dir} ({exc.strerror or exc}); "
                         "give a writable output directory") from None
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def concatenate(series: MovieSeries, work_dir: Path, *, chunk_frames: int = 256,
                progress: Callable[[str, float], None] | None = None) -> ConcatenatedMovie:
    """Stream every movie of `series` (in `series.order`) into one file in `work_dir`, in :func:`work_dtype`."""
    chunk_frames = check_chunk(chunk_frames)
    work_dir = Path(work_dir)
    rows, cols = series.frame_shape
    total = series.n_frames
    offsets = series.offsets()
    dtype = work_dtype(series)
    final = work_dir / f"concatenated_{total}x{rows}x{cols}.{dtype.name}"
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as out:
            done = 0
            for k in series.order:
                info = series.movies[k]
                written = 0
                for first, block in iter_chunks(info, chunk_frames=chunk_frames):
                    if first != written or block.shape[1:] != (rows, cols):
                        raise MovieError(f"{info.path}: unexpected block at frame {first} with shape {block.shape}; "
                                         "was the file changed while reading?")
                    out.write(np.ascontiguousarray(block, dtype=dtype).data)
                    written += block.shape[0]
                    done += block.shape[0]
                    if progress is not None:
                        progress("concatenate", done / total if total else 1.0)
                if written != info.n_frames:
                    raise MovieError(f"{info.path}: read {written} frames, expected {info.n_frames}; "
                                     "was the file changed while reading?")
    # lost frames come interpolated from the reader (movies.frame_fill): recorded here for the run's report
    filled = {k: info.lost_frames for k, info in enumerate(series.movies) if info.lost_frames}
    return ConcatenatedMovie(path=final, shape=(total, rows, cols), offsets=offsets, filled_frames=filled,
                             dtype=dtype.str)
