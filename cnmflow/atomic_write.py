"""Writing a file so that nobody ever sees half of it: write beside it, then rename into place.

A reader (or the next run, after a crash) finds either the old file or the complete new one.
Every writer of the outputs, the work copies and the simulated movies goes through
:func:`atomic_path`; the temporary names follow one pattern (:func:`temporary_glob`) so that
what a killed writer left can be recognised and removed.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "temporary_path", "temporary_glob"]


def _hidden(name: str) -> str:
    return name if name.startswith(".") else f".{name}"


def temporary_path(path: Path, *, suffix: str | None = None) -> Path:
    """A fresh hidden name beside ``path``: ``.name.<pid>-<hex>.tmp``, or, given a ``suffix``,
    ``.stem.tmp-<pid>-<hex><suffix>`` for libraries that choose the format by the extension
    (isx insists on ``.isxd``; tifffile, PyAV, pynwb and matplotlib look at it too)."""
    path = Path(path)
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    if suffix is not None:
        return path.with_name(f"{_hidden(path.stem)}.tmp-{token}{suffix}")
    return path.with_name(f"{_hidden(path.name)}.{token}.tmp")


def temporary_glob(path: Path, *, suffix: str | None = None) -> str:
    """The glob pattern (file name only) matching every :func:`temporary_path` of ``path``."""
    path = Path(path)
    if suffix is not None:
        return f"{glob.escape(_hidden(path.stem))}.tmp-*{glob.escape(suffix)}"
    return f"{glob.escape(_hidden(path.name))}.*.tmp"


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None,
                move: Callable[[Path, Path], None] = os.replace) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success ``move`` it to ``path``, else delete it.

    ``suffix``: the temporary name ends in it (usually ``path.suffix``; see :func:`temporary_path`).
    ``move`` defaults to :func:`os.replace` (an existing file is replaced); a writer that must
    never replace one passes its own (e.g. a hard link that fails when the name is taken).
    """
    path = Path(path)
    tmp = temporary_path(path, suffix=suffix)
    try:
        yield tmp
        move(tmp, path)
    finally:
        # after os.replace tmp no longer exists; after a failure (or a linking move) remove it
        tmp.unlink(missing_ok=True)
