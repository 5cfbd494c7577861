"""Where a patch job keeps its working frames: in memory while they are small, in a scratch file
when the recording is long.

A 1P patch job needs its downsampled patch and the seed-filtered copy of it for every frame,
two arrays of ``frames × patch pixels``: 0.5 GB each for an 81×81 patch of a 20 000-frame
recording. Held in memory, a worker's RSS would follow the recording's length. Above
``memory_bytes`` an array lives in a raw file instead, read and written a chunk of frames (or a
box) at a time with plain file I/O, so the worker holds a few chunks whatever the length. Both
kinds answer the same indexing, so the algorithms have one code path and give the same numbers.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnmflow.engine.movie_source import MovieSource
from cnmflow.errors import ParameterError

#: Default megabytes of one patch-sized array that a worker keeps in memory (it holds about two).
DEFAULT_PATCH_MB = 128.0
#: Environment variable for that limit (CLI, flows, deployments).
PATCH_MB_VARIABLE = "CNMFLOW_PATCH_MB"
#: Environment variable for the folder of the scratch files (default: the system's temp folder).
SCRATCH_VARIABLE = "CNMFLOW_SCRATCH_DIR"
#: Bytes of frames one chunk of a streaming pass reads (the box's pixels, not the patch's).
CHUNK_BYTES = 8 * 2 ** 20
#: Bytes of the file mapped at once when writing a box into a scratch file.
WRITE_WINDOW_BYTES = 64 * 2 ** 20


@dataclass(frozen=True)
class PatchStorage:
    """A policy: arrays up to ``memory_bytes`` in memory, larger ones in files under ``directory``."""

    memory_bytes: float = math.inf
    directory: str | None = None

    def allocate(self, shape: tuple[int, int, int]) -> "PatchFrames":
        """An uninitialised float32 array of ``shape`` (frames, rows, cols)."""
        nbytes = 4 * math.prod(shape)
        if nbytes <= self.memory_bytes:
            return PatchFrames(np.empty(shape, dtype=np.float32))
        return PatchFrames.scratch(shape, self.directory)


def patch_storage_setting() -> PatchStorage:
    """The policy from ``$CNMFLOW_PATCH_MB`` and ``$CNMFLOW_SCRATCH_DIR``; bad values are refused."""
    text = os.environ.get(PATCH_MB_VARIABLE, "").strip()
    try:
        megabytes = float(text) if text else DEFAULT_PATCH_MB
    except ValueError:
        megabytes = float("nan")
    if not megabytes >= 0:
        raise ParameterError(f"{PATCH_MB_VARIABLE}={text!r} must be a number of megabytes >= 0 (default "
                             f"{DEFAULT_PATCH_MB:g}; 0 puts every patch in a scratch file); unset it or set e.g. "
                             f"{PATCH_MB_VARIABLE}=256")
    directory = os.environ.get(SCRATCH_VARIABLE, "").strip() or None
    if directory is not None and not os.path.isdir(directory):
        raise ParameterError(f"{SCRATCH_VARIABLE}={directory!r} is not a folder; create it or unset it "
                             "(the system's temp folder is used then)")
    return PatchStorage(memory_bytes=megabytes * 2 ** 20, directory=directory)


class PatchFrames:
    """A (frames, rows, cols) float32 array in memory or in a scratch file, indexed like an array.

    Reading returns an array (a view for the in-memory kind: treat it as read-only unless it is
    written back); writing takes ``frames[key] = values``. :meth:`close` frees the file.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, array: np.ndarray | None = None, *, path: Path | None = None,
                 shape: tuple[int, int, int] | None = None):
        self._array = array
        self._path = path
        self.shape = tuple(array.shape) if array is not None else tuple(shape)
        self._reader = None if path is None else MovieSource(path=path, shape=self.shape).streaming()

    @classmethod
    def scratch(cls, shape: tuple[int, int, int], directory: str | None = None) -> "PatchFrames":
        folder = Path(tempfile.mkdtemp(prefix="cnmflow-patch-", dir=directory))
        path = folder / "frames.f32"
        with open(path, "wb") as handle:
            handle.truncate(4 * math.prod(shape))
        return cls(path=path, shape=tuple(int(n) for n in shape))

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
        for first in range(start, stop, per_map):
            last = min(stop, first + per_map)
            window = np.memmap(self._path, dtype=np.float32, mode="r+", shape=(last - first, *self.shape[1:]),
                               offset=first * frame_bytes)
            window[:, rows, cols] = values[first - start:last - start]
            del window   # unmapped: the written pages leave this process (the page cache keeps them)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)

    def chunks(self, pixels: int | None = None) -> Iterator[slice]:
        """Frame slices for a pass that reads ``pixels`` pixels per frame (default: whole frames)."""
        yield from frame_chunks(self.shape[0], self.shape[1] * self.shape[2] if pixels is None else pixels)

    def close(self) -> None:
        """Free the memory or delete the scratch file; the object is unusable afterwards."""
        self._array = None
        if self._path is not None:
            shutil.rmtree(self._path.parent, ignore_errors=True)
            self._path = None
            self._reader = None

    def __enter__(self) -> "PatchFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def frame_chunks(n_frames: int, pixels: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[slice]:
    """Consecutive frame slices holding about ``chunk_bytes`` of float32 ``pixels`` per frame."""
    step = max(1, chunk_bytes // (4 * max(pixels, 1)))
    for start in range(0, n_frames, step):
        yield slice(start, min(start + step, n_frames))


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
