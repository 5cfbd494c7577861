"""How a patch job finds the movie: a file path it can read, or an array in this process.

Worker processes receive a :class:`MovieSource` (a few strings and ints) and read the same file,
so no worker ever holds a copy of the movie — only the patch it reads. The file may hold any real
number type in either byte order (a uint16 TIFF read in place): every read converts to float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mmap
import os

import numpy as np

from cnmflow.engine.chunking import chunk_slices


@dataclass(frozen=True)
class MovieSource:
    """A (frames, rows, cols) movie stored as a raw C-order file, or held in memory."""

    path: Path | None
    shape: tuple[int, int, int]
    dtype: str = "float32"
    offset: int = 0
    array: np.ndarray | None = None

    @classmethod
    def of(cls, movie: np.ndarray) -> "MovieSource":
        """Describe an array: file-backed memmaps by path (shareable), anything else in memory."""
        # Only a memmap that owns its mapping has a meaningful offset; a view of one does not.
        if isinstance(movie, np.memmap) and isinstance(movie.base, mmap.mmap) and movie.filename:
            return cls(path=Path(movie.filename), shape=tuple(movie.shape), dtype=str(movie.dtype),
                       offset=int(movie.offset))
        return cls(path=None, shape=tuple(movie.shape), dtype=str(movie.dtype), array=movie)

    @property
    def shareable(self) -> bool:
        """Whether another process can open it (by path)."""
        return self.path is not None

    def open(self) -> np.ndarray:
        if self.array is not None:
            return self.array
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=self.shape, offset=self.offset)

    def streaming(self) -> Any:
        """An array-like for streaming passes that does not keep the pages it read mapped.

        Slicing a long-lived ``np.memmap`` leaves every page read resident in this process
        (counted in its RSS) until the map is closed; a pass over a 10 GB movie would then
        "use" 10 GB. The view reads the file afresh for each slice and returns a float32 copy,
        whatever type the file stores.
        """
        if self.path is None:
            return self.array
        return _FreshMapView(self)

    def without_array(self) -> "MovieSource":
        return MovieSource(path=self.path, shape=self.shape, dtype=self.dtype, offset=self.offset)


#: Bytes of the file mapped at once when reading a band of rows (pages stay resident while mapped).
MAP_WINDOW_BYTES = 32 * 2 ** 20


class _FreshMapView:
    """Read-only float32 (frames, rows, cols) array-like over a raw C-order file, read with plain file I/O.

    Slices are read into new arrays (whole frames in one read, a band of rows through a bounded
    window), so the process never keeps the file mapped: memory-mapped reads leave every page
    touched — and, through the kernel's fault-around, its neighbours — resident and counted in
    this process. Each slice is converted from the stored type to float32 as it is read.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, source: MovieSource):
        self._source = source
        self.shape = source.shape
        self._stored = np.dtype(source.dtype)
        self.ndim = len(source.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or not all(isinstance(part, (slice, int, np.integer)) for part in key):
            mapping = np.memmap(self._source.path, dtype=self._stored, mode="r", shape=self.shape,
                                offset=self._source.offset)
            chunk = np.array(mapping[key], dtype=np.float32)
            del mapping
            return chunk
        frames, rows, cols = (range(*part.indices(n)) if isinstance(part, slice) else part
                              for part, n in zip(key, self.shape))
        col_index = _as_range(cols, self.shape[2])
        out = self._read(_as_range(frames, self.shape[0]), _as_range(rows, self.shape[1]),
                         slice(col_index.start, col_index.stop, col_index.step) if len(col_index) else slice(0, 0))
        out = out[(slice(None) if isinstance(frames, range) else 0,
                   slice(None) if isinstance(rows, range) else 0,
                   slice(None) if isinstance(cols, range) else 0)]
        return out.astype(np.float32, copy=False)

    def _read(self, frames: range, rows: range, cols: slice) -> np.ndarray:
        T, H, W = self.shape
        n_cols = len(range(W)[cols])
        if not len(frames) or not len(rows) or not n_cols:
            return np.empty((len(frames), len(rows), n_cols), dtype=self._stored)
        needed = self._source.offset + (frames[-1] + 1) * H * W * self._stored.itemsize
        if os.path.getsize(self._source.path) < needed:
            raise EOFError(f"{self._source.path} ends before frame {frames[-1]} of {T}: the file is truncated")
        if rows.step == 1 and len(rows) == H and frames.step == 1:
            return self._read_whole_frames(frames, cols, n_cols)
        return self._read_band(frames, rows, cols, n_cols)

    def _read_whole_frames(self, frames: range, cols: slice, n_cols: int) -> np.ndarray:
        T, H, W = self.shape
        with open(self._source.path, "rb") as handle:
            handle.seek(self._source.offset + frames.start * H * W * self._stored.itemsize)
            block = np.fromfile(handle, dtype=self._stored, count=len(frames) * H * W).reshape(-1, H, W)
        return block if n_cols == W else np.ascontiguousarray(block[:, :, cols])

    def _read_band(self, frames: range, rows: range, cols: slice, n_cols: int) -> np.ndarray:
        """A band of rows: map a bounded run of frames at a time, copy the band out, unmap."""
        T, H, W = self.shape
        frame_bytes = H * W * self._stored.itemsize
        out = np.empty((len(frames), len(rows), n_cols), dtype=self._stored)
        # A window's span, not just the frames selected from it, becomes resident while mapped (the
        # kernel maps pages around each one read): bound the span.
        per_map = max(1, MAP_WINDOW_BYTES // (frame_bytes * frames.step))
        row_slice = slice(rows.start, rows[-1] + 1, rows.step)
        for part in chunk_slices(len(frames), per_map):
            selected = frames[part]
            window = np.memmap(self._source.path, dtype=self._stored, mode="r",
                               shape=(selected[-1] + 1 - selected.start, H, W),
                               offset=self._source.offset + selected.start * frame_bytes)
            out[part] = window[::selected.step, row_slice, cols]
            del window
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)


def _as_range(part, length: int) -> range:
    if isinstance(part, range):
        return part
    index = int(part) + (length if int(part) < 0 else 0)
    if not 0 <= index < length:
        raise IndexError(f"index {part} is out of bounds for axis of length {length}")
    return range(index, index + 1)
