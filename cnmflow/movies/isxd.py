"""Inscopix .isxd movies, read through the `isx` package.

The file's JSON header (at the end of the file: the JSON text, a NUL byte, then the
JSON length as a little-endian uint64) is parsed directly to tell movies from cell
sets / event sets before `isx` is asked to open them, and for `extraProperties`,
which `isx` does not expose.
"""

from __future__ import annotations

import json
import os
import re
import struct
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.movies.info import MovieInfo, check_chunk, check_range

# isxd "type" field values seen in isx-written files.
_DATASET_TYPES = {0: "movie", 1: "cell set", 4: "image", 5: "event set"}
_WHAT_TO_GIVE = {
    "cell set": "give the movie the cells were extracted from",
    "event set": "give the movie the events were detected from",
}
_MAX_HEADER = 256 * 1024 * 1024


def read_header(path: str | os.PathLike) -> dict | None:
    """The isxd JSON header, or None when the file does not end with one."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < 10:
                return None
            fh.seek(size - 8)
            (length,) = struct.unpack("<Q", fh.read(8))
            if length == 0 or length > min(size - 9, _MAX_HEADER):
                return None
            fh.seek(size - 9 - length)
            raw = fh.read(length + 1)
    except OSError:
        return None
    try:
        header = json.loads(raw.rstrip(b"\x00").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def _not_a_movie(path: Path, what: str) -> MovieError:
    hint = _WHAT_TO_GIVE.get(what, "give an isxd movie")
    return MovieError(f"{path} is an isxd {what}, not a movie; {hint}")


def _isx():
    try:
        import isx  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - isx is a dependency
        raise MovieError(f"reading .isxd files needs the 'isx' package ({exc})") from exc
    return isx


def _open(path: Path):
    isx = _isx()
    try:
        return isx.Movie.read(str(path))
    except Exception as exc:  # isx raises bare Exception
        msg = str(exc)
        m = re.search(r"Instead it is of type:\s*([A-Za-z ]+?)\s*\.?\s*$", msg)
        if m:
            raise _not_a_movie(path, m.group(1).strip().lower()) from None
        detail = msg.splitlines()[-1].strip() if msg.strip() else type(exc).__name__
        raise MovieError(f"cannot read isxd movie {path}: {detail}; check the file is a complete, uncorrupted isxd movie") from None


def _copy_timing(timing):
    """An isx.Timing that owns its memory.

    `isx.Movie.timing` is a ctypes view into the C movie object: once that Movie is garbage
    collected the view dangles (period, dropped frames, ... read back garbage). Rebuild it.
    """
    isx = _isx()
    impl = timing._impl
    period = isx.Duration._from_num_den(int(impl.step.num), int(impl.step.den))
    start = isx.Time._from_secs_since_epoch(
        isx.Duration._from_num_den(int(impl.start.secs_since_epoch.num), int(impl.start.secs_since_epoch.den)),
        int(impl.start.utc_offset),
    )
    return isx.Timing(num_samples=int(timing.num_samples), period=period, start=start,
                      dropped=[int(i) for i in timing.dropped],
                      cropped=[[int(a), int(b)] for a, b in timing.cropped],
                      blank=[int(i) for i in timing.blank])


def _copy_spacing(spacing):
    """An isx.Spacing that owns its memory (see `_copy_timing`); the struct holds no pointers."""
    isx = _isx()
    impl = spacing._impl
    return isx.Spacing._from_impl(type(impl).from_buffer_copy(impl))


def _start_time(header: dict | None, timing) -> datetime:
    start = (header or {}).get("timingInfo", {}).get("start")
    try:
        secs = Fraction(int(start["secsSinceEpoch"]["num"]), int(start["secsSinceEpoch"]["den"]))
        offset = int(start.get("utcOffset", 0))
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        secs = Fraction(timing.start._to_secs_since_epoch().secs_float)
        offset = int(getattr(timing.start._impl, "utc_offset", 0))
    tz = timezone(timedelta(seconds=offset)) if abs(offset) < 86400 else timezone.utc
    # exact microseconds from the rational seconds
    micros = round(secs * 1_000_000)
    return datetime(1970, 1, 1, tzinfo=timezone.utc).astimezone(tz) + timedelta(microseconds=micros)


def _pixel_size(header: dict | None) -> float | None:
    try:
        px = header["spacingInfo"]["pixelSize"]["x"]
        value = float(Fraction(int(px["num"]), int(px["den"])))
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def read_info(path: Path) -> MovieInfo:
    header = read_header(path)
    if header is not None and "type" in header:
        try:
            dtype_code = int(header["type"])
        except (TypeError, ValueError):
            dtype_code = None
        if dtype_code is not None and dtype_code not in (0, 4):  # 4: image (isx writes 0- and 1-frame movies so)
            raise _not_a_movie(path, _DATASET_TYPES.get(dtype_code, f"data set of type {dtype_code}"))
    movie = _open(path)
    timing, spacing = _copy_timing(movie.timing), _copy_spacing(movie.spacing)
    data_type = movie.data_type
    del movie
    rows, cols = (int(v) for v in spacing.num_pixels)
    n = int(timing.num_samples)
    period = float(timing.period.secs_float)
    if not period > 0:
        raise MovieError(f"{path}: isxd timing has a non-positive frame period ({period} s); the file is damaged")
    mask = np.asarray(timing.get_valid_samples_mask(), dtype=bool)
    invalid = tuple(int(i) for i in np.flatnonzero(~mask)) if mask.size == n else ()
    extra = header.get("extraProperties") if header is not None else None
    dtype = np.dtype(data_type)
    return MovieInfo(
        path=path,
        kind="isxd",
        n_frames=n,
        frame_shape=(rows, cols),
        dtype=dtype,
        frame_rate=1.0 / period,
        frame_rate_source="isxd timing",
        start_time=_start_time(header, timing),
        pixel_size_um=_pixel_size(header),
        invalid_frames=invalid,
        timing=timing,
        spacing=spacing,
        extra_properties=extra if isinstance(extra, dict) else None,
    )


def _read(movie, info: MovieInfo, start: int, stop: int) -> np.ndarray:
    out = np.empty((stop - start, *info.frame_shape), dtype=np.float32)
    for k, i in enumerate(range(start, stop)):
        try:
            out[k] = movie.get_frame_data(i)
        except Exception as exc:
            raise MovieError(f"cannot read frame {i} of {info.path}: {str(exc).strip()}") from None
    return out


def read_frames(info: MovieInfo, start: int, stop: int) -> np.ndarray:
    start, stop = check_range(info, start, stop)
    return _read(_open(info.path), info, start, stop)


def iter_chunks(info: MovieInfo, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    chunk_frames = check_chunk(chunk_frames)
    movie = _open(info.path)
    for first in range(0, info.n_frames, chunk_frames):
        yield first, _read(movie, info, first, min(first + chunk_frames, info.n_frames))
