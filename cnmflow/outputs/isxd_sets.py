"""Inscopix cell sets and event sets (.isxd), one per input movie, written with the `isx` package.

What isx does and does not do (isx 2.0.1), and what we do about it:

- It refuses to overwrite a file, and it does not check trace lengths (a long trace is cut, a
  short one padded with garbage) nor event offsets past the movie's end. We check shapes
  first and write to a temporary ``*.isxd`` name in the same folder, then move it into place
  (refusing, with `OutputExistsError`, when the destination exists).
- Samples marked dropped or cropped in the timing read back as NaN from a cell set, whatever
  value was written there.
- A cell set with zero cells writes and reads back correctly (``num_cells == 0``, timing
  intact). An event set with zero cells does not: the Python API refuses it, and one written
  through the C API reads back with a made-up 1 kHz timing. `write_eventset` raises
  `EmptySetNotSupported` for K = 0 so the caller can record the missing file.
- isx has no API to set a cell set's ``extraProperties`` (only movies have one). The file
  ends with its JSON header (JSON text, a NUL byte, the JSON length as little-endian
  uint64), after all cell data, so we rewrite that header with the properties added; isx
  reads the result back unchanged otherwise.
- Periods are stored as exact ratios (see `cnmflow.isx_timing`); isx's default pixel size
  is 3 µm, so for tif/avi inputs the pixel size is always set from ``dxy``.
"""

from __future__ import annotations

import json
import math
import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from cnmflow import isx_timing
from cnmflow.atomic_write import atomic_path
from cnmflow.isx_package import isx_package
from cnmflow.movies.info import MovieInfo
from cnmflow.pixel_order import column_to_image

#: The statuses isx knows.
STATUSES = ("accepted", "undecided", "rejected")


class OutputError(RuntimeError):
    """An output file could not be written as asked."""


class OutputExistsError(OutputError, FileExistsError):
    """The destination exists; isx cannot overwrite and we never replace a user's file."""


class EmptySetNotSupported(OutputError):
    """isx cannot write this kind of set with zero cells; record the missing file instead."""


# ----------------------------------------------------------------------------- timing / spacing
def output_timing(movie: MovieInfo, *, fr: float, blank_dropped: bool = False):
    """The `isx.Timing` of the outputs that belong to `movie`.

    For an isxd input this is the input's own timing (dropped/cropped samples included), so
    ``input.timing == output.timing``. Otherwise ``movie.n_frames`` samples with an exact
    period of ``1/fr`` seconds, starting at ``movie.start_time`` (else the epoch), and, with
    ``blank_dropped`` (the traces' sets), the frames the file held no image for marked dropped: their
    values are interpolated from the neighbours (:mod:`cnmflow.movies.checks.blank_frames`), not
    recorded, and read back as NaN as an isxd's dropped frames do.
    """
    if movie.timing is not None:
        return movie.timing.to_isx()  # MovieInfo holds plain data; isx objects are made here
    _check_positive("fr", fr)
    dropped = [int(i) for i in movie.blank_frames] if blank_dropped else []
    return isx_package().Timing(num_samples=int(movie.n_frames), period=isx_timing.period_from_rate(fr),
                                start=isx_timing.time_from_datetime(movie.start_time), dropped=dropped)


def output_spacing(movie: MovieInfo, *, dxy: float | Sequence[float]):
    """The `isx.Spacing` of the outputs that belong to `movie`.

    For an isxd input this is the input's own spacing. Otherwise ``movie.frame_shape`` pixels
    of ``1/dxy`` µm (``dxy`` in pixels per µm, CaImAn's meaning; a pair is (rows, cols)
    direction, i.e. pixel height then width).
    """
    if movie.spacing is not None:
        return movie.spacing.to_isx()
    per_um = (dxy, dxy) if np.ndim(dxy) == 0 else tuple(dxy)
    if len(per_um) != 2:
        raise ValueError(f"dxy must be a number or a (rows, cols) pair of pixels per µm, got {dxy!r}")
    for value in per_um:
        _check_positive("dxy", value)
    isx = isx_package()
    spacing = isx.Spacing(num_pixels=tuple(int(v) for v in movie.frame_shape))
    height, width = (1 / isx_timing.exact_fraction(v) for v in per_um)
    isx_timing.set_pixel_size(spacing, height_um=height, width_um=width)
    return spacing


# ----------------------------------------------------------------------------- traces
def cell_names(n_cells: int) -> list[str]:
    """C000, C001, … (more digits once there are 1000 cells or more)."""
    width = max(3, len(str(max(int(n_cells) - 1, 0))))
    return [f"C{k:0{width}d}" for k in range(int(n_cells))]


def split_traces(traces: np.ndarray, offsets: dict[int, tuple[int, int]]) -> dict[int, np.ndarray]:
    """Cut (K, T) traces of a concatenated series into one (K, n_k) array per movie.

    `offsets` maps movie index (the user's order) to its ``(first, stop)`` frame range in the
    concatenation (`MovieSeries.offsets()`); the ranges must tile ``[0, T)`` exactly.
    Returns new arrays keyed by movie index, in increasing index order.
    """
    traces = np.asarray(traces)
    if traces.ndim != 2:
        raise ValueError(f"traces must be a (K, n_frames) array, got shape {traces.shape}")
    T = traces.shape[1]
    ranges = sorted((int(a), int(b), int(k)) for k, (a, b) in offsets.items())
    position = 0
    for a, b, k in ranges:
        if a != position or b < a:
            raise ValueError(f"movie {k} covers frames [{a}, {b}), expected a range starting at frame {position}; "
                             f"the offsets must tile [0, {T}) without gaps or overlaps: {offsets}")
        position = b
    if position != T:
        raise ValueError(f"the movies' frame ranges end at frame {position} but the traces have {T} frames; "
                         "were the traces computed on a different series?")
    return {k: np.array(traces[:, a:b]) for k, (a, b) in sorted(offsets.items())}


# ----------------------------------------------------------------------------- writers
def write_cellset(path: Path, *, footprints: sp.csc_matrix, dims: tuple[int, int], traces: np.ndarray,
                  timing, spacing, statuses: Sequence[str], extra_properties: dict | None = None) -> Path:
    """Write an isxd cell set: one footprint image and one trace per component.

    Parameters
    ----------
    path : destination ``.isxd`` file; must not exist.
    footprints : (rows*cols, K) sparse, pixels in Fortran order (CaImAn's ``A``); written one
        column at a time, never densified as a whole.
    dims : (rows, cols), equal to ``spacing.num_pixels``.
    traces : (K, timing.num_samples) traces of this movie only.
    timing, spacing : `isx.Timing` / `isx.Spacing` (`output_timing` / `output_spacing`).
    statuses : K of "accepted", "undecided", "rejected".
    extra_properties : JSON-serialisable dict stored as the file's ``extraProperties``
        (e.g. the isxd input's), or None to leave isx's null.

    Returns the path written. Cells are named by `cell_names`.
    """
    path = Path(path)
    A = _check_footprints(footprints, dims, spacing)
    K = A.shape[1]
    traces = _check_traces("traces", traces, K, timing)
    statuses = _check_statuses(statuses, K)
    extra_json = _check_extra(extra_properties)
    _check_destination(path)
    names = cell_names(K)
    rows, cols = (int(v) for v in dims)

    def write(tmp: Path) -> None:
        isx = isx_package()
        cellset = isx.CellSet.write(str(tmp), timing, spacing)
        try:
            image = np.zeros(rows * cols, dtype=np.float32)
            for k in range(K):
                lo, hi = A.indptr[k], A.indptr[k + 1]
                image[:] = 0.0
                image[A.indices[lo:hi]] = A.data[lo:hi]  # canonical: no duplicate entries
                # Fortran pixel order: pixel index col*rows + row → (rows, cols) image
                frame = np.ascontiguousarray(column_to_image(image, (rows, cols)))
                trace = np.ascontiguousarray(traces[k], dtype=np.float32)
                cellset.set_cell_data(k, frame, trace, names[k])
            for k, status in enumerate(statuses):
                if status != "undecided":  # isx's default; each set_cell_status rewrites the header
                    cellset.set_cell_status(k, status)
            cellset.flush()
        finally:
            del cellset
        if extra_json is not None:
            _set_extra_properties(tmp, extra_json)

    return _write_via_temporary(path, write)


def write_eventset(path: Path, *, spikes: np.ndarray, timing, cell_names: Sequence[str]) -> Path:
    """Write an isxd event set: for each cell, every sample with ``spikes > 0``.

    Offsets are µs from the start of this movie (sample index × period, rounded to the nearest
    µs with exact rational arithmetic), uint64; amplitudes are the spike values, float32.

    Parameters
    ----------
    path : destination ``.isxd`` file; must not exist.
    spikes : (K, timing.num_samples) deconvolved activity of this movie (CaImAn's ``S``).
    timing : `isx.Timing` of this movie.
    cell_names : K unique names, the cell set's.

    Raises `EmptySetNotSupported` when K = 0 (isx cannot store an event set without cells).
    """
    path = Path(path)
    names = [str(n) for n in cell_names]
    if not names:
        raise EmptySetNotSupported(f"{path}: isx cannot write an event set with zero cells "
                                   "(it reads back with a wrong timing); no event set written")
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"cell_names must be unique, non-empty names, got {names[:10]}{'…' if len(names) > 10 else ''}")
    spikes = _check_traces("spikes", spikes, len(names), timing)
    n = spikes.shape[1]
    period = isx_timing.as_fraction(timing.period)
    if period <= 0:
        raise ValueError(f"timing has a non-positive period ({period} s)")
    # offset_i = round(i * period * 1e6), exactly: (2*i*num*1e6 + den) // (2*den)
    num, den = period.numerator * 1_000_000, period.denominator
    sample_us = (2 * np.arange(n, dtype=object) * num + den) // (2 * den)
    offsets_all = np.asarray(sample_us, dtype=np.uint64)
    duration_us = Fraction(n) * period * 1_000_000
    if n and not offsets_all[-1] < duration_us:
        raise ValueError(f"event offsets reach {int(offsets_all[-1])} µs, past the movie's {float(duration_us):.0f} µs; "
                         "the frame period is too short for µs offsets")
    _check_destination(path)

    def write(tmp: Path) -> None:
        eventset = isx_package().EventSet.write(str(tmp), timing, names)
        try:
            for k in range(len(names)):
                row = spikes[k]
                hits = np.flatnonzero(row > 0)
                eventset.set_cell_data(k, np.ascontiguousarray(offsets_all[hits]),
                                       np.ascontiguousarray(row[hits], dtype=np.float32))
            eventset.flush()
        finally:
            del eventset

    return _write_via_temporary(path, write)


# ----------------------------------------------------------------------------- checks
def _check_positive(name: str, value) -> None:
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_footprints(footprints, dims, spacing) -> sp.csc_matrix:
    if not sp.issparse(footprints):
        raise TypeError(f"footprints must be a scipy.sparse (pixels, K) matrix, got {type(footprints).__name__}")
    dims = tuple(int(v) for v in dims)
    if len(dims) != 2:
        raise ValueError(f"dims must be (rows, cols), got {dims!r}")
    num_pixels = tuple(int(v) for v in spacing.num_pixels)
    if dims != num_pixels:
        raise ValueError(f"dims {dims} (rows, cols) differ from the output spacing's {num_pixels}; "
                         "use the spacing of the movie the footprints were fitted on")
    if footprints.shape[0] != dims[0] * dims[1]:
        raise ValueError(f"footprints have {footprints.shape[0]} pixels but dims {dims} have {dims[0] * dims[1]}")
    A = sp.csc_matrix(footprints, dtype=np.float32, copy=True)  # own copy: canonicalised below
    A.sum_duplicates()
    return A


def _check_traces(name: str, values, K: int, timing) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"{name} must be a (K, n_frames) array, got shape {values.shape}")
    if values.shape[0] != K:
        raise ValueError(f"{name} have {values.shape[0]} rows but there are {K} cells; give one row per cell")
    n = int(timing.num_samples)
    if values.shape[1] != n:
        raise ValueError(f"{name} have {values.shape[1]} frames but the movie's timing has {n} samples "
                         "(isx would silently cut or pad them); give the traces of this movie only "
                         "(split a series with split_traces)")
    return values


def _check_statuses(statuses, K: int) -> list[str]:
    statuses = [str(s) for s in statuses]
    if len(statuses) != K:
        raise ValueError(f"got {len(statuses)} statuses for {K} cells; give one status per cell")
    bad = sorted({s for s in statuses if s not in STATUSES})
    if bad:
        raise ValueError(f"cell statuses {bad} are not allowed; use {', '.join(STATUSES)}")
    return statuses


def _check_extra(extra_properties) -> dict | None:
    if extra_properties is None:
        return None
    if not isinstance(extra_properties, dict):
        raise TypeError(f"extra_properties must be a dict or None, got {type(extra_properties).__name__}")
    try:
        json.dumps(extra_properties)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra_properties must be JSON-serialisable: {exc}") from None
    return extra_properties


def _check_destination(path: Path) -> None:
    if os.path.lexists(path):
        raise OutputExistsError(f"{path} already exists; isx cannot overwrite files and cnmflow never replaces "
                                "them: remove it or choose another output directory")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: the folder {path.parent} does not exist")


# ----------------------------------------------------------------------------- files
def _write_via_temporary(path: Path, write) -> Path:
    """Run `write(tmp)` on a fresh temporary ``.isxd`` beside `path`, then move it to `path`."""
    with atomic_path(path, suffix=".isxd", move=_move_into_place) as tmp:  # isx wants .isxd
        try:
            write(tmp)
        except (OutputError, ValueError, TypeError):
            raise
        except Exception as exc:  # isx raises bare Exception
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise OutputError(f"isx could not write {path}: {detail}") from exc
    return path


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename without ever replacing a file that appeared at `path` meanwhile."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} appeared while it was being written; "
                                "is another run writing to the same output directory?") from None
    except OSError:  # file system without hard links
        if os.path.lexists(path):
            raise OutputExistsError(f"{path} appeared while it was being written") from None
        os.replace(tmp, path)


def _set_extra_properties(path: Path, extra: dict) -> None:
    """Replace the ``extraProperties`` of an isx-written file by rewriting its trailing JSON header."""
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size - 8)
        (length,) = struct.unpack("<Q", fh.read(8))
        start = size - 9 - length
        if length == 0 or start < 0:
            raise OutputError(f"{path}: unexpected isxd layout (no trailing JSON header); cannot set extraProperties")
        fh.seek(start)
        header = json.loads(fh.read(length).decode("utf-8"))
        header["extraProperties"] = extra
        text = json.dumps(header, indent=4).encode("utf-8")
        fh.seek(start)
        fh.truncate()
        fh.write(text + b"\x00" + struct.pack("<Q", len(text)))
