"""A concatenated series stored under a name made from its input bytes, so runs can share it.

A single movie whose frames lie in its file as one raw block needs no copy: the run reads the
input in place (:func:`cnmflow.movies.concat.in_place`), holds nothing and removes nothing.

A parameter sweep (or a retried run) needs the same copy of the series again; naming
the copy by the series' content hash lets every run find a finished copy instead of writing a
new one.  A copy is complete only once its folder has been renamed into place with its
description inside, so a killed concatenation is never mistaken for a finished one.

Copies are shared, so they are reference-counted by the kernel: every run using a copy holds a
shared ``flock`` on the lock file in its folder (taken before writing starts and kept while the
copy is in use).  Removing takes the lock exclusively without waiting: while any live run holds
the copy — a sweep's other combinations, another user of a shared ``--work-dir`` — it stays,
and the last user removes it.  A killed run's hold dies with it, so whatever it left (a finished
copy, a ``.writing-*`` staging folder) is unused and is removed by the next run in that folder,
or adopted first when it is the very copy that run needs.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from cnmflow.errors import MovieError
from cnmflow.folder_sweep import SweepRule, sweep_folder
from cnmflow.lock_files import still_linked
from cnmflow.movies.concat import ConcatenatedMovie, concatenate, in_place
from cnmflow.movies.series import MovieSeries

DESCRIPTION_NAME = "concatenated.json"
KEY_LENGTH = 24
WORK_DIR_NAME = ".cnmflow-work"     # the default work root, inside the output folder
USERS_NAME = ".users.lock"          # shared flock per user of a copy
COPY_PREFIX = "series-"
WRITING_PREFIX = ".writing-"
REMOVING_PREFIX = ".removing-"
#: A staging folder without a lock file is a writer killed between creating the folder and its lock
#: file, or a live writer in that microsecond: left alone this long.
UNLOCKED_GRACE_S = 60.0

_leases: dict[Path, list[int]] = {}   # copy folder → fds of this process's holds on it
_guard = threading.Lock()


def work_copy_dir(root: str | os.PathLike, series_key: str) -> Path:
    """Where the copy of the series with this content key lives under ``root``."""
    return Path(root) / f"{COPY_PREFIX}{series_key[:KEY_LENGTH]}"


def find_work_copy(root: str | os.PathLike, series_key: str) -> ConcatenatedMovie | None:
    """The finished copy for ``series_key``, or None when there is none (or it is damaged)."""
    folder = work_copy_dir(root, series_key)
    try:
        described = json.loads((folder / DESCRIPTION_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    movie = ConcatenatedMovie(
        path=folder / described["file"], shape=tuple(described["shape"]),
        offsets={int(k): tuple(v) for k, v in described["offsets"].items()},
        filled_frames={int(k): tuple(v) for k, v in described["filled_frames"].items()},
        dtype=described.get("dtype", "float32"))
    if not movie.path.is_file() or movie.path.stat().st_size != movie.nbytes:
        return None
    return movie


def ensure_work_copy(series: MovieSeries, root: str | os.PathLike, series_key: str, *,
                     progress: Callable[[str, float], None] | None = None) -> tuple[ConcatenatedMovie, bool]:
    """The series as the fit reads it: the input itself when it can be read in place (then False),
    else its copy under ``root``, held for this run: adopted, or written now (then True).

    Every call must be matched by :func:`remove_work_copy` once the run is done with the copy.
    Unused copies and staging folders of dead runs under ``root`` are removed first.
    """
    direct = in_place(series)
    if direct is not None:
        remove_unused(root)
        if progress is not None:
            progress("concatenate", 1.0)
        return direct, False
    return ensure_copy(root, series_key, lambda staging: concatenate(series, staging, progress=progress),
                       stage="concatenate", progress=progress)


def ensure_copy(root: str | os.PathLike, key: str, produce: Callable[[Path], ConcatenatedMovie], *,
                stage: str, progress: Callable[[str, float], None] | None = None) -> tuple[ConcatenatedMovie, bool]:
    """The copy named ``key`` under ``root``, held for this run: adopted, or made now by ``produce`` (then True).

    ``produce(staging)`` writes the movie (and any side files) into a held staging folder that is
    renamed into place only once complete, so a killed producer is never adopted. Derived copies
    (the motion-corrected movie) share the naming, holds and clean-up of the concatenated one.
    """
    root = Path(root)
    remove_unused(root, keep=key)
    for _ in range(3):
        adopted = _adopt(root, key)
        if adopted is not None:
            if progress is not None:
                progress(stage, 1.0)
            return adopted, False
        written = _write(root, key, produce)
        if written is not None:
            return written, True
    raise MovieError(f"the work copy under {work_copy_dir(root, key)} keeps being removed by another run; "
                     "give this run its own work_dir")


def remove_work_copy(movie: ConcatenatedMovie) -> bool:
    """Give up this run's hold on a copy; the last user deletes it (and its root when empty). Whether deleted.

    An input read in place is no copy: nothing is held, nothing removed."""
    if movie.in_place:
        return False
    folder = movie.path.parent
    with _guard:
        fds = _leases.get(folder, [])
        fd = fds.pop() if fds else None
        if not fds:
            _leases.pop(folder, None)
    removed = _remove_if_unused(folder, fd)
    _remove_root_if_empty(folder.parent)
    return removed


def remove_unused(root: str | os.PathLike, *, keep: str | None = None, keep_copies: bool = False) -> list[str]:
    """Delete what no live run holds under ``root``: staging folders, and copies other than ``keep``'s.

    ``keep_copies`` leaves every finished copy for a later run to adopt. Returns the names removed.
    """
    root = Path(root)
    kept = work_copy_dir(root, keep).name if keep else None
    rules: list[SweepRule] = [
        (lambda entry: entry.name.startswith(REMOVING_PREFIX), _finish_removal),
        (lambda entry: entry.name.startswith(WRITING_PREFIX),
         lambda entry: _remove_if_unused(entry, None, create_lock=False)),
    ]
    if not keep_copies:
        rules.append((lambda entry: entry.name.startswith(COPY_PREFIX) and entry.name != kept,
                      lambda entry: _remove_if_unused(entry, None)))
    removed = sweep_folder(root, rules)
    _remove_root_if_empty(root)
    return removed


def _finish_removal(folder: Path) -> bool:
    """A copy another remover renamed and died deleting: finish it (not reported: it was already gone)."""
    shutil.rmtree(folder, ignore_errors=True)
    return False


def _adopt(root: Path, series_key: str) -> ConcatenatedMovie | None:
    """The finished copy with a shared hold taken on it, or None."""
    folder = work_copy_dir(root, series_key)
    if find_work_copy(root, series_key) is None:
        return None
    fd = _open_lock(folder, create=True)
    if fd is None:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a remover is deleting it
    movie = find_work_copy(root, series_key) if still_linked(fd, folder / USERS_NAME) else None
    if movie is None:
        os.close(fd)
        return None
    _lease(folder, fd)
    return movie


def _write(root: Path, series_key: str, produce: Callable[[Path], ConcatenatedMovie]) -> ConcatenatedMovie | None:
    """Produce into a held staging folder and rename it into place; None when another writer won."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=WRITING_PREFIX, dir=root))
        fd = _open_lock(staging, create=True)
    except FileNotFoundError:   # another run removed the emptied root between our mkdir and mkdtemp
        return None
    except OSError as exc:
        raise MovieError(f"cannot write the concatenated movie under {root} ({exc.strerror or exc}); "
                         "give a writable work_dir with room for a copy of the movies") from None
    if fd is None:          # a cleaner removed the new staging folder at once
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)   # the hold survives the rename: same inode
    if not still_linked(fd, staging / USERS_NAME):   # a cleaner took it in the instant before our lock
        _discard(staging, fd)
        return None
    try:
        movie = produce(staging)
        description = {"file": movie.path.name, "shape": list(movie.shape), "dtype": movie.dtype,
                       "offsets": {str(k): list(v) for k, v in movie.offsets.items()},
                       "filled_frames": {str(k): list(v) for k, v in movie.filled_frames.items()}}
        (staging / DESCRIPTION_NAME).write_text(json.dumps(description), encoding="utf-8")
        target = work_copy_dir(root, series_key)
        try:
            os.rename(staging, target)
        except OSError:
            if find_work_copy(root, series_key) is None and _remove_if_unused(target, None):
                os.rename(staging, target)   # the name was taken by a damaged copy nobody used
            else:                            # another writer finished first (or uses it): adopt theirs
                _discard(staging, fd)
                return None
    except BaseException:
        _discard(staging, fd)
        raise
    _lease(target, fd)
    return find_work_copy(root, series_key)


def _discard(folder: Path, fd: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.close(fd)


def _lease(folder: Path, fd: int) -> None:
    with _guard:
        _leases.setdefault(folder, []).append(fd)


def _open_lock(folder: Path, *, create: bool) -> int | None:
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        return os.open(folder / USERS_NAME, flags, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _remove_if_unused(folder: Path, fd: int | None, *, create_lock: bool = True) -> bool:
    """Delete ``folder`` if an exclusive lock can be had at once (``fd``: our own hold, given up here)."""
    if fd is None:
        fd = _open_lock(folder, create=create_lock)
        if fd is None:
            if folder.is_dir() and time.time() - folder.stat().st_mtime > UNLOCKED_GRACE_S:
                shutil.rmtree(folder, ignore_errors=True)
                return True
            return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False       # another live run still uses it
        if not still_linked(fd, folder / USERS_NAME):
            return False       # removed (or replaced) meanwhile
        doomed = folder.with_name(f"{REMOVING_PREFIX}{secrets.token_hex(6)}")
        os.rename(folder, doomed)  # adopters now either hold the old inode (and retry) or find nothing
        shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _remove_root_if_empty(root: Path) -> None:
    try:
        root.rmdir()
    except OSError:
        pass
