"""AVI movies, decoded with PyAV and converted to grayscale (luma); a colour video whose channels differ is
analysed with a note saying so.

A video of more than 8 bits per sample (16-bit grayscale FFV1, a 12-bit camera's counts) is read as
uint16: its grayscale samples as stored, other formats as 16-bit luma. Converted to 8-bit luma it lost
its low bits (a 12-bit movie kept 16 grey levels) and was analysed as a plausible-looking uint8 movie.

The frame count is what actually decodes (AVI index entries can be empty), and the frame
rate is measured from the decoded frames' timestamps when they are evenly spaced (the
container's nominal rate counts the empty entries too), else the container rate.

When fewer frames decode than the header lists and the decoded timestamps stop before the
listed duration, the file is cut short (a copy that did not finish): the movie is still
analysed, with a note giving both counts (empty entries spread over the whole duration, as
Inscopix writes them, need no note). Frames with every pixel one value are noted as they decode
(``MovieInfo.flat_frames``), so the blank-frame check does not decode the movie again.
"""

from __future__ import annotations

import re
from fractions import Fraction
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.movies.info import MovieInfo, check_chunk, check_range
from cnmflow.progress import report

#: What :mod:`cnmflow.movies.read` registers this reader under (see ``MovieReader``).
KIND = "avi"
EXTENSIONS: tuple[str, ...] = (".avi",)
#: Frames decoded between progress reports while an AVI's frames are counted (every frame is decoded).
REPORT_EVERY = 200
#: Reaching a frame decodes every frame before it: read a range in one pass (``iter_chunks``' start / stop).
SEQUENTIAL = True


@contextmanager
def _container(path: Path):
    import av  # noqa: PLC0415

    try:
        container = av.open(str(path), mode="r")
    except Exception as exc:
        raise MovieError(f"cannot open AVI movie {path}: {exc}; "
                         "check the file is a complete, uncorrupted video") from None
    try:
        if not container.streams.video:
            raise MovieError(f"{path} has no video stream; give a movie file")
        yield container
    finally:
        container.close()


def _decoded_frames(path: Path, container):
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    decoded = 0
    try:
        for frame in container.decode(stream):
            yield frame
            decoded += 1
    except MovieError:
        raise
    except Exception as exc:
        raise MovieError(f"cannot decode AVI movie {path} after {decoded} frames: {exc}; "
                         "the file may be truncated or damaged (copy it again)") from None


def _missing_frames_note(path: Path, stream, n: int, pts: list[int] | None, time_base) -> str | None:
    """A note when fewer frames decode than the header lists and the decoded ones stop early."""
    listed = int(stream.frames or 0)
    if listed <= n:
        return None
    nominal = stream.average_rate or stream.base_rate  # the header's rate (the listed duration of a cut file is not)
    listed_s = float(listed / nominal) if nominal else None
    if pts and len(pts) >= 2 and time_base and listed_s:
        step = int(np.median(np.diff(np.asarray(pts, dtype=np.int64))))
        decoded_s = float((pts[-1] + step) * Fraction(time_base))
        if decoded_s >= 0.99 * listed_s:
            return None  # empty index entries spread over the whole recording, not a cut file
        where = f"; the decoded frames end at {decoded_s:.4g} s of the {listed_s:.4g} s listed"
    else:
        where = ""
    return (f"{path}: the AVI header lists {listed} frames but only {n} decode{where}; the file looks truncated "
            f"or damaged (copy it again if it should be complete) — only the {n} decoded frames are analysed")


def _rate_from_pts(pts: list[int], time_base: Fraction | None) -> float | None:
    """Frames per second from evenly spaced decoded timestamps (None when uneven or missing)."""
    if len(pts) < 2 or not time_base:
        return None
    steps = np.diff(np.asarray(pts, dtype=np.int64))
    if not np.all(steps > 0):
        return None
    step = int(np.median(steps))
    if not np.all(np.abs(steps - step) <= 1e-3 * step):
        return None
    return float(1 / (step * Fraction(time_base)))


#: integer grayscale formats of 9 to 16 bits, which PyAV gives as their stored uint16 samples
_DEEP_GRAY = re.compile(r"gray(9|1[0-6])(le|be)")


def _dtype_of(frame) -> np.dtype:
    """uint16 for a video of more than 8 bits per sample (its depth would be lost in 8 bits), else uint8."""
    deep = max((int(component.bits) for component in frame.format.components), default=8) > 8
    return np.dtype(np.uint16 if deep else np.uint8)


#: mean difference between colour channels (grey levels of 8 bits) below which a colour video holds a grey picture
GREY_SPREAD = 2.0


def _colour_note(path: Path, frame) -> str | None:
    """A note when the first frame of a colour video is not grey: its luma, which the fit reads, mixes channels
    that may hold different things (fluorescence in one, a red marker or an overlay in another). Grey pictures
    stored in a colour format (Inscopix's and most miniscopes' yuv420p) get none."""
    if frame.format.name.startswith("gray"):
        return None
    rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
    spreads = [float(np.abs(rgb[..., a] - rgb[..., b]).mean()) for a, b in ((0, 1), (1, 2))]
    if max(spreads) <= GREY_SPREAD:
        return None
    return (f"{path} is a colour video whose channels differ (mean |R-G| {spreads[0]:.1f}, |G-B| {spreads[1]:.1f} "
            "grey levels on frame 0); it is analysed as its luma, a weighted sum of R, G and B: if one channel holds "
            "the fluorescence, export that channel alone as a grayscale movie")


#: Video codecs that discard information (FFmpeg's names): block artefacts and smoothing that can hide faint cells
#: or make false ones. Raw, FFV1, HuffYUV, UT Video, PNG and the like keep every sample.
_LOSSY_CODECS = frozenset({"mjpeg", "mjpegb", "mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3", "h263", "h264", "hevc",
                           "mpeg1video", "mpeg2video", "vp8", "vp9", "av1", "wmv1", "wmv2", "wmv3", "dvvideo",
                           "cinepak", "indeo3", "indeo4", "indeo5", "theora", "flv1", "msvideo1", "svq1", "svq3"})


def _lossy_note(path: Path, stream) -> str | None:
    """The note for a video stored with a lossy codec (as a lossy JPEG TIFF gets one)."""
    name = str(getattr(stream.codec_context, "name", "") or "")
    if name not in _LOSSY_CODECS:
        return None
    return (f"{path} is compressed with the lossy {name} codec: its pixels are not the recorded ones, and compression "
            "artefacts can hide faint cells or add false ones; analyse the uncompressed (or losslessly compressed, "
            "e.g. FFV1) original where there is one")


def read_info(path: Path) -> MovieInfo:
    with _container(path) as container:
        stream = container.streams.video[0]
        lossy = _lossy_note(path, stream)
        n, shape, pts, time_base, dtype, colour, flat = 0, None, [], None, np.dtype(np.uint8), None, []
        listed = max(int(stream.frames or 0), 1)  # the header's count: what the progress is reported against
        for frame in _decoded_frames(path, container):
            if n % REPORT_EVERY == 0:
                report(f"counting {path.name}'s frames", min(n / listed, 0.99))
            size = (int(frame.height), int(frame.width))
            if shape is None:
                shape = size
                time_base = frame.time_base or stream.time_base
                dtype = _dtype_of(frame)
                colour = _colour_note(path, frame)
            elif size != shape:             # every frame is decoded here: refuse it now
                raise _size_changes(path, n, size, shape)
            image = _gray(frame, dtype)
            if (image == image.flat[0]).all():
                flat.append(n)
            if pts is not None:
                if frame.pts is None:
                    pts = None
                else:
                    pts.append(int(frame.pts))
            n += 1
        if shape is None:
            shape = (int(stream.codec_context.height or 0), int(stream.codec_context.width or 0))
        rate = _rate_from_pts(pts, time_base) if pts is not None else None
        note = _missing_frames_note(path, stream, n, pts, time_base)
        source = "avi frame timestamps"
        if rate is None:
            nominal = stream.average_rate or stream.guessed_rate or stream.base_rate
            rate = float(nominal) if nominal else None
            source = "avi container" if rate else None
    return MovieInfo(path=path, kind="avi", n_frames=n, frame_shape=shape, dtype=dtype,
                     frame_rate=rate, frame_rate_source=source, notes=tuple(filter(None, (colour, note, lossy))),
                     flat_frames=tuple(flat))


def _size_changes(path: Path, index: int, shape: tuple[int, ...], expected: tuple[int, int]) -> MovieError:
    """The refusal of a video whose frame size changes (a movie needs one frame size)."""
    return MovieError(f"{path}: frame {index} is {tuple(shape)}, expected {expected}; frame size changes inside "
                      "the video (re-export it at one size)")


def _gray(frame, dtype: np.dtype) -> np.ndarray:
    """The frame as grayscale in ``dtype``: a deep grayscale frame's stored samples, else luma."""
    if dtype == np.uint8:
        return frame.to_ndarray(format="gray")
    if _DEEP_GRAY.fullmatch(frame.format.name):
        return frame.to_ndarray()
    return frame.to_ndarray(format="gray16le")


def iter_chunks(info: MovieInfo, *, chunk_frames: int, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    chunk_frames = check_chunk(chunk_frames)
    stop = info.n_frames if stop is None else stop
    start, stop = check_range(info, start, stop)
    if start == stop:
        return
    rows, cols = info.frame_shape
    with _container(info.path) as container:
        block = np.empty((min(chunk_frames, stop - start), rows, cols), np.float32)
        filled, first, index = 0, start, -1
        for index, frame in enumerate(_decoded_frames(info.path, container)):
            if index < start:
                continue
            image = _gray(frame, info.dtype)
            if image.shape != (rows, cols):
                raise _size_changes(info.path, index, image.shape, (rows, cols))
            block[filled] = image
            filled += 1
            if filled == block.shape[0]:
                yield first, block
                first += filled
                filled = 0
                if first >= stop:
                    return
                block = np.empty((min(chunk_frames, stop - first), rows, cols), np.float32)
        raise MovieError(f"{info.path}: only {index + 1} frames decode now, but {info.n_frames} did when the "
                         "file was first read; was the file changed?")


def read_frames(info: MovieInfo, start: int, stop: int) -> np.ndarray:
    start, stop = check_range(info, start, stop)
    if start == stop:
        return np.empty((0, *info.frame_shape), np.float32)
    return next(iter_chunks(info, chunk_frames=stop - start, start=start, stop=stop))[1]


def raw_layout(info: MovieInfo) -> None:
    """AVI frames are decoded video, never a raw block: always read through a work copy."""
    return None
