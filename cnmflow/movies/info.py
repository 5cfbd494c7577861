"""The description of one movie file, shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from cnmflow.engine.movie_source import MovieSource
from cnmflow.errors import MovieError
from cnmflow.isx_timing import IsxdSpacing, IsxdTiming


@dataclass(frozen=True)
class RawLayout:
    """Where a movie's frames lie in its file when they lie there as one C-order (frames, rows, cols)
    block of plain numbers: such a movie is read in place, without a work copy."""

    path: Path
    dtype: np.dtype     # as stored, byte order included (ImageJ writes big-endian)
    offset: int         # bytes before the first frame


@dataclass(frozen=True)
class MovieInfo:
    """What is known about one movie file before reading its pixels.

    Plain, picklable data only (cached extraction results hold it): an isxd movie's exact
    timing and spacing are `IsxdTiming` / `IsxdSpacing`, made into isx objects where isx
    writes outputs. ``notes`` are warnings about the file a run reports (e.g. an AVI whose
    header lists more frames than decode).
    """

    path: Path
    kind: str
    n_frames: int
    frame_shape: tuple[int, int]
    dtype: np.dtype
    frame_rate: float | None = None
    frame_rate_source: str | None = None
    start_time: datetime | None = None
    pixel_size_um: float | None = None
    invalid_frames: tuple[int, ...] = ()
    timing: IsxdTiming | None = field(default=None, repr=False)
    spacing: IsxdSpacing | None = field(default=None, repr=False)
    extra_properties: dict | None = field(default=None, compare=False)
    notes: tuple[str, ...] = ()
    #: A multi-file OME-TIFF's files (names, in the metadata's order, this one's as it is named now): the movie is
    #: this file's own pages, and a series must list the others with it. () for a movie in one file.
    ome_files: tuple[str, ...] = ()
    #: A later file of a multi-file OME-TIFF: the name of the file holding its metadata (and the first frames), which
    #: a series must list before it. "" for a file that holds its own.
    ome_metadata_file: str = ""
    #: Isolated stuck or hot sensor pixels (row, col), found in validation; every frame read has them replaced by
    #: their neighbours' median (:mod:`cnmflow.movies.pixel_repair`). () for none, or not looked for.
    defective_pixels: tuple[tuple[int, int], ...] = ()
    #: Frames a reader that decodes every frame to count them (AVI) saw with every pixel one value; None where no
    #: reader looked (the blank-frame check then reads the frames itself).
    flat_frames: tuple[int, ...] | None = None
    #: Frames the file stores with every pixel one value (written in place of lost ones), found in validation
    #: (:mod:`cnmflow.movies.checks.blank_frames`). () for none, or not looked for.
    blank_frames: tuple[int, ...] = ()

    @property
    def lost_frames(self) -> tuple[int, ...]:
        """Frames every reader sees filled in from their neighbours (:mod:`cnmflow.movies.frame_fill`): an isxd's
        dropped and cropped frames, and the blank frames validation found."""
        if not self.blank_frames:
            return self.invalid_frames
        return tuple(sorted(set(self.invalid_frames) | set(self.blank_frames)))

    @property
    def frame_period(self) -> float | None:
        """Seconds per frame (exact from the isxd timing where there is one)."""
        if self.timing is not None:
            return float(self.timing.period_s)
        if self.frame_rate is None:
            return None
        return 1.0 / self.frame_rate


def check_range(info: MovieInfo, start: int, stop: int) -> tuple[int, int]:
    """Validate a frame range [start, stop) against the movie; returns it as ints."""
    start, stop = int(start), int(stop)
    if not 0 <= start <= stop <= info.n_frames:
        raise MovieError(
            f"{info.path}: frame range [{start}, {stop}) is outside the movie's {info.n_frames} frames"
        )
    return start, stop


def check_chunk(chunk_frames: int) -> int:
    chunk_frames = int(chunk_frames)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    return chunk_frames


def read_raw(layout: RawLayout, frame_shape: tuple[int, int], start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) of a raw layout as float32, read with plain file reads.

    Plain reads, not a memory map: pages a map touches stay resident in the process (and counted
    in its RSS) until it is closed, so a pass over a 5 GB movie would show 5 GB resident. The
    reading is the engine's own (:meth:`cnmflow.engine.movie_source.MovieSource.streaming`).
    """
    source = MovieSource(path=layout.path, shape=(stop, *frame_shape), dtype=layout.dtype.str, offset=layout.offset)
    try:
        return source.streaming()[start:stop]
    except EOFError:
        raise MovieError(f"{layout.path} ends before frame {stop - 1}: the file is truncated; "
                         "copy the complete file again") from None
