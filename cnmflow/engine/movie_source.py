"""How a patch job finds the movie: a file path it can memory-map, or an array in this process.

Worker processes receive a :class:`MovieSource` (a few strings and ints) and map the same file,
so no worker ever holds a copy of the movie — only the patch it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

    def without_array(self) -> "MovieSource":
        return MovieSource(path=self.path, shape=self.shape, dtype=self.dtype, offset=self.offset)
