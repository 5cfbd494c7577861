"""Values read from files, remembered in this process while the files are unchanged.

A file's *identity* (path, size, times, inode) names one state of its bytes without reading them, so what was read
from it (its hash, its frame count, a radius estimated on it) can be reused until the file is rewritten. Kept apart
from :mod:`cnmflow.fingerprint` so that the movie readers can use it: the fingerprint reads movie series.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

__all__ = ["FileIdentity", "IdentityMemo", "file_identity"]

#: What names one state of a file's bytes without reading them: path, size, mtime, ctime, inode, device.
#: Any rewrite changes the ctime (which no user can set back), a replaced file has a new inode.
FileIdentity = tuple[str, int, int, int, int, int]

T = TypeVar("T")


class IdentityMemo:
    """Values computed from files, remembered in this process under keys built from the files' identities
    (:func:`file_identity`), so a rewritten file is read again. Bounded: past ``max_entries`` the least recently used
    is forgotten, so a watch server that meets new recordings for months does not grow without end. A computation
    that raises is not remembered (the next call tries again)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._values: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = compute()  # outside the lock: other keys are served while a file is read
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        return value


def file_identity(path: str | os.PathLike) -> FileIdentity:
    """The file's absolute path and the stat fields that change whenever its bytes can have changed."""
    stat = os.stat(path)
    return (os.path.abspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
