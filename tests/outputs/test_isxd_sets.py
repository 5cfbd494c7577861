"""isxd cell sets and event sets: timing/spacing carried over, values, checks, K = 0."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

isx = pytest.importorskip("isx")

from cnmflow.movies import read_info  # noqa: E402
from cnmflow.movies.info import MovieInfo  # noqa: E402
from cnmflow.movies.isxd import read_header  # noqa: E402
from cnmflow.outputs.isxd_sets import (  # noqa: E402
    EmptySetNotSupported,
    OutputExistsError,
    cell_names,
    output_spacing,
    output_timing,
    split_traces,
    write_cellset,
    write_eventset,
)
from cnmflow.synthetic import write_isxd  # noqa: E402
from tests.paths import IDEAS

SAMPLE = IDEAS / "movie_part2_108x123x63.isxd"
DIMS = (12, 10)  # rows, cols: non-square so a transposed footprint cannot pass


def blobs(dims=DIMS, centers=((3, 2), (8, 7), (5, 5))) -> sp.csc_matrix:
    rows, cols = dims
    r, c = np.mgrid[:rows, :cols]
    columns = []
    for cy, cx in centers:
        img = np.exp(-((r - cy) ** 2 + (c - cx) ** 2) / 4.0)
        img[img < 0.05] = 0.0
        columns.append(img.ravel(order="F") / np.linalg.norm(img))
    return sp.csc_matrix(np.stack(columns, axis=1).astype(np.float32))


@pytest.fixture
def isxd_movie(tmp_path) -> MovieInfo:
    rng = np.random.default_rng(0)
    movie = rng.random((20, *DIMS)).astype(np.float32)
    path = write_isxd(tmp_path / "in.isxd", movie, fr=20.0, start_s=1000.5, pixel_size_um=2.5, dropped=[4])
    return read_info(path)


def model(n_frames: int, K: int = 3):
    rng = np.random.default_rng(1)
    C = rng.random((K, n_frames)).astype(np.float32) * 5
    YrA = rng.normal(size=(K, n_frames)).astype(np.float32)
    S = np.zeros((K, n_frames), np.float32)
    S[0, [0, 3, n_frames - 1]] = [1.5, 0.25, 2.0]
    S[2, 7] = 0.75
    return C, YrA, S


def tif_like(n_frames=90, shape=DIMS, start=None) -> MovieInfo:
    return MovieInfo(path=Path("x.tif"), kind="tiff", n_frames=n_frames, frame_shape=shape,
                     dtype=np.dtype(np.float32), frame_rate=None, start_time=start)


def test_isxd_input_round_trip(tmp_path, isxd_movie):
    A = blobs()
    C, YrA, S = model(isxd_movie.n_frames)
    timing = output_timing(isxd_movie, fr=99.0)  # fr is ignored for isxd inputs
    spacing = output_spacing(isxd_movie, dxy=7.0)
    statuses = ["accepted", "undecided", "rejected"]
    raw = write_cellset(tmp_path / "cellset_raw.000.isxd", footprints=A, dims=DIMS, traces=C + YrA,
                        timing=timing, spacing=spacing, statuses=statuses)
    den = write_cellset(tmp_path / "cellset_denoised.000.isxd", footprints=A, dims=DIMS, traces=C,
                        timing=timing, spacing=spacing, statuses=statuses)
    ev = write_eventset(tmp_path / "neural_events.000.isxd", spikes=S, timing=timing, cell_names=cell_names(3))

    movie = isx.Movie.read(str(isxd_movie.path))
    valid = movie.timing.get_valid_samples_mask()
    assert not valid[4]
    for out, traces in ((raw, C + YrA), (den, C)):
        cs = isx.CellSet.read(str(out))
        assert cs.timing == movie.timing
        assert cs.spacing == movie.spacing
        assert cs.num_cells == 3
        for k in range(3):
            assert cs.get_cell_name(k) == f"C00{k}"
            assert cs.get_cell_status(k) == statuses[k]
            got = cs.get_cell_trace_data(k)
            np.testing.assert_array_equal(got[valid], traces[k][valid].astype(np.float32))
            assert np.isnan(got[~valid]).all()  # isx reads dropped samples back as NaN
            np.testing.assert_array_equal(cs.get_cell_image_data(k), A[:, k].toarray().reshape(DIMS, order="F"))
        del cs

    es = isx.EventSet.read(str(ev))
    assert es.num_cells == 3
    # isx keeps num_samples, period and start of an event set but not its dropped samples
    assert (es.timing.num_samples, es.timing.period, es.timing.start) == (
        movie.timing.num_samples, movie.timing.period, movie.timing.start)
    assert es.timing.dropped == []
    period_us = Fraction(1, 20) * 1_000_000
    for k in range(3):
        offsets, amps = es.get_cell_data(k)
        idx = np.flatnonzero(S[k] > 0)
        assert offsets.dtype == np.uint64
        np.testing.assert_array_equal(offsets, [round(i * period_us) for i in idx])
        np.testing.assert_array_equal(amps, S[k, idx])
    assert es.get_cell_data(1)[0].size == 0
    del es, movie
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cellset_denoised.000.isxd", "cellset_raw.000.isxd", "in.isxd", "neural_events.000.isxd"]


def test_tif_like_exact_period_and_pixel_size(tmp_path):
    from datetime import datetime, timezone

    start = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    info = tif_like(start=start)
    timing = output_timing(info, fr=30.0)
    spacing = output_spacing(info, dxy=0.5)  # 0.5 px/µm → 2 µm pixels
    C, _, S = model(info.n_frames)
    out = write_cellset(tmp_path / "c.isxd", footprints=blobs(), dims=DIMS, traces=C, timing=timing,
                        spacing=spacing, statuses=["undecided"] * 3)
    ev = write_eventset(tmp_path / "e.isxd", spikes=S, timing=timing, cell_names=cell_names(3))
    header = read_header(out)
    assert header["timingInfo"]["period"] == {"num": 1, "den": 30}  # not 33 ms
    assert header["timingInfo"]["numTimes"] == 90
    assert header["spacingInfo"]["pixelSize"]["x"] == {"num": 2, "den": 1}
    assert header["spacingInfo"]["numPixels"] == {"x": DIMS[1], "y": DIMS[0]}
    cs = isx.CellSet.read(str(out))
    assert (cs.timing.period._impl.num, cs.timing.period._impl.den) == (1, 30)
    assert cs.timing.start.to_datetime() == start.replace(tzinfo=None)
    del cs
    es = isx.EventSet.read(str(ev))
    offsets, _ = es.get_cell_data(0)
    np.testing.assert_array_equal(offsets, [0, 100_000, 2_966_667])  # frames 0, 3, 89 at exactly 1/30 s
    del es
    default_start = output_timing(tif_like(), fr=30.0).start
    assert default_start._impl.secs_since_epoch.num == 0


def test_split_traces_per_movie_lengths(tmp_path):
    rng = np.random.default_rng(2)
    a = write_isxd(tmp_path / "a.isxd", rng.random((7, *DIMS)), fr=10.0, start_s=100.0)
    b = write_isxd(tmp_path / "b.isxd", rng.random((5, *DIMS)), fr=10.0, start_s=50.0)
    from cnmflow.movies import validate_series

    series = validate_series([a, b])
    assert series.order == (1, 0)  # b starts first
    traces = np.arange(2 * 12, dtype=np.float32).reshape(2, 12)
    parts = split_traces(traces, series.offsets())
    assert list(parts) == [0, 1]
    assert parts[0].shape == (2, 7) and parts[1].shape == (2, 5)
    np.testing.assert_array_equal(parts[1], traces[:, :5])
    np.testing.assert_array_equal(parts[0], traces[:, 5:])
    for k, movie in enumerate(series.movies):
        out = write_cellset(tmp_path / f"cellset_raw.{k:03d}.isxd", footprints=blobs()[:, :2], dims=DIMS,
                            traces=parts[k], timing=output_timing(movie, fr=10.0),
                            spacing=output_spacing(movie, dxy=1.0), statuses=["undecided"] * 2)
        cs, source = isx.CellSet.read(str(out)), isx.Movie.read(str(movie.path))  # keep both alive: timings are views
        assert cs.timing == source.timing
        del cs, source
    with pytest.raises(ValueError, match="traces have 11 frames"):
        split_traces(traces[:, :11], series.offsets())
    with pytest.raises(ValueError, match="without gaps"):
        split_traces(traces, {0: (0, 5), 1: (6, 12)})


def test_trace_length_mismatch_leaves_no_file(tmp_path):
    info = tif_like(n_frames=30)
    timing, spacing = output_timing(info, fr=10.0), output_spacing(info, dxy=1.0)
    C, _, S = model(29)
    with pytest.raises(ValueError, match="29 frames but the movie's timing has 30 samples"):
        write_cellset(tmp_path / "c.isxd", footprints=blobs(), dims=DIMS, traces=C, timing=timing,
                      spacing=spacing, statuses=["undecided"] * 3)
    with pytest.raises(ValueError, match="29 frames"):
        write_eventset(tmp_path / "e.isxd", spikes=S, timing=timing, cell_names=cell_names(3))
    C, _, _ = model(30)
    with pytest.raises(ValueError, match="not allowed"):
        write_cellset(tmp_path / "c.isxd", footprints=blobs(), dims=DIMS, traces=C, timing=timing,
                      spacing=spacing, statuses=["accepted", "maybe", "rejected"])
    with pytest.raises(ValueError, match="2 statuses for 3 cells"):
        write_cellset(tmp_path / "c.isxd", footprints=blobs(), dims=DIMS, traces=C, timing=timing,
                      spacing=spacing, statuses=["accepted"] * 2)
    with pytest.raises(ValueError, match="2 rows but there are 3 cells"):
        write_cellset(tmp_path / "c.isxd", footprints=blobs(), dims=DIMS, traces=C[:2], timing=timing,
                      spacing=spacing, statuses=["accepted"] * 3)
    with pytest.raises(ValueError, match="differ from the output spacing"):
        write_cellset(tmp_path / "c.isxd", footprints=blobs(), dims=DIMS[::-1], traces=C, timing=timing,
                      spacing=spacing, statuses=["accepted"] * 3)
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_refused(tmp_path):
    info = tif_like(n_frames=10)
    timing, spacing = output_timing(info, fr=10.0), output_spacing(info, dxy=1.0)
    C, _, S = model(10)
    dest = tmp_path / "c.isxd"
    dest.write_bytes(b"mine")
    with pytest.raises(OutputExistsError, match="already exists"):
        write_cellset(dest, footprints=blobs(), dims=DIMS, traces=C, timing=timing, spacing=spacing,
                      statuses=["undecided"] * 3)
    with pytest.raises(FileExistsError):
        write_eventset(dest, spikes=S, timing=timing, cell_names=cell_names(3))
    assert dest.read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["c.isxd"]


def test_cell_names_width():
    assert cell_names(3) == ["C000", "C001", "C002"]
    assert cell_names(1000)[-1] == "C999"
    names = cell_names(1001)
    assert names[0] == "C0000" and names[-1] == "C1000"
    assert cell_names(0) == []


def test_zero_cells(tmp_path):
    """isx writes and reads a cell set with no cells; it cannot write an event set with none."""
    info = tif_like(n_frames=15)
    timing, spacing = output_timing(info, fr=10.0), output_spacing(info, dxy=1.0)
    out = write_cellset(tmp_path / "c.isxd", footprints=sp.csc_matrix((DIMS[0] * DIMS[1], 0), dtype=np.float32),
                        dims=DIMS, traces=np.zeros((0, 15), np.float32), timing=timing, spacing=spacing,
                        statuses=[])
    cs = isx.CellSet.read(str(out))
    assert cs.num_cells == 0
    assert cs.timing == timing
    del cs
    with pytest.raises(EmptySetNotSupported, match="zero cells"):
        write_eventset(tmp_path / "e.isxd", spikes=np.zeros((0, 15), np.float32), timing=timing, cell_names=[])
    assert [p.name for p in tmp_path.iterdir()] == ["c.isxd"]


def test_real_sample_timing_and_extra_properties(tmp_path):
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} is absent")
    info = read_info(SAMPLE)
    assert info.extra_properties  # this sample has extraProperties set
    rows, cols = info.frame_shape
    A = blobs((rows, cols), centers=((20, 30), (60, 50)))
    C = np.random.default_rng(3).random((2, info.n_frames)).astype(np.float32)
    timing, spacing = output_timing(info, fr=30.0), output_spacing(info, dxy=1.0)
    out = write_cellset(tmp_path / "cellset_raw.000.isxd", footprints=A, dims=(rows, cols), traces=C,
                        timing=timing, spacing=spacing, statuses=["undecided"] * 2,
                        extra_properties=info.extra_properties)
    ev = write_eventset(tmp_path / "neural_events.000.isxd", spikes=C, timing=timing, cell_names=cell_names(2))
    movie = isx.Movie.read(str(SAMPLE))
    cs = isx.CellSet.read(str(out))
    assert cs.timing == movie.timing
    assert cs.spacing == movie.spacing
    np.testing.assert_array_equal(cs.get_cell_trace_data(1), C[1])
    np.testing.assert_array_equal(cs.get_cell_image_data(0), A[:, 0].toarray().reshape((rows, cols), order="F"))
    es = isx.EventSet.read(str(ev))
    assert es.timing == movie.timing
    del cs, es, movie
    assert read_header(out)["extraProperties"] == read_header(SAMPLE)["extraProperties"]
    json.dumps(read_header(out))  # header still valid JSON after the rewrite
