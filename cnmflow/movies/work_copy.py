"""A concatenated series stored under a name made from its input bytes, so runs can share it.

A parameter sweep (or a retried run) needs the same float32 copy of the series again; naming
the copy by the series' content hash lets every run find a finished copy instead of writing a
new one.  A copy is complete only once its folder has been renamed into place with its
description inside, so a killed concatenation is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from cnmflow.errors import MovieError
from cnmflow.movies.concat import ConcatenatedMovie, concatenate
from cnmflow.movies.series import MovieSeries

DESCRIPTION_NAME = "concatenated.json"
KEY_LENGTH = 24


def work_copy_dir(root: str | os.PathLike, series_key: str) -> Path:
    """Where the copy of the series with this content key lives under ``root``."""
    return Path(root) / f"series-{series_key[:KEY_LENGTH]}"


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
        filled_frames={int(k): tuple(v) for k, v in described["filled_frames"].items()})
    expected_bytes = 4 * movie.shape[0] * movie.shape[1] * movie.shape[2]
    if not movie.path.is_file() or movie.path.stat().st_size != expected_bytes:
        return None
    return movie


def ensure_work_copy(series: MovieSeries, root: str | os.PathLike, series_key: str, *,
                     progress: Callable[[str, float], None] | None = None) -> tuple[ConcatenatedMovie, bool]:
    """The copy of ``series`` under ``root``: found, or written now. Also says whether it was written."""
    found = find_work_copy(root, series_key)
    if found is not None:
        if progress is not None:
            progress("concatenate", 1.0)
        return found, False
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
    except OSError as exc:
        raise MovieError(f"cannot write the concatenated movie under {root} ({exc.strerror or exc}); "
                         "give a writable work_dir with room for a float32 copy of the movies") from None
    try:
        movie = concatenate(series, staging, progress=progress)
        description = {"file": movie.path.name, "shape": list(movie.shape),
                       "offsets": {str(k): list(v) for k, v in movie.offsets.items()},
                       "filled_frames": {str(k): list(v) for k, v in movie.filled_frames.items()}}
        (staging / DESCRIPTION_NAME).write_text(json.dumps(description), encoding="utf-8")
        target = work_copy_dir(root, series_key)
        try:
            os.rename(staging, target)
        except OSError:
            if find_work_copy(root, series_key) is None:  # not another writer finishing first
                raise
            shutil.rmtree(staging, ignore_errors=True)
            return find_work_copy(root, series_key), False
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return find_work_copy(root, series_key), True


def remove_work_copy(movie: ConcatenatedMovie) -> None:
    """Delete a copy made by :func:`ensure_work_copy` (its whole folder), and its root when empty."""
    folder = movie.path.parent
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()
    except OSError:
        pass
