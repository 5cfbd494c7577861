"""``output_metadata.json``: what each output file holds, read back from the files themselves.

Per cell set: cell counts by status under ``metrics`` (the reference tool's key names:
``num_accepted_cells``, ``num_undecided_cells``, ``num_rejected_cells``, ``total_num_cells``),
``timing`` and ``spacing``. Per event set: cell and event counts, ``timing``.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from cnmflow import isx_timing
from cnmflow.atomic_write import atomic_path
from cnmflow.isx_package import isx_package
from cnmflow.outputs.isxd_sets import STATUSES


def _timing(timing) -> dict:
    """Plain values of an isx timing (read while its owner is alive: isx timings are views)."""
    period = isx_timing.as_fraction(timing.period)
    n = int(timing.num_samples)
    start = isx_timing.time_to_datetime(timing.start)
    impl = timing.start._impl.secs_since_epoch
    start_s = Fraction(int(impl.num), int(impl.den))
    end = isx_timing.time_to_datetime(isx_timing.time_from_seconds(start_s + n * period,
                                                                   int(timing.start._impl.utc_offset)))
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "start_s": float(start_s),
        "end_s": float(start_s + n * period),
        "period_s": float(period),
        "period": {"num": period.numerator, "den": period.denominator},
        "sampling_rate_hz": float(1 / period) if period else None,
        "num_samples": n,
        "dropped": [int(i) for i in timing.dropped],
        "cropped": [[int(a), int(b)] for a, b in timing.cropped],
    }


def _spacing(spacing) -> dict:
    impl = spacing._impl
    return {
        "num_pixels": [int(impl.num_rows), int(impl.num_cols)],
        "pixel_size_um": [float(isx_timing.as_fraction(impl.pixel_height)),
                          float(isx_timing.as_fraction(impl.pixel_width))],
    }


def describe_cellset(path: str | os.PathLike) -> dict:
    """Counts by status, timing and spacing of an isxd cell set, read back with isx.

    ``spacing.pixel_size_um`` is [height, width] in µm; ``timing.start``/``end`` are ISO 8601
    with the file's UTC offset, ``end = start + num_samples × period``.
    """
    cellset = isx_package().CellSet.read(os.fspath(path))
    try:
        counts = dict.fromkeys(STATUSES, 0)
        n = int(cellset.num_cells)
        for k in range(n):
            counts[cellset.get_cell_status(k)] += 1
        return {
            "type": "cellset",
            "metrics": {f"num_{s}_cells": counts[s] for s in STATUSES} | {"total_num_cells": n},
            "timing": _timing(cellset.timing),
            "spacing": _spacing(cellset.spacing),
        }
    finally:
        del cellset


def describe_eventset(path: str | os.PathLike) -> dict:
    """Cell and event counts and timing of an isxd event set, read back with isx."""
    eventset = isx_package().EventSet.read(os.fspath(path))
    try:
        n = int(eventset.num_cells)
        per_cell = [int(eventset.get_cell_data(k)[0].size) for k in range(n)]
        return {
            "type": "eventset",
            "metrics": {"total_num_cells": n, "total_num_events": int(sum(per_cell)),
                        "num_events_per_cell": per_cell},
            "timing": _timing(eventset.timing),
        }
    finally:
        del eventset


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def write_output_metadata(path: str | os.PathLike, entries: dict[str, dict]) -> Path:
    """Write ``entries`` (output file name → description) as indented JSON; temp file + rename.

    An existing file at `path` is replaced (it is this run's own summary).
    """
    path = Path(os.fspath(path))
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise TypeError("entries must be a dict keyed by output file name (str)")
    text = json.dumps(entries, indent=4, default=_json_default)  # fails before any file is touched
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path
