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
from cnmflow.isx_timing import IsxdSpacing, IsxdTiming
from cnmflow.isx_package import isx_package
from cnmflow.movies.info import MovieInfo, RawLayout, check_chunk, check_range, read_raw
from cnmflow.movies.native_output import captured_native, with_detail

#: What :mod:`cnmflow.movies.read` registers this reader under (see ``MovieReader``).
KIND = "isxd"
EXTENSIONS: tuple[str, ...] = (".isxd",)

# isxd "type" field values seen in isx-written files.
_DATASET_TYPES = {0: "movie", 1: "cell set", 4: "image", 5: "event set"}
_WHAT_TO_GIVE = {
    "cell set": "give the movie the cells were extracted from",
    "event set": "give the movie the events were detected from",
}
_MAX_HEADER = 256 * 1024 * 1024


def read_header(path: str | os.PathLike) -> dict | None:
    """The isxd JSON header, or None when the file does not end with one."""
    return _read_tail(path)[0]


def _read_tail(path: str | os.PathLike) -> tuple[dict | None, int]:
    """(The isxd JSON header or None, the number of bytes before it: the frame data)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < 10:
                return None, size
            fh.seek(size - 8)
            (length,) = struct.unpack("<Q", fh.read(8))
            if length == 0 or length > min(size - 9, _MAX_HEADER):
                return None, size
            fh.seek(size - 9 - length)
            raw = fh.read(length + 1)
    except OSError:
        return None, 0
    try:
        header = json.loads(raw.rstrip(b"\x00").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, size
    return (header, size - 9 - length) if isinstance(header, dict) else (None, size)


def _not_a_movie(path: Path, what: str) -> MovieError:
    hint = _WHAT_TO_GIVE.get(what, "give an isxd movie")
    return MovieError(f"{path} is an isxd {what}, not a movie; {hint}")


def _open(path: Path):
    isx = isx_package(needed_for="reading .isxd files")
    with captured_native() as native:
        try:
            return isx.Movie.read(str(path))
        except Exception as exc:  # isx raises bare Exception
            error = exc
    msg = str(error)
    m = re.search(r"Instead it is of type:\s*([A-Za-z ]+?)\s*\.?\s*$", msg)
    if m:
        raise _not_a_movie(path, m.group(1).strip().lower()) from None
    detail = msg.splitlines()[-1].strip() if msg.strip() else type(error).__name__
    raise MovieError(with_detail(f"cannot read isxd movie {path}: {detail}", native)
                     + "; check the file is a complete, uncorrupted isxd movie") from None


def _check_frame_data(path: Path, data_bytes: int, stored: int, dtype: np.dtype, shape: tuple[int, int]) -> None:
    """Refuse a file whose frame data is shorter than its header promises (a cut copy).

    isx opens such a file and fails only at the first missing frame, after the run has
    started. Each of the `stored` (valid) frames takes rows*cols pixels (dropped, cropped and
    blank frames take no space; nVista frame headers/footers only add bytes: a lower bound).
    """
    frame_bytes = shape[0] * shape[1] * dtype.itemsize
    promised = stored * frame_bytes
    if data_bytes < promised:
        present = data_bytes // frame_bytes if frame_bytes else 0
        raise MovieError(
            f"{path} is truncated: its header promises {stored} stored frames of {shape[0]}x{shape[1]} {dtype} "
            f"({promised} bytes of frame data) but the file holds only {data_bytes} bytes (about {present} frames); "
            "copy the complete file again (or export it again from the acquisition software)")


def _start_time(timing: IsxdTiming) -> datetime:
    """The movie's start as an aware datetime in its recorded UTC offset, to the microsecond."""
    secs, offset = Fraction(*timing.start), timing.utc_offset
    tz = timezone(timedelta(seconds=offset)) if abs(offset) < 86400 else timezone.utc
    micros = round(secs * 1_000_000)  # exact microseconds from the rational seconds
    return datetime(1970, 1, 1, tzinfo=timezone.utc).astimezone(tz) + timedelta(microseconds=micros)


def _pixel_size(header: dict | None) -> float | None:
    try:
        px = header["spacingInfo"]["pixelSize"]["x"]
        value = float(Fraction(int(px["num"]), int(px["den"])))
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def read_info(path: Path) -> MovieInfo:
    header, data_bytes = _read_tail(path)
    if header is not None and "type" in header:
        try:
            dtype_code = int(header["type"])
        except (TypeError, ValueError):
            dtype_code = None
        if dtype_code is not None and dtype_code not in (0, 4):  # 4: image (isx writes 0- and 1-frame movies so)
            raise _not_a_movie(path, _DATASET_TYPES.get(dtype_code, f"data set of type {dtype_code}"))
    movie = _open(path)
    # copy now: isx.Movie.timing / .spacing are ctypes views that dangle once the movie is freed
    timing, spacing = IsxdTiming.from_isx(movie.timing), IsxdSpacing.from_isx(movie.spacing)
    dtype = np.dtype(movie.data_type)
    valid = np.asarray(movie.timing.get_valid_samples_mask(), dtype=bool)
    del movie
    rows, cols = spacing.num_pixels
    n = timing.num_samples
    if not timing.period_s > 0:
        raise MovieError(f"{path}: isxd timing has a non-positive frame period ({float(timing.period_s)} s); "
                         "the file is damaged")
    invalid = tuple(int(i) for i in np.flatnonzero(~valid)) if valid.size == n else ()
    _check_frame_data(path, data_bytes, n - len(invalid), dtype, (rows, cols))
    extra = header.get("extraProperties") if header is not None else None
    return MovieInfo(
        path=path,
        kind="isxd",
        n_frames=n,
        frame_shape=(rows, cols),
        dtype=dtype,
        frame_rate=1.0 / float(timing.period_s),
        frame_rate_source="isxd timing",
        start_time=_start_time(timing),
        pixel_size_um=_pixel_size(header),
        invalid_frames=invalid,
        timing=timing,
        spacing=spacing,
        extra_properties=extra if isinstance(extra, dict) else None,
    )


def _read(movie, info: MovieInfo, start: int, stop: int) -> np.ndarray:
    out = np.empty((stop - start, *info.frame_shape), dtype=np.float32)
    failed: tuple[int, Exception] | None = None
    with captured_native() as native:
        for k, i in enumerate(range(start, stop)):
            try:
                out[k] = movie.get_frame_data(i)
            except Exception as exc:  # isx raises bare Exception
                failed = (i, exc)
                break
    if failed is not None:
        i, exc = failed
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise MovieError(with_detail(f"cannot read frame {i} of {info.path}: {detail}", native)
                         + "; the file may be truncated or damaged") from None
    return out


def read_frames(info: MovieInfo, start: int, stop: int) -> np.ndarray:
    start, stop = check_range(info, start, stop)
    return _read(_open(info.path), info, start, stop)


def iter_chunks(info: MovieInfo, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    chunk_frames = check_chunk(chunk_frames)
    movie = _open(info.path)
    for first in range(0, info.n_frames, chunk_frames):
        yield first, _read(movie, info, first, min(first + chunk_frames, info.n_frames))


def raw_layout(info: MovieInfo) -> RawLayout | None:
    """The frames as one raw block from the file's start, when the header says so and isx agrees.

    That is: no frame headers or footers (nVista recordings have them), no dropped, cropped or blank
    frames, and exactly the promised frame bytes before the header; the first and last frames read
    through ``isx`` must equal the raw bytes, so a layout this reader misjudges is never read in place.
    """
    header, data_bytes = _read_tail(info.path)
    timing = (header or {}).get("timingInfo") or {}
    dtype = np.dtype(info.dtype).newbyteorder("<")
    rows, cols = info.frame_shape
    if (header is None or header.get("hasFrameHeaderFooter") is not False or info.invalid_frames
            or any(timing.get(name) for name in ("dropped", "cropped", "blank"))
            or data_bytes != info.n_frames * rows * cols * dtype.itemsize):
        return None
    layout = RawLayout(path=info.path, dtype=dtype, offset=0)
    movie = _open(info.path)
    for frame in {0, info.n_frames - 1}:
        if not np.array_equal(_read(movie, info, frame, frame + 1), read_raw(layout, info.frame_shape, frame, frame + 1)):
            return None
    return layout
