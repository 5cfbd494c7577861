"""How a patch job finds the movie: a file path it can memory-map, or an array in this process.

Worker processes receive a :class:`MovieSource` (a few strings and ints) and map the same file,
so no worker ever holds a copy of the movie — only the patch it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mmap

import numpy as np


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
        "use" 10 GB. The view maps the file afresh for each slice and returns a copy.
        """
        if self.path is None:
            return self.array
        return _FreshMapView(self)

    def without_array(self) -> "MovieSource":
        return MovieSource(path=self.path, shape=self.shape, dtype=self.dtype, offset=self.offset)


class _FreshMapView:
    """Read-only (frames, rows, cols) array-like over a raw file; each slice is a new, closed mapping."""

    def __init__(self, source: MovieSource):
        self._source = source
        self.shape = source.shape
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(source.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        mapping = np.memmap(self._source.path, dtype=self._source.dtype, mode="r", shape=self.shape,
                            offset=self._source.offset)
        chunk = np.array(mapping[key])
        del mapping  # the last reference: the file is unmapped here
        return chunk

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)
