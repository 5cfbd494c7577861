"""What the content checks found, remembered per file, and the bounded chunk they read at a time.

The CLI's pre-check, the flow's validate step and a sweep's combinations each ask the same questions of one
movie; reading a long recording once per question would cost minutes. A finding is kept per (check, file, size,
modification time), so a rewritten file is read again.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, TypeVar

from cnmflow.errors import MovieError
from cnmflow.movies.info import MovieInfo

#: Bytes of float32 frames a check reads at a time (a 2048² sensor's 64 frames are 1 GB).
CHUNK_BYTES = 64 * 2**20

_FOUND: dict[tuple[str, str, int, int], Any] = {}
_LOCK = threading.Lock()
T = TypeVar("T")


def remembered(check: str, info: MovieInfo, find: Callable[[], T]) -> T:
    """What ``find`` finds, found once per process for each check and (file, size, modification time)."""
    stat = os.stat(info.path)
    key = (check, str(info.path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        known = key in _FOUND
        found = _FOUND.get(key)
    if not known:
        found = find()
        with _LOCK:
            _FOUND[key] = found
    return found


def refused(check: str, info: MovieInfo, find: Callable[[], str | None]) -> None:
    """Raise MovieError with the problem ``find`` describes, where it describes one (:func:`remembered`)."""
    problem = remembered(check, info, find)
    if problem is not None:
        raise MovieError(problem)


def chunk_frames(info: MovieInfo) -> int:
    """Frames of ``info`` a check reads at a time: CHUNK_BYTES of float32."""
    rows, cols = info.frame_shape
    return max(1, CHUNK_BYTES // max(1, rows * cols * 4))
