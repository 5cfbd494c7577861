"""Format dispatch: one entry point for every supported movie type."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.movies import avi, isxd, tiff
from cnmflow.movies.info import MovieInfo, kind_of

_READERS = {"isxd": isxd, "tiff": tiff, "avi": avi}


def check_file(path: str | os.PathLike) -> Path:
    """The absolute, resolved path of an existing, readable movie file (else MovieError)."""
    given = Path(os.fspath(path)).expanduser()
    resolved = given.resolve()
    if not resolved.exists():
        raise MovieError(f"movie file not found: {given}; check the path")
    if resolved.is_dir():
        raise MovieError(f"{given} is a directory, not a movie file; give the movie file(s) inside it")
    if not resolved.is_file():
        raise MovieError(f"{given} is not a regular file; give a movie file")
    try:
        with open(resolved, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise MovieError(f"movie file {given} is not readable ({exc.strerror or exc}); fix its permissions") from None
    return resolved


def read_info(path: str | os.PathLike) -> MovieInfo:
    """Read a movie's metadata (no pixels) and check that it is a usable movie."""
    kind = kind_of(path)
    resolved = check_file(path)
    return _READERS[kind].read_info(resolved)


def read_frames(info: MovieInfo, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) as a float32 array (stop-start, rows, cols)."""
    return _READERS[info.kind].read_frames(info, start, stop)


def iter_chunks(info: MovieInfo, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_frame_index, float32 block) over the whole movie, `chunk_frames` at a time."""
    return _READERS[info.kind].iter_chunks(info, chunk_frames=chunk_frames)
