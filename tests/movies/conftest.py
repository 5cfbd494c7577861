"""Shared helpers for the movie tests: the Inscopix sample folder and tiny movie writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.paths import IDEAS


@pytest.fixture
def ideas() -> Path:
    if not IDEAS.is_dir():
        pytest.skip("Inscopix sample folder (shared/data/ideas) is absent")
    return IDEAS


def sample(ideas: Path, name: str) -> Path:
    path = ideas / name
    if not path.exists():
        pytest.skip(f"sample file {name} is absent")
    return path


def movie_data(n: int, rows: int = 6, cols: int = 5, *, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, rows, cols)) * 100 + offset).astype(np.float32)


def write_isxd(path: Path, data: np.ndarray, *, period_ms: int = 100, start_ms: int = 0,
               dropped=(), cropped=(), dtype=np.float32, pixel_um=None, top_left_um=None) -> Path:
    """An isxd movie; ``pixel_um`` (pixel side, µm) and ``top_left_um`` ((top, left), µm) set its spacing."""
    from fractions import Fraction

    import isx

    from cnmflow.isx_timing import ratio, set_pixel_size

    timing = isx.Timing(num_samples=data.shape[0], period=isx.Duration.from_msecs(period_ms),
                        start=isx.Time._from_secs_since_epoch(isx.Duration.from_msecs(start_ms)),
                        dropped=list(dropped), cropped=[list(c) for c in cropped])
    spacing = isx.Spacing(num_pixels=data.shape[1:])
    if pixel_um is not None:
        set_pixel_size(spacing, height_um=Fraction(pixel_um), width_um=Fraction(pixel_um))
    if top_left_um is not None:
        spacing._impl.top, spacing._impl.left = (ratio(Fraction(v)) for v in top_left_um)
    movie = isx.Movie.write(str(path), timing, spacing, dtype)
    invalid = set(dropped) | {i for a, b in cropped for i in range(a, b + 1)}
    for i in range(data.shape[0]):
        if i not in invalid:
            movie.set_frame_data(i, data[i].astype(dtype))
    movie.flush()
    del movie
    return path


def write_avi(path: Path, data: np.ndarray, *, rate: int = 15, codec: str = "ffv1") -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = data.shape[1:]
        stream.pix_fmt = "gray"
        for frame in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, np.uint8), format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
