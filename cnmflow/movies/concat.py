"""Concatenate a movie series into one float32 raw file, chunk by chunk, in a private work directory."""

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
from cnmflow.movies.read import iter_chunks
from cnmflow.movies.series import MovieSeries

WORK_PREFIX = ".cnmflow-work-"


@dataclass(frozen=True)
class ConcatenatedMovie:
    path: Path
    shape: tuple[int, int, int]
    offsets: dict[int, tuple[int, int]]
    filled_frames: dict[int, tuple[int, ...]]

    def open(self, mode: str = "r") -> np.memmap:
        """The movie as a (frames, rows, cols) float32 memory map."""
        return np.memmap(self.path, dtype=np.float32, mode=mode, shape=self.shape, order="C")


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


def _fill_invalid(mm: np.ndarray, first: int, n: int, invalid: tuple[int, ...]) -> None:
    """Replace invalid frames of one movie (frames first..first+n of `mm`) by linear interpolation
    between the nearest valid frames of the same movie (the nearest valid frame at the ends)."""
    bad = np.zeros(n, dtype=bool)
    bad[list(invalid)] = True
    valid = np.flatnonzero(~bad)
    for i in invalid:
        pos = np.searchsorted(valid, i)
        before = valid[pos - 1] if pos > 0 else None
        after = valid[pos] if pos < valid.size else None
        if before is None:
            mm[first + i] = mm[first + after]
        elif after is None:
            mm[first + i] = mm[first + before]
        else:
            w = (i - before) / (after - before)
            mm[first + i] = (1.0 - w) * mm[first + before] + w * mm[first + after]


def concatenate(series: MovieSeries, work_dir: Path, *, chunk_frames: int = 256,
                progress: Callable[[str, float], None] | None = None) -> ConcatenatedMovie:
    """Stream every movie of `series` (in `series.order`) into one float32 file in `work_dir`."""
    chunk_frames = check_chunk(chunk_frames)
    work_dir = Path(work_dir)
    rows, cols = series.frame_shape
    total = series.n_frames
    offsets = series.offsets()
    final = work_dir / f"concatenated_{total}x{rows}x{cols}.float32"
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
                    out.write(np.ascontiguousarray(block, dtype=np.float32).data)
                    written += block.shape[0]
                    done += block.shape[0]
                    if progress is not None:
                        progress("concatenate", done / total if total else 1.0)
                if written != info.n_frames:
                    raise MovieError(f"{info.path}: read {written} frames, expected {info.n_frames}; "
                                     "was the file changed while reading?")
        filled: dict[int, tuple[int, ...]] = {}
        if any(m.invalid_frames for m in series.movies):
            mm = np.memmap(tmp, dtype=np.float32, mode="r+", shape=(total, rows, cols))
            try:
                for k, info in enumerate(series.movies):
                    if info.invalid_frames:
                        _fill_invalid(mm, offsets[k][0], info.n_frames, info.invalid_frames)
                        filled[k] = tuple(info.invalid_frames)
                mm.flush()
            finally:
                del mm
    return ConcatenatedMovie(path=final, shape=(total, rows, cols), offsets=offsets, filled_frames=filled)
