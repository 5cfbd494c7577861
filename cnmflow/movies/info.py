"""The description of one movie file, shared by every reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.isx_timing import IsxdSpacing, IsxdTiming



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
