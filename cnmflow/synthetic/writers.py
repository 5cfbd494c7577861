"""Writers for simulated (or any) movies: ImageJ TIFF, Inscopix isxd and 8-bit AVI.

Each file is written to a temporary name in its folder and renamed into place
(:func:`cnmflow.atomic_write.atomic_path`), so a killed writer never leaves a file that looks
complete. Frames are converted ``CHUNK_FRAMES`` at a time: a memory-mapped movie is never
loaded whole.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from cnmflow import isx_timing
from cnmflow.atomic_write import atomic_path
from cnmflow.errors import ParameterError
from cnmflow.isx_package import isx_package
from cnmflow.synthetic.checks import check_positive

__all__ = ["write_tiff", "write_isxd", "write_avi"]

#: Frames converted at a time.
CHUNK_FRAMES = 64


def _check_movie(movie) -> np.ndarray:
    arr = movie if isinstance(movie, np.ndarray) else np.asarray(movie)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ParameterError(
            f"movie has shape {getattr(arr, 'shape', None)}: give a (n_frames, rows, cols) array with at least one frame."
        )
    return arr


def _check_fr(fr, *, required: bool) -> Fraction | None:
    if fr is None and not required:
        return None
    check_positive("fr", fr)
    return Fraction(float(fr)).limit_denominator(1_000_000)


def _minmax(arr: np.ndarray) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for t0 in range(0, arr.shape[0], CHUNK_FRAMES):
        block = np.asarray(arr[t0 : t0 + CHUNK_FRAMES])
        lo, hi = min(lo, float(np.nanmin(block))), max(hi, float(np.nanmax(block)))
    return lo, hi


def write_tiff(
    path,
    movie,
    *,
    fr: float | None,
    dtype="float32",
    scale: float | str = 1.0,
    compression: str | None = None,
) -> Path:
    """Write an ImageJ hyperstack TIFF (axes TYX), ``finterval = 1/fr`` when ``fr`` is given.

    ``dtype="float32"`` writes the values as they are. ``dtype="uint16"`` writes
    ``clip(rint(movie * scale), 0, 65535)``; ``scale="auto"`` maps the movie's min..max to
    0..65535. ``compression`` is passed to tifffile (e.g. ``"zlib"``; default none, so the file
    can be memory-mapped). Written to a temporary name in the same folder, then renamed.
    """
    import tifffile

    path = Path(path)
    arr = _check_movie(movie)
    rate = _check_fr(fr, required=False)
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise ParameterError(f"dtype={dtype!r} is not allowed for write_tiff: use 'float32' or 'uint16'.")
    offset, mult = 0.0, 1.0
    if dt == np.uint16:
        if isinstance(scale, str):
            if scale != "auto":
                raise ParameterError(f"scale={scale!r} is not allowed: give a number or 'auto'.")
            lo, hi = _minmax(arr)
            offset, mult = lo, (65535.0 / (hi - lo) if hi > lo else 1.0)
        else:
            check_positive("scale", scale)
            mult = float(scale)

    def frames():
        for t0 in range(0, arr.shape[0], CHUNK_FRAMES):
            block = np.asarray(arr[t0 : t0 + CHUNK_FRAMES], dtype=np.float32)
            if dt == np.uint16:
                block = np.clip(np.rint((block - offset) * mult), 0, 65535).astype(np.uint16)
            yield from block

    metadata: dict = {"axes": "TYX"}
    if rate is not None:
        metadata["finterval"] = float(1 / rate)
        metadata["fps"] = float(rate)
    with atomic_path(path, suffix=path.suffix) as tmp:
        tifffile.imwrite(
            tmp, frames(), shape=arr.shape, dtype=dt, imagej=True, metadata=metadata,
            compression=compression,
        )
    return path


def write_isxd(
    path,
    movie,
    *,
    fr: float,
    start_s: float = 0.0,
    pixel_size_um: float = 1.0,
    dropped: Sequence[int] = (),
    dtype="float32",
) -> Path:
    """Write an Inscopix ``.isxd`` movie with the ``isx`` package.

    The frame period is the exact fraction ``1/fr`` (30 fps is stored as 1/30 s, not 33 ms);
    ``start_s`` is the start time in seconds since the epoch; ``pixel_size_um`` the pixel
    width and height. Frames listed in ``dropped`` are marked dropped in the timing and not
    written (isx reads them back as zeros). ``dtype`` is float32 or uint16 (rounded, clipped).
    """
    isx = isx_package()
    path = Path(path)
    arr = _check_movie(movie)
    rate = _check_fr(fr, required=True)
    check_positive("pixel_size_um", pixel_size_um)
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.uint16)):
        raise ParameterError(f"dtype={dtype!r} is not allowed for write_isxd: use 'float32' or 'uint16'.")
    T, rows, cols = arr.shape
    drop = sorted({int(i) for i in dropped})
    if drop and (drop[0] < 0 or drop[-1] >= T):
        raise ParameterError(f"dropped={list(dropped)!r} is not allowed: frame indices must be in [0, {T}).")

    period = isx_timing.duration(1 / rate)
    start = isx_timing.time_from_seconds(isx_timing.exact_fraction(start_s))
    timing = isx.Timing(num_samples=T, period=period, start=start, dropped=drop)
    spacing = isx.Spacing(num_pixels=(rows, cols))
    px = isx_timing.exact_fraction(pixel_size_um)
    isx_timing.set_pixel_size(spacing, height_um=px, width_um=px)

    dropped_set = set(drop)
    with atomic_path(path, suffix=".isxd") as tmp:  # isx insists on the .isxd extension
        out = isx.Movie.write(str(tmp), timing, spacing, dt.type)
        c_api = getattr(getattr(isx, "_internal", None), "c_api", None)
        for i in range(T):
            if i in dropped_set:
                continue
            frame = np.asarray(arr[i], dtype=np.float32)
            if dt == np.uint16:
                frame = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
            frame = np.ascontiguousarray(frame)
            if c_api is not None:
                # the public set_frame_data copies through a Python tuple (~13 ms per 256² frame)
                if dt == np.uint16:
                    c_api.isx_movie_write_frame_u16(out._ptr, i, frame.ctypes.data_as(isx._internal.UInt16Ptr))
                else:
                    c_api.isx_movie_write_frame_f32(out._ptr, i, frame.ctypes.data_as(isx._internal.FloatPtr))
            else:  # pragma: no cover - older/newer isx without the private API
                out.set_frame_data(i, frame)
        out.flush()
        del out
    return path


def write_avi(path, movie, *, fr: float, vmin: float | None = None, vmax: float | None = None) -> Path:
    """Write an 8-bit grey AVI with PyAV, lossless (FFV1, else rawvideo).

    Values are mapped linearly from ``vmin..vmax`` (default: the movie's min..max) to 0..255,
    rounded and clipped.
    """
    import av

    path = Path(path)
    arr = _check_movie(movie)
    rate = _check_fr(fr, required=True)
    if vmin is None or vmax is None:
        lo, hi = _minmax(arr)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    span = float(vmax) - float(vmin)
    mult = 255.0 / span if span > 0 else 1.0
    codec = "ffv1" if "ffv1" in av.codecs_available else "rawvideo"
    T, rows, cols = arr.shape
    with atomic_path(path, suffix=path.suffix) as tmp:
        with av.open(str(tmp), mode="w", format="avi") as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = cols, rows, "gray"
            for t0 in range(0, T, CHUNK_FRAMES):
                block = np.asarray(arr[t0 : t0 + CHUNK_FRAMES], dtype=np.float32)
                block = np.clip(np.rint((block - float(vmin)) * mult), 0, 255).astype(np.uint8)
                for frame in block:
                    for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")):
                        container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path
