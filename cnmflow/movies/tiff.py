"""TIFF movies (one frame per page, or one contiguous ImageJ block), read with tifffile.

Uncompressed contiguous files are read as one raw block (and can be read in place by the fit:
:func:`raw_layout`); others are read page by page, only the pages of the requested range.
"""

from __future__ import annotations

import logging
import math
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.movies.info import MovieInfo, RawLayout, check_chunk, check_range, read_raw

#: What :mod:`cnmflow.movies.read` registers this reader under (see ``MovieReader``).
KIND = "tiff"
EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")

_FRAME_AXES = set("TZIQ")  # time, ImageJ slices, generic image sequence, unknown


#: what tifffile logs (as warnings, not errors) when a file ends before its page chain or its series metadata do
_DAMAGE_SIGNS = ("invalid page offset", "failed to reshape", "corrupted")


class _Complaints(logging.Handler):
    """The warnings tifffile logs while a file is parsed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _refuse_damaged(path: Path) -> Iterator[None]:
    """Refuse a file tifffile can read only in part. A TIFF cut short (a copy still running, a full disk) still
    opens: tifffile logs that its page chain or its series metadata point past its end and offers fewer frames
    (often one) or the promised frames without their data — which reached the fit as a one-frame movie or failed
    mid-run on a reshape."""
    logger, complaints = logging.getLogger("tifffile"), _Complaints()
    logger.addHandler(complaints)
    try:
        yield
    except _Truncated:
        raise                           # the reading's own count of what the file holds says more
    except MovieError:
        if not _damage(complaints):     # what the reading found, unless the file is damaged
            raise
    finally:
        logger.removeHandler(complaints)
    damage = _damage(complaints)
    if damage:
        raise MovieError(f"{path} is truncated or damaged (tifffile: {damage[0]}); copy the complete file again")


def _damage(complaints: _Complaints) -> list[str]:
    """tifffile's damage warnings, without the ``<tifffile.… @offset>`` prefix it gives them."""
    return [re.sub(r"^<[^>]*>\s*", "", message) for message in complaints.messages
            if any(sign in message for sign in _DAMAGE_SIGNS)]


class _Truncated(MovieError):
    """A contiguous series cut short, with the count of the frames its file holds."""


def _frames_held(path: Path, series, frame_bytes: int) -> int:
    """How many whole frames of a contiguous series (``series.dataoffset`` set) the file's bytes hold."""
    return max(os.path.getsize(path) - int(series.dataoffset), 0) // frame_bytes


def _check_complete(path: Path, series, n_frames: int, frame_bytes: int) -> None:
    """A contiguous series whose file ends before its last frame's data: refused, saying how many frames it holds."""
    if series.dataoffset is None:
        return
    held = _frames_held(path, series, frame_bytes)
    if held < n_frames:
        raise _Truncated(f"{path} is truncated: it promises {n_frames} frames but holds the data of {held}; "
                         "copy the complete file again")


@contextmanager
def _tiff(path: Path):
    import tifffile  # noqa: PLC0415

    try:
        tf = tifffile.TiffFile(str(path))
    except Exception as exc:
        raise MovieError(f"cannot read TIFF movie {path}: {exc}; check the file is a complete, uncorrupted TIFF") from None
    try:
        yield tf
    finally:
        tf.close()


def _positive(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


_TIME_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
               "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
               "us": 1e-6, "usec": 1e-6, "µs": 1e-6, "μs": 1e-6, "\\u00b5s": 1e-6, "microsecond": 1e-6,
               "microseconds": 1e-6, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
               "ns": 1e-9, "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0}


def _rate_of_interval(interval: Any, unit: Any) -> float | None:
    """Frames per second of a positive frame interval in a time unit of :data:`_TIME_UNITS`; None where either is
    missing or the unit is not known (never guessed as seconds)."""
    interval, scale = _positive(interval), _TIME_UNITS.get(str(unit).strip().lower())
    return None if interval is None or scale is None else 1.0 / (interval * scale)


def frame_rate_from_imagej(meta: dict | None) -> tuple[float | None, str | None]:
    """Frame rate from ImageJ metadata: `finterval` (in `tunit`, default seconds), else `fps`.

    A `tunit` not known here leaves `finterval` unused: read as seconds, 0.05 hr per frame made 20 Hz."""
    if not meta:
        return None, None
    rate = _rate_of_interval(meta.get("finterval"), meta.get("tunit", "sec"))
    if rate is not None:
        return rate, "ImageJ finterval"
    fps = _positive(meta.get("fps"))
    if fps is not None:
        return fps, "ImageJ fps"
    return None, None


def frame_rate_from_ome(root) -> tuple[float | None, str | None]:
    """Frame rate from OME-XML (``root``: :func:`_ome_root`): the first image's ``Pixels TimeIncrement`` (in
    ``TimeIncrementUnit``, default seconds). Without it an OME-TIFF (Bio-Formats, Micro-Manager) was analysed at the
    default 30 fps."""
    if root is None:
        return None, None
    pixels = next((element for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None, None
    rate = _rate_of_interval(pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit", "s"))
    return (rate, "OME TimeIncrement") if rate is not None else (None, None)


def frame_rate_from_scanimage(meta: dict | None) -> tuple[float | None, str | None]:
    """Frame rate from ScanImage metadata (`SI.hRoiManager.scanFrameRate`, or the volume rate for stacks)."""
    if not meta:
        return None, None
    frame_data = meta.get("FrameData", meta) if isinstance(meta, dict) else {}
    if not isinstance(frame_data, dict):
        return None, None
    slices = frame_data.get("SI.hStackManager.actualNumSlices", frame_data.get("SI.hStackManager.numSlices", 1))
    try:
        slices = int(slices)
    except (TypeError, ValueError):
        slices = 1
    keys = ["SI.hRoiManager.scanVolumeRate", "SI.hRoiManager.scanFrameRate"] if slices > 1 else [
        "SI.hRoiManager.scanFrameRate", "SI.hRoiManager.scanVolumeRate"]
    for key in keys:
        rate = _positive(frame_data.get(key))
        if rate is not None:
            return rate, "ScanImage"
    return None, None


def _scanimage_channels(meta: dict | None) -> int:
    if not isinstance(meta, dict):
        return 1
    saved = meta.get("FrameData", {}).get("SI.hChannels.channelSave")
    if isinstance(saved, (list, tuple)):
        return len(saved)
    return 1


def _scanimage_planes(meta: dict | None) -> int:
    """Planes per volume of a ScanImage recording (``SI.hStackManager``: fast-z stacks), 1 for a single plane."""
    frame_data = meta.get("FrameData", {}) if isinstance(meta, dict) else {}
    if not isinstance(frame_data, dict):
        return 1
    switches = [frame_data[key] for key in ("SI.hStackManager.enable", "SI.hFastZ.enable") if key in frame_data]
    if switches and not any(switches):  # slices configured, stacks off: one plane
        return 1
    planes = frame_data.get("SI.hStackManager.actualNumSlices", frame_data.get("SI.hStackManager.numSlices", 1))
    try:
        return max(int(planes), 1)
    except (TypeError, ValueError):
        return 1


def _pixel_size_um(tf, ij: dict | None) -> float | None:
    page = tf.pages[0]
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    try:
        num, den = tag.value
        per_unit = num / den
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not per_unit > 0:
        return None
    unit = str((ij or {}).get("unit", "")).strip().lower()
    if unit in ("micron", "microns", "um", "µm", "\\u00b5m", "μm"):
        return 1.0 / per_unit
    res_unit = page.tags.get("ResolutionUnit")
    res_unit = int(res_unit.value) if res_unit is not None else 2
    if res_unit == 3:  # centimetre
        return 1e4 / per_unit
    if res_unit == 2 and per_unit != 1 and not ij:  # inch; 1 px/inch is the "no resolution" default
        return 25400.0 / per_unit
    return None


_AXIS_NAMES = {"T": "time", "Z": "z-planes", "C": "channels", "S": "samples (colour)", "Q": "unnamed",
               "I": "image sequence", "A": "angles", "P": "phases", "R": "tiles", "H": "lifetime",
               "E": "lambda", "V": "views", "L": "exposure"}
_HOW_TO_SAVE = ("save it as a 3-D (frames, rows, cols) stack: keep one channel or z-plane (Fiji: Image > Color > "
                "Split Channels, or Image > Hyperstacks > Reduce Dimensionality), or, if every extra axis is time, "
                "reshape it (numpy: movie.reshape(-1, rows, cols)) and write it again")


def _describe_axes(axes: str, shape: tuple[int, ...]) -> str:
    return ", ".join(f"{ax}={n} ({_AXIS_NAMES.get(ax, '?')})" for ax, n in zip(axes, shape) if ax not in "YX")


class SingleImageError(MovieError):
    """A TIFF of one 2-D image: a frame of an image sequence (one file per frame) rather than a movie."""


def _refuse_samples(path: Path, samples: int, shape: tuple[int, ...], axes: str) -> None:
    """Refuse a file of several samples per pixel: a colour image holds 3 or 4; more are an array saved in another
    axis order (numpy's (rows, cols, frames) written as one image of ``frames`` samples per pixel), where nothing
    in the file says which axis is time."""
    if samples <= 4:
        raise MovieError(
            f"{path} has {samples} samples per pixel (RGB/colour; shape {shape}, axes {axes!r}); "
            "give a single-channel grayscale movie (convert it to grayscale, e.g. Fiji: Image > Type > 8-bit, "
            "or keep one colour channel)")
    raise MovieError(
        f"{path} is one image of {samples} samples per pixel (shape {shape}, axes {axes!r}): more than a colour "
        "image holds, so likely a movie saved frames-last, e.g. a (rows, cols, frames) array, and nothing in the "
        "file says which axis is time; save it as (frames, rows, cols), e.g. numpy: "
        "tifffile.imwrite(new_path, np.moveaxis(movie, -1, 0)) for a (rows, cols, frames) array")


def _frames_last(series) -> bool:
    """True where a series' frame axis (its one non-spatial axis longer than 1) comes after its rows (axes 'YXT',
    'YXZ', as tifffile records a numpy (rows, cols, frames) array written with those axes): its pages are then
    rows of the movie, not frames."""
    axes, shape = str(series.axes), tuple(series.shape)
    later = [ax for ax, n in zip(axes[axes.index("Y") + 1:], shape[axes.index("Y") + 1:]) if ax not in "XS" and n > 1]
    return bool(later)


def _frames_last_view(path: Path, tf) -> np.ndarray:
    """A contiguous frames-last series (:func:`_frames_last`) as a read-only (frames, rows, cols) view of a memory
    map of its block: a frame range reads only those frames' values (strided), never the whole file."""
    series = tf.series[0]
    dtype = np.dtype(series.dtype).newbyteorder(tf.byteorder)
    stored = np.memmap(path, dtype=dtype, mode="r", offset=int(series.dataoffset), shape=tuple(series.shape))
    kept = [(ax, n) for ax, n in zip(str(series.axes), series.shape) if ax in "YX" or n > 1]
    view = stored.reshape([n for _, n in kept])  # length-1 axes dropped: still a view of the map
    axes = "".join(ax for ax, _ in kept)
    frame_axis = next(k for k, ax in enumerate(axes) if ax not in "YX")
    return np.moveaxis(view, [frame_axis, axes.index("Y"), axes.index("X")], [0, 1, 2])


def _check_frames_last_readable(path: Path, series) -> None:
    """A frames-last series is read from its raw block; compressed or scattered, every frame would need the whole
    file decoded: refused with how to save it frames-first."""
    if _frames_last(series) and series.dataoffset is None:
        raise MovieError(
            f"{path} stores its frames last (axes {series.axes!r}, shape {tuple(series.shape)}) and compressed or in "
            "scattered pieces, which cannot be read a frame range at a time; save it uncompressed as (frames, rows, "
            "cols), e.g. numpy: tifffile.imwrite(new_path, np.moveaxis(tifffile.imread(path), -1, 0))")


def _frame_layout(path: Path, series, ij: dict | None) -> int:
    """Number of frames of a (frames, rows, cols) series; raises for anything else.

    Only one non-spatial axis longer than 1 is accepted: with two or more (T and C, or a
    plain 4-D array whose axes tifffile can only call Q) nothing says which is time, and
    reading them as one interleaved sequence would mix channels or planes into the movie.
    """
    shape, axes = tuple(series.shape), str(series.axes)
    extra = [(ax, n) for ax, n in zip(axes, shape) if ax not in "YX" and n > 1]
    if "Y" not in axes or "X" not in axes:
        raise MovieError(f"{path}: TIFF has axes {axes!r} {shape}, not a movie of 2-D frames")
    if not extra:
        raise SingleImageError(
            f"{path} holds a single 2-D image {shape}, not a movie; give a multi-page TIFF with one frame per page"
        )
    if any(ax == "S" for ax, _ in extra):
        _refuse_samples(path, dict(extra)["S"], shape, axes)
    channel = [n for ax, n in extra if ax == "C"]
    colour_mode = str((ij or {}).get("mode", "grayscale")).lower() in ("composite", "color")
    if channel and (len(extra) > 1 or colour_mode):
        raise MovieError(
            f"{path} has {channel[0]} channels (axes {axes!r}, shape {shape}); "
            "give a single-channel movie (split the channels first, e.g. Fiji: Image > Color > Split Channels)"
        )
    if len(extra) > 1:
        raise MovieError(
            f"{path} is a {len(shape)}-D TIFF of shape {shape} ({_describe_axes(axes, shape)}), not unambiguously "
            f"(frames, rows, cols): the extra axes could be channels, z-planes or blocks of frames; {_HOW_TO_SAVE}"
        )
    ax, n = extra[0]
    if ax not in _FRAME_AXES and ax != "C":
        raise MovieError(f"{path}: TIFF axis {ax!r} of size {n} is not a time axis (axes {axes!r}); give a movie")
    return int(n)


#: compressions whose decoded pixels are not the ones recorded (blocks, rings, lost faint signal)
_LOSSY = {"OJPEG", "JPEG", "JPEG_99", "ALT_JPEG", "JPEG_LOSSY", "JPEG_2000_LOSSY"}


def _codec_notes(path: Path, page) -> tuple[str, ...]:
    """Refuse, when the file is opened, a compression or predictor this installation cannot decode: tifffile reads
    such a file's metadata and fails only on its first frame, after validation said it was fine (LZW, JPEG, zstd,
    the floating-point predictor need the optional ``imagecodecs`` package). A lossy compression is noted."""
    from tifffile import TIFF  # noqa: PLC0415

    for table, code, what in ((TIFF.DECOMPRESSORS, page.compression, "compressed with"),
                              (TIFF.UNPREDICTORS, page.predictor, "stored with the predictor")):
        try:
            table[code]
        except KeyError:
            raise MovieError(f"{path} is {what} {getattr(code, 'name', code)}, which this installation cannot "
                             "decode; install the imagecodecs package (pip install imagecodecs) or save the movie "
                             "uncompressed (Fiji: File > Save As > Tiff...)") from None
    name = getattr(page.compression, "name", str(page.compression))
    if name in _LOSSY:
        return (f"{path} is compressed with lossy {name}: its pixels are not the recorded ones, and compression "
                "artefacts can hide faint cells or add false ones; analyse the uncompressed original where there is "
                "one",)
    return ()


class _PagesSeries:
    """Several series of single frames (e.g. a stack written block by block): all pages, in order."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype, self.axes, self.dataoffset = shape, dtype, "IYX", None


def _refuse_ome_images(path: Path, tf) -> None:
    """An OME-TIFF's images are separate acquisitions (stage positions, fields of view, wells), each with its own
    time axis; read page after page they made one movie of several places, which the fit analysed as one field."""
    if not tf.is_ome:
        return
    images = "; ".join(f"{s.name or k} {tuple(s.shape)} axes {s.axes!r}" for k, s in enumerate(tf.series[:4]))
    raise MovieError(
        f"{path} is an OME-TIFF holding {len(tf.series)} images ({images}{'; …' if len(tf.series) > 4 else ''}), "
        "e.g. stage positions or fields of view; save each image as its own TIFF (Fiji: File > Import > "
        "Bio-Formats, one series at a time) and analyse one; if they are consecutive blocks of one recording, "
        "write it as one image")


def _ome_files(path: Path, root) -> tuple[str, ...]:
    """The files an OME-TIFF's image spreads its frames over (Micro-Manager and Bio-Formats split long recordings
    into ``name.ome.tif``, ``name_1.ome.tif``, …; the first file's metadata describes them all), by the names its
    TiffData elements give, in order, this file's own by its name now; () where every frame lies in this file.

    tifffile reads such a series across the files: listed with the others, their frames were read twice; alone, a
    missing part read as frames of zeros. ``root``: :func:`_ome_root`."""
    image = root.find("{*}Image") if root is not None else None
    if image is None:
        return ()
    own, names = root.get("UUID"), []
    for uuid in image.iterfind("{*}Pixels/{*}TiffData/{*}UUID"):
        name = path.name if own and (uuid.text or "").strip() == own else uuid.get("FileName")
        if name and name not in names:
            names.append(name)
    if own is None and len(names) == 1:  # no UUID of its own to tell: one name is this file's (perhaps renamed)
        return ()
    return tuple(names) if any(name != path.name for name in names) else ()


def _ome_root(tf):
    """The parsed OME-XML of an OME-TIFF (this file's own description), or None."""
    import xml.etree.ElementTree as ElementTree  # noqa: PLC0415

    if not tf.is_ome:
        return None
    try:
        return ElementTree.fromstring(tf.ome_metadata or "")
    except ElementTree.ParseError:
        return None


def _ome_metadata_file(root) -> str:
    """The file that holds the metadata of the multi-file OME-TIFF this file is a later part of (its BinaryOnly
    element's MetadataFile: Micro-Manager's ``name_1.ome.tif``, ``name_2.ome.tif``, …), or "" where this file holds
    its own. Alone, or listed without that file, such a part was analysed as a whole recording. ``root``:
    :func:`_ome_root`."""
    binary_only = root.find("{*}BinaryOnly") if root is not None else None
    return (binary_only.get("MetadataFile") or "") if binary_only is not None else ""


def _single_series_view(path: Path, tf):
    first = tf.series[0]
    frame = tuple(first.shape[first.axes.index(a)] for a in "YX") if "Y" in first.axes and "X" in first.axes else None
    pages = tf.pages
    for page in pages:
        if int(getattr(page, "samplesperpixel", 1)) > 1:
            raise MovieError(
                f"{path}: page {page.index} has {page.samplesperpixel} samples per pixel (RGB/colour, shape "
                f"{tuple(page.shape)}); give a single-channel grayscale movie"
            )
        if tuple(page.shape) != frame or page.dtype != first.dtype:
            raise MovieError(
                f"{path} holds {len(tf.series)} image series of different frame sizes or types: page {page.index} is "
                f"{'x'.join(map(str, page.shape))} {page.dtype}, the first frame {'x'.join(map(str, frame or ()))} "
                f"{first.dtype}; give a TIFF of the movie's frames alone, one size and type (e.g. open it in Fiji, "
                "remove the odd images and save the stack again)"
            )
    return _PagesSeries((len(pages), *frame), first.dtype)


def read_info(path: Path) -> MovieInfo:
    with _refuse_damaged(path), _tiff(path) as tf:
        try:
            if not tf.series:
                raise MovieError(f"cannot read TIFF movie {path}: it holds no images; check the file is complete and uncorrupted")
            series = tf.series[0]
            ij = tf.imagej_metadata if tf.is_imagej else None
            if len(tf.series) > 1:
                _refuse_ome_images(path, tf)
                series = _single_series_view(path, tf)
            ome = _ome_root(tf)  # parsed once: the file list, the metadata file and the frame rate read it
            ome_files = _ome_files(path, ome) if len(tf.series) == 1 else ()
            ome_metadata_file = _ome_metadata_file(ome)
            if ome_files:  # this file's own pages: the others are movies of the series in their own right
                series = _single_series_view(path, tf)
            si = tf.scanimage_metadata if tf.is_scanimage else None
            if _scanimage_channels(si) > 1:
                raise MovieError(
                    f"{path} is a ScanImage file with {_scanimage_channels(si)} saved channels; "
                    "give a single-channel movie"
                )
            planes = _scanimage_planes(si)
            if planes > 1:  # its pages interleave the planes: read as frames, they made a movie of alternating planes
                raise MovieError(
                    f"{path} is a ScanImage volume recording of {planes} planes per volume (SI.hStackManager); its "
                    f"pages interleave the planes; give one plane as its own movie (numpy: pages k::{planes}, "
                    "flyback frames removed), one movie per plane"
                )
            n = _frame_layout(path, series, ij)
            _check_frames_last_readable(path, series)
            notes = _codec_notes(path, tf.pages.first)
            rows, cols = (int(series.shape[series.axes.index(a)]) for a in "YX")
            dtype = np.dtype(series.dtype)
            if dtype.kind not in "uif":
                raise MovieError(f"{path}: pixel type {dtype} is not a real number type; give an integer or float movie")
            if len(tf.series) == 1:
                _check_complete(path, series, n, rows * cols * dtype.itemsize)
            rate, source = frame_rate_from_imagej(ij)
            if rate is None:
                rate, source = frame_rate_from_scanimage(si)
            if rate is None:
                rate, source = frame_rate_from_ome(ome)
            pixel = _pixel_size_um(tf, ij)
        except MovieError:
            raise
        except Exception as exc:
            raise MovieError(f"cannot read TIFF movie {path}: {exc}; check the file is a complete, uncorrupted TIFF") from None
    return MovieInfo(path=path, kind="tiff", n_frames=n, frame_shape=(rows, cols), dtype=dtype,
                     frame_rate=rate, frame_rate_source=source, pixel_size_um=pixel, notes=notes, ome_files=ome_files,
                     ome_metadata_file=ome_metadata_file)


def raw_layout(info: MovieInfo) -> RawLayout | None:
    """Where the frames lie in the file when they are one uncompressed, contiguous block tifffile can
    locate (most TIFFs that ImageJ, ScanImage or tifffile write); None otherwise (compressed, pages
    scattered, several series, shorter than promised), when the pages are read one by one."""
    with _tiff(info.path) as tf:
        return _layout_of(info, tf)


def _layout_of(info: MovieInfo, tf) -> RawLayout | None:
    series = tf.series[0]
    if len(tf.series) > 1 or info.ome_files or series.dataoffset is None or _frames_last(series):
        return None
    # tifffile reports the native dtype; the bytes on disk are in the file's byte order
    # (ImageJ/Fiji write big-endian by default)
    on_disk = np.dtype(series.dtype).newbyteorder(tf.byteorder)
    rows, cols = info.frame_shape
    if _frames_held(info.path, series, rows * cols * on_disk.itemsize) < info.n_frames:
        return None
    return RawLayout(path=info.path, dtype=on_disk, offset=int(series.dataoffset))


class _Reader:
    """An open TIFF that reads frame ranges (with plain reads of the raw block where the layout allows)."""

    def __init__(self, info: MovieInfo):
        self.info = info
        self._ctx = _tiff(info.path)
        self.tf = self._ctx.__enter__()
        self.all_pages = len(self.tf.series) > 1 or bool(info.ome_files)  # this file's pages alone
        self.layout = _layout_of(info, self.tf)
        # pages that are rows of the movie (axes 'YXT'): read through a map of the block, frame axis first
        self.frames_last = None if self.all_pages or not _frames_last(self.tf.series[0]) else _frames_last_view(
            info.path, self.tf)

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop == start:
            return np.empty((0, *self.info.frame_shape), np.float32)
        if self.layout is not None:
            return read_raw(self.layout, self.info.frame_shape, start, stop)
        if self.frames_last is not None:
            return np.array(self.frames_last[start:stop], dtype=np.float32)
        try:
            if self.all_pages:
                block = self.tf.asarray(key=slice(start, stop))
            else:
                block = self.tf.asarray(key=slice(start, stop), series=0)
        except Exception as exc:
            raise MovieError(f"cannot read frames {start}..{stop - 1} of {self.info.path}: {exc}") from None
        block = np.asarray(block, dtype=np.float32).reshape(stop - start, *self.info.frame_shape)
        return block

    def close(self) -> None:
        self.frames_last = None  # the map is closed with its last reference
        self._ctx.__exit__(None, None, None)


def read_frames(info: MovieInfo, start: int, stop: int) -> np.ndarray:
    start, stop = check_range(info, start, stop)
    reader = _Reader(info)
    try:
        return reader.read(start, stop)
    finally:
        reader.close()


def iter_chunks(info: MovieInfo, *, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    chunk_frames = check_chunk(chunk_frames)
    reader = _Reader(info)
    try:
        for first in range(0, info.n_frames, chunk_frames):
            yield first, reader.read(first, min(first + chunk_frames, info.n_frames))
    finally:
        reader.close()
