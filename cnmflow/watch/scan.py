"""One look at the watched folder: which movie files are there, how big, last written when.

A scan only stats files; it never opens them.  Whether a file is finished is decided by
comparing two scans (see :mod:`cnmflow.watch.stability`), and content is hashed only once a
file is ready (see :mod:`cnmflow.watch.hashing`), so a scan of a large folder stays cheap.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from cnmflow.movies.read import SUPPORTED_EXTENSIONS

#: What a watcher picks up unless told otherwise: every movie kind the extraction reads.
DEFAULT_PATTERNS: tuple[str, ...] = tuple(f"*{extension}" for extension in SUPPORTED_EXTENSIONS)


@dataclass(frozen=True)
class Observation:
    """A file (or a series folder's listing) as one scan saw it.

    ``path`` is relative to the watched folder, '/'-separated, so ledgers survive a move of
    the folder; a series folder's listing ends in '/' (see :func:`folder_listing`).
    """

    path: str
    size: int
    mtime_ns: int


def parse_patterns(pattern: str | Sequence[str]) -> tuple[str, ...]:
    """Glob patterns from a list or a comma-separated string (blank entries dropped)."""
    items = pattern.split(",") if isinstance(pattern, str) else list(pattern)
    patterns = tuple(p.strip() for p in items if p and p.strip())
    if not patterns:
        raise ValueError("no file pattern given; give e.g. '*.isxd,*.tif'")
    return patterns


def matches(name: str, patterns: Iterable[str]) -> bool:
    """True when a file name matches one of the patterns, ignoring letter case (``.TIF`` is a TIFF)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


def _excluded(path: Path, excluded: Sequence[Path]) -> bool:
    return any(path == ex or ex in path.parents for ex in excluded)


def _inside(root: Path, exclude: Sequence[str | os.PathLike]) -> list[Path]:
    """The folders of ``exclude`` as real paths (symbolic links resolved), so that an output folder named through
    a link, or linked into the watched one, is still left out; one that is or holds the watched folder excludes
    nothing (its results land beside the watched folder; had every sub-folder been left out)."""
    real = [Path(p).expanduser().resolve() for p in exclude]
    return [ex for ex in real if ex != root and ex not in root.parents]


def _enter(path: Path, real_parent: Path, real_root: Path, visited: set[Path]) -> Path | None:
    """The real path of a folder to walk into, or None.  A folder linked in from elsewhere is walked (it had been
    passed over without a word); a link to a folder inside the watched one is not (walked under its own name
    already: a 'latest' link would run a session twice), nor one to a folder holding it or one walked before
    (loops).  Only links are resolved: a folder's real path is otherwise its real parent's and its name."""
    if not path.is_symlink():
        real = real_parent / path.name
    else:
        real = path.resolve()
        if real == real_root or real_root in real.parents or real in real_root.parents:
            return None
    if real in visited:
        return None
    visited.add(real)
    return real


def scan_folder(folder: str | os.PathLike, patterns: Sequence[str], exclude: Sequence[str | os.PathLike] = (),
                unreadable: list[tuple[str, OSError]] | None = None) -> list[Observation]:
    """Every file under ``folder`` (recursively) that matches ``patterns``, sorted by path.

    Hidden files and folders (name starting with '.') are skipped: they hold work copies,
    ledgers and partial downloads.  A folder linked in from elsewhere counts as a sub-folder.
    ``exclude`` names folders to leave out, e.g. an output folder inside the watched one, whose
    cell sets must not be taken for new movies.
    A folder that cannot be listed (or a matching file that cannot be looked at), e.g. for its
    permissions, is appended to ``unreadable`` as (relative path, error), a folder's path ending
    in '/', so that the caller can say so: it had been passed over without a word.
    """
    root = Path(folder).absolute()
    real_root = root.resolve()
    excluded = _inside(real_root, exclude)
    found: list[Observation] = []

    def note(error: OSError, suffix: str = "/") -> None:
        if unreadable is not None:
            relative = Path(error.filename).relative_to(root).as_posix() if error.filename else "."
            unreadable.append(("./" if relative == "." else relative + suffix, error))

    visited = {real_root}
    reals = {root: real_root}
    for dirpath, dirnames, filenames in os.walk(root, onerror=note, followlinks=True):
        here = Path(dirpath)
        real_here = reals.pop(here)
        entered = []
        for d in sorted(dirnames):
            real = None if d.startswith(".") else _enter(here / d, real_here, real_root, visited)
            if real is not None and not _excluded(real, excluded):
                reals[here / d] = real
                entered.append(d)
        dirnames[:] = entered
        for name in filenames:
            if name.startswith(".") or not matches(name, patterns):
                continue
            try:
                stat = (here / name).stat()
            except FileNotFoundError:  # removed between listing and stat
                continue
            except OSError as error:  # e.g. a folder that may be listed but not entered
                note(error, suffix="")
                continue
            found.append(Observation((here / name).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=lambda obs: obs.path)


def folder_listing(folder: str | os.PathLike, series_key: str) -> Observation:
    """A series folder's listing as an observation: the bytes of every file directly in it (hidden ones and
    other kinds too) and the newest mtime among the folder and those files.

    The folder's mtime moves when a file is added, removed or renamed in it, so a copy still adding files is
    caught even at a moment when every file already present looks finished.  The other files count because
    copy tools write a movie under another name and rename it when complete (rsync's hidden ``.name.XXXXXX``,
    rclone's ``name.XXXX.partial``): while one is written, the folder's own mtime stands still, and the
    series had started without that movie.
    """
    path = Path(folder) / series_key
    total, newest = 0, path.stat().st_mtime_ns
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                if entry.is_file():
                    stat = entry.stat()
                    total, newest = total + stat.st_size, max(newest, stat.st_mtime_ns)
            except FileNotFoundError:  # renamed or removed meanwhile: the folder's mtime has moved
                continue
    return Observation(series_key, total, newest)
