"""Where a patch job keeps its working frames: in memory while they are small, in scratch files
when the recording is long.

A patch job needs copies of its patch for every frame (1P: the downsampled patch and its
seed-filtered copy; 2P: the patch, its residual and filtered residuals), arrays of
``frames × patch pixels``: 0.5 GB each for an 81×81 patch of 20 000 downsampled frames. Held in
memory, a worker's RSS would follow the recording's length. Once the job's in-memory arrays would
pass its budget, the next one lives in a raw file instead, read and written a chunk of frames
(or a box) at a time with plain file I/O, so the worker holds a few chunks whatever the length.
Both kinds answer the same indexing, so the algorithms have one code path and give the same
numbers.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cnmflow.engine.chunking import chunk_slices, frame_chunks
from cnmflow.engine.movie_source import MovieSource
from cnmflow.processes import pid_alive
from cnmflow.settings import Settings

#: Bytes of the file mapped at once when writing a box into a scratch file.
WRITE_WINDOW_BYTES = 64 * 2 ** 20
#: Scratch folder names: ``cnmflow-patch-<owner pid>-<host>-<random>``, so a later run can tell a
#: killed worker's leftovers from a live job's.
SCRATCH_PREFIX = "cnmflow-patch-"
_SCRATCH_NAME = re.compile(r"^cnmflow-patch-(\d+)-(.*)-[a-z0-9_]+$")


class PatchStorage:
    """Where a patch job's frame-sized arrays go: memory while the arrays it holds in memory total
    at most ``memory_bytes``, scratch files under ``directory`` (default: the temp folder) beyond.

    The ledger counts arrays from :meth:`allocate` until they are closed. A copy sent to a worker
    process starts with an empty ledger; jobs run one after another may share one.
    """

    def __init__(self, memory_bytes: float = math.inf, directory: str | None = None):
        self.memory_bytes, self.directory = float(memory_bytes), directory
        self._held = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "PatchStorage":
        """The machine's policy: ``CNMFLOW_PATCH_MB`` in memory, the rest in ``CNMFLOW_SCRATCH_DIR``."""
        return cls(memory_bytes=settings.patch_memory_bytes, directory=settings.scratch_dir)

    def allocate(self, shape: tuple[int, int, int]) -> "PatchFrames":
        """An uninitialised float32 array of ``shape`` (frames, rows, cols)."""
        nbytes = 4 * math.prod(shape)
        if self._held + nbytes <= self.memory_bytes:
            self._held += nbytes
            return PatchFrames(np.empty(shape, dtype=np.float32), on_close=lambda: self._release(nbytes))
        return PatchFrames.scratch(shape, self.directory)

    @property
    def held_bytes(self) -> int:
        """Bytes of the in-memory arrays allocated and not yet closed."""
        return self._held

    def _release(self, nbytes: int) -> None:
        self._held -= nbytes

    def __getstate__(self) -> dict:
        return {"memory_bytes": self.memory_bytes, "directory": self.directory}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __eq__(self, other) -> bool:
        return isinstance(other, PatchStorage) and self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return f"PatchStorage(memory_bytes={self.memory_bytes:g}, directory={self.directory!r})"


class PatchFrames:
    """A (frames, rows, cols) float32 array in memory or in a scratch file, indexed like an array.

    Reading returns an array (a view for the in-memory kind: treat it as read-only unless it is
    written back); writing takes ``frames[key] = values``. :meth:`close` frees the file.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, array: np.ndarray | None = None, *, path: Path | None = None,
                 shape: tuple[int, int, int] | None = None, on_close: Callable[[], None] | None = None):
        self._array = array
        self._on_close = on_close
        self._path = path
        self.shape = tuple(array.shape) if array is not None else tuple(shape)
        self._reader = None if path is None else MovieSource(path=path, shape=self.shape).streaming()

    @classmethod
    def scratch(cls, shape: tuple[int, int, int], directory: str | None = None) -> "PatchFrames":
        folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{_host()}-", dir=directory))
        path = folder / "frames.f32"
        with open(path, "wb") as handle:
            handle.truncate(4 * math.prod(shape))
        return cls(path=path, shape=tuple(int(n) for n in shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def on_disk(self) -> bool:
        return self._path is not None

    @property
    def nbytes(self) -> int:
        return 4 * math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if self._array is not None:
            return self._array[key]
        return self._reader[key]

    def __setitem__(self, key, values) -> None:
        if self._array is not None:
            self._array[key] = values
            return
        frames, rows, cols = _three(key)
        start, stop, step = frames.indices(self.shape[0])
        if step != 1:
            raise IndexError("scratch frames are written in runs of consecutive frames")
        values = np.asarray(values, dtype=np.float32)
        frame_bytes = 4 * self.shape[1] * self.shape[2]
        whole = rows == slice(None) and cols == slice(None)
        if whole:
            with open(self._path, "r+b") as handle:
                handle.seek(start * frame_bytes)
                np.broadcast_to(values, (stop - start, *self.shape[1:])).astype(np.float32).tofile(handle)
            return
        per_map = max(1, WRITE_WINDOW_BYTES // frame_bytes)
        box = (len(range(self.shape[1])[rows]), len(range(self.shape[2])[cols]))
        values = np.broadcast_to(values, (stop - start, *box))
        for part in chunk_slices(stop - start, per_map):
            first, last = start + part.start, start + part.stop
            window = np.memmap(self._path, dtype=np.float32, mode="r+", shape=(last - first, *self.shape[1:]),
                               offset=first * frame_bytes)
            window[:, rows, cols] = values[part]
            del window   # unmapped: the written pages leave this process (the page cache keeps them)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)

    def chunks(self, pixels: int | None = None) -> Iterator[slice]:
        """Frame slices for a pass that reads ``pixels`` pixels per frame (default: whole frames)."""
        yield from frame_chunks(self.shape[0], self.shape[1] * self.shape[2] if pixels is None else pixels)

    def close(self) -> None:
        """Free the memory or delete the scratch file; the object is unusable afterwards."""
        self._array = None
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
        if self._path is not None:
            shutil.rmtree(self._path.parent, ignore_errors=True)
            self._path = None
            self._reader = None

    def __enter__(self) -> "PatchFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def remove_orphaned_scratch(directory: str | None = None) -> list[Path]:
    """Delete the scratch folders in ``directory`` (default: the temp folder) whose owner process,
    on this machine, has ended — what workers killed mid-job leave behind; the paths deleted.

    Folders of live processes, of other machines (a shared scratch folder) and of unknown names
    are left alone.
    """
    folder = Path(directory or tempfile.gettempdir())
    removed = []
    try:
        candidates = list(folder.glob(f"{SCRATCH_PREFIX}*"))
    except OSError:
        return removed
    for path in candidates:
        match = _SCRATCH_NAME.match(path.name)
        if match is None or match.group(2) != _host() or pid_alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _host() -> str:
    """This machine's name as it may appear in a folder name."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


def as_frames(movie) -> PatchFrames:
    """``movie`` as :class:`PatchFrames`: itself, or an in-memory wrapper (float32, not copied when it is)."""
    if isinstance(movie, PatchFrames):
        return movie
    return PatchFrames(np.asarray(movie, dtype=np.float32))


def frame_mean(movie) -> np.ndarray:
    """Per-pixel temporal mean (float32) of a (frames, rows, cols) array-like, a chunk at a time."""
    total = np.zeros(movie.shape[1:])
    for chunk in frame_chunks(movie.shape[0], movie.shape[1] * movie.shape[2]):
        total += np.asarray(movie[chunk]).sum(axis=0, dtype=np.float64)
    return (total / movie.shape[0]).astype(np.float32)


def _three(key) -> tuple[slice, slice, slice]:
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (3 - len(key))
    if not all(isinstance(part, slice) for part in key):
        raise IndexError("scratch frames are written with slices (frames, rows, cols)")
    return key  # type: ignore[return-value]
