"""output_metadata.json: counts by status, timing and spacing read back from the written files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("isx")

from cnmflow.movies.info import MovieInfo  # noqa: E402
from cnmflow.outputs.isxd_sets import (  # noqa: E402
    cell_names,
    output_spacing,
    output_timing,
    write_cellset,
    write_eventset,
)
from cnmflow.outputs.metadata import describe_cellset, describe_eventset, write_output_metadata  # noqa: E402

DIMS = (6, 5)


def written_sets(tmp_path: Path):
    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    info = MovieInfo(path=Path("m.tif"), kind="tiff", n_frames=60, frame_shape=DIMS,
                     dtype=np.dtype(np.float32), start_time=start)
    timing, spacing = output_timing(info, fr=30.0), output_spacing(info, dxy=0.25)
    rng = np.random.default_rng(0)
    A = sp.random(DIMS[0] * DIMS[1], 4, density=0.3, format="csc", dtype=np.float32, random_state=1)
    C = rng.random((4, 60)).astype(np.float32)
    S = np.where(C > 0.9, C, 0).astype(np.float32)
    cs = write_cellset(tmp_path / "cellset_raw.000.isxd", footprints=A, dims=DIMS, traces=C, timing=timing,
                       spacing=spacing, statuses=["accepted", "rejected", "accepted", "undecided"])
    ev = write_eventset(tmp_path / "neural_events.000.isxd", spikes=S, timing=timing, cell_names=cell_names(4))
    return cs, ev, S


def test_describe_cellset(tmp_path):
    cs, _, _ = written_sets(tmp_path)
    d = describe_cellset(cs)
    assert d["type"] == "cellset"
    assert d["metrics"] == {"num_accepted_cells": 2, "num_undecided_cells": 1, "num_rejected_cells": 1,
                            "total_num_cells": 4}
    t = d["timing"]
    assert t["num_samples"] == 60
    assert t["period"] == {"num": 1, "den": 30}
    assert t["period_s"] == pytest.approx(1 / 30, abs=0)
    assert t["sampling_rate_hz"] == 30.0
    assert t["start"] == "2024-01-02T03:04:05+00:00"
    assert t["end"] == "2024-01-02T03:04:07+00:00"  # 60 frames at 30 fps = 2 s
    assert t["dropped"] == [] and t["cropped"] == []
    assert d["spacing"] == {"num_pixels": [6, 5], "pixel_size_um": [4.0, 4.0]}


def test_describe_eventset(tmp_path):
    _, ev, S = written_sets(tmp_path)
    d = describe_eventset(ev)
    assert d["type"] == "eventset"
    assert d["metrics"]["total_num_cells"] == 4
    assert d["metrics"]["num_events_per_cell"] == [int(n) for n in (S > 0).sum(axis=1)]
    assert d["metrics"]["total_num_events"] == int((S > 0).sum())
    assert d["timing"]["num_samples"] == 60
    assert d["timing"]["sampling_rate_hz"] == 30.0


def test_write_output_metadata(tmp_path):
    cs, ev, _ = written_sets(tmp_path)
    entries = {cs.name: describe_cellset(cs), ev.name: describe_eventset(ev),
               "note": {"count": np.int64(3), "values": np.arange(2)}}
    out = write_output_metadata(tmp_path / "output_metadata.json", entries)
    loaded = json.loads(out.read_text())
    assert loaded[cs.name]["metrics"]["total_num_cells"] == 4
    assert loaded["note"] == {"count": 3, "values": [0, 1]}
    write_output_metadata(out, {"x": {}})  # replaces its own file
    assert json.loads(out.read_text()) == {"x": {}}
    with pytest.raises(TypeError):
        write_output_metadata(out, {"bad": {"obj": object()}})
    assert json.loads(out.read_text()) == {"x": {}}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_describe_empty_cellset(tmp_path):
    info = MovieInfo(path=Path("m.tif"), kind="tiff", n_frames=10, frame_shape=DIMS, dtype=np.dtype(np.float32))
    out = write_cellset(tmp_path / "c.isxd", footprints=sp.csc_matrix((30, 0), dtype=np.float32), dims=DIMS,
                        traces=np.zeros((0, 10), np.float32), timing=output_timing(info, fr=10.0),
                        spacing=output_spacing(info, dxy=1.0), statuses=[])
    d = describe_cellset(out)
    assert d["metrics"]["total_num_cells"] == 0
    assert d["timing"]["start"] == "1970-01-01T00:00:00+00:00"
    assert d["timing"]["end"] == "1970-01-01T00:00:01+00:00"
