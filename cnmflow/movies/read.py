"""Format dispatch: the one registry of movie readers, and one entry point for every movie type.

A reader is a module (:mod:`cnmflow.movies.isxd`, :mod:`~cnmflow.movies.tiff`,
:mod:`~cnmflow.movies.avi`) that satisfies :class:`MovieReader`: its ``KIND``, the file
``EXTENSIONS`` it reads, and the reading functions (``raw_layout``: where the frames lie as one raw
block, so the fit can read the file in place). Adding a format means writing such a
module and listing it in ``READERS``; the supported extensions, the error for an unknown one and
the watch folder's default patterns all follow from this list.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.file_memo import IdentityMemo, file_identity
from cnmflow.movies import avi, isxd, tiff
from cnmflow.movies.frame_fill import filled
from cnmflow.movies.info import MovieInfo, RawLayout
from cnmflow.movies.pixel_repair import mended

__all__ = ["MovieReader", "READERS", "SUPPORTED_EXTENSIONS", "kind_of", "check_file", "read_info", "read_frames",
           "iter_chunks", "iter_range", "raw_layout"]


class MovieReader(Protocol):
    """What a movie format module provides."""

    KIND: str                      # MovieInfo.kind of the movies it reads
    EXTENSIONS: tuple[str, ...]    # lower case, with the dot
    # SEQUENTIAL = True (optional): reaching a frame decodes every one before it; iter_chunks then takes start/stop

    def read_info(self, path: Path) -> MovieInfo: ...

    def read_frames(self, info: MovieInfo, start: int, stop: int) -> np.ndarray: ...

    def iter_chunks(self, info: MovieInfo, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]: ...

    def raw_layout(self, info: MovieInfo) -> RawLayout | None: ...


#: The infos of movies a reader can only decode from their start (an AVI's frames are counted by decoding every one):
#: a run reads each movie's info in its pre-check, its validate step and each sweep combination's.
_SEQUENTIAL_INFOS = IdentityMemo(max_entries=1024)
#: kind -> reader, in the order extensions are listed.
READERS: dict[str, MovieReader] = {reader.KIND: reader for reader in (isxd, tiff, avi)}
#: extension (lower case, with dot) -> kind
SUPPORTED_EXTENSIONS: dict[str, str] = {ext: reader.KIND for reader in READERS.values() for ext in reader.EXTENSIONS}


def kind_of(path: str | Path) -> str:
    """The movie kind for a file name (extension compared case-insensitively)."""
    suffix = Path(path).suffix.lower()
    try:
        return SUPPORTED_EXTENSIONS[suffix]
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise MovieError(
            f"{path}: unsupported movie file type {Path(path).suffix or '(no extension)'!r}; "
            f"give a movie with one of the extensions {supported} (any letter case)"
        ) from None


def check_file(path: str | os.PathLike) -> Path:
    """The absolute, resolved path of an existing, readable movie file (else MovieError)."""
    given = Path(os.fspath(path)).expanduser()
    try:
        resolved = given.resolve()
    except (RuntimeError, OSError) as exc:  # a symbolic-link loop: RuntimeError before Python 3.13, OSError since
        raise MovieError(f"{given} cannot be resolved to a file ({exc}); a symbolic link in the path points back "
                         "to itself — give the movie file's real path") from None
    if not resolved.exists():
        raise MovieError(f"movie file not found: {given}; check the path" + _pattern_hint(given))
    if resolved.is_dir():
        raise MovieError(f"{given} is a directory, not a movie file; give the movie file(s) inside it"
                         + _folder_hint(resolved))
    if not resolved.is_file():
        raise MovieError(f"{given} is not a regular file; give a movie file")
    try:
        with open(resolved, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise MovieError(f"movie file {given} is not readable ({exc.strerror or exc}); fix its permissions") from None
    return resolved


def _pattern_hint(given: Path) -> str:
    """For a name holding * ? or [ that names no file: a pattern only a shell expands (not the UI, a flow's movies
    or cnmflow.extract), and how many files it matches."""
    if not glob.has_magic(str(given)):
        return ""
    matches = glob.glob(str(given))
    held = f"{len(matches)} file{'s' if len(matches) != 1 else ''} match it" if matches else "no file matches it"
    return (f" — a file-name pattern is expanded by a shell, not here (the Prefect UI, the flows, cnmflow.extract); "
            f"list the movie files in recording order ({held})")


def _folder_hint(folder: Path) -> str:
    """What a folder given as a movie holds, and how to list its movies in recording order."""
    try:
        movies = [entry for entry in folder.iterdir() if entry.suffix.lower() in SUPPORTED_EXTENSIONS]
    except OSError:
        return ""
    if not movies:
        return f" (it holds no {', '.join(sorted(SUPPORTED_EXTENSIONS))} file)"
    suffixes = sorted({entry.suffix for entry in movies})
    return (f" ({len(movies)} {'/'.join(suffixes)} file{'s' if len(movies) > 1 else ''} inside), in recording "
            f"order, e.g. $(ls {folder}/*{suffixes[0]} | sort -V)")


def _content_kind(path: Path) -> str | None:
    """The movie kind a file's first bytes show (TIFF, BigTIFF, AVI), or None where they show none of these."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def read_info(path: str | os.PathLike) -> MovieInfo:
    """Read a movie's metadata (no pixels) and check that it is a usable movie."""
    kind = kind_of(path)
    resolved = check_file(path)
    held = _content_kind(resolved)
    if kind == "isxd" and held is not None and isxd.read_header(resolved) is not None:
        held = None  # frame data that happens to begin with a TIFF's or an AVI's bytes: the isxd header says so
    if held is not None and held != kind:  # FFmpeg read a TIFF named .avi as one still image
        ext = READERS[held].EXTENSIONS[0]
        raise MovieError(f"{path} is named {Path(path).suffix} but holds {'an AVI' if held == 'avi' else 'a TIFF'} "
                         f"movie; rename it to {ext} (its extension says how it is read)")
    reader = READERS[kind]
    if _sequential(reader):  # its info decodes the whole file: once per process while unchanged
        return _SEQUENTIAL_INFOS.get(file_identity(resolved), lambda: reader.read_info(resolved))
    return reader.read_info(resolved)


def read_frames(info: MovieInfo, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) as a float32 array (stop-start, rows, cols), as every reader of the movie sees them: its
    lost frames interpolated and its defective pixels mended."""
    return _as_seen(info, READERS[info.kind].read_frames(info, start, stop), start)


def iter_chunks(info: MovieInfo, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_frame_index, float32 block) over the whole movie, `chunk_frames` at a time, as
    :func:`read_frames` gives them."""
    for first, block in READERS[info.kind].iter_chunks(info, chunk_frames=chunk_frames):
        yield first, _as_seen(info, block, first)


def _sequential(reader: MovieReader) -> bool:
    """Whether reaching a frame of the reader's movies decodes every frame before it (its optional SEQUENTIAL)."""
    return bool(getattr(reader, "SEQUENTIAL", False))


def iter_range(info: MovieInfo, start: int, stop: int, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_frame_index, float32 block) over frames [start, stop), ``chunk_frames`` at a time, as
    :func:`read_frames` gives them, in one pass: a sequential reader (an AVI is decoded from its first frame to reach
    any other) is not restarted for each chunk, as a :func:`read_frames` per chunk would be."""
    reader = READERS[info.kind]
    if _sequential(reader):
        chunks = reader.iter_chunks(info, chunk_frames=chunk_frames, start=start, stop=stop)
    else:
        chunks = ((first, reader.read_frames(info, first, min(first + chunk_frames, stop)))
                  for first in range(start, stop, chunk_frames))
    for first, block in chunks:
        yield first, _as_seen(info, block, first)


def _as_seen(info: MovieInfo, block: np.ndarray, start: int) -> np.ndarray:
    """A reader's block from frame ``start`` with the movie's lost frames filled (:mod:`frame_fill`) and its defective
    pixels mended (:mod:`pixel_repair`)."""
    if info.lost_frames:
        block = filled(block, start, info.lost_frames, info.n_frames,
                       lambda i: READERS[info.kind].read_frames(info, i, i + 1)[0])
    return mended(block, info.defective_pixels)


def raw_layout(info: MovieInfo) -> RawLayout | None:
    """Where the movie's frames lie as one raw C-order block in its file, or None (read through a copy): always None
    for a movie with defective pixels, whose frames are mended as they are read."""
    return None if info.defective_pixels else READERS[info.kind].raw_layout(info)
