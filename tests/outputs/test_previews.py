"""Preview figures and the correlation tif: files written, figures released, empty and failing cases."""

from __future__ import annotations

import gc
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import tifffile
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from cnmflow.engine.estimates import Estimates
from cnmflow.outputs import previews as pv
from cnmflow.outputs.figures import copy_preview
from cnmflow.outputs.images import write_correlation_tif

DIMS = (40, 50)
CENTRES = [(10.0, 30.0), (25.0, 12.0), (30.0, 40.0), (8.0, 8.0)]  # (row, col)


def _blob(dims, centre, sigma=2.0):
    rows, cols = dims
    r, c = np.mgrid[:rows, :cols]
    g = np.exp(-((r - centre[0]) ** 2 + (c - centre[1]) ** 2) / (2 * sigma ** 2))
    g[g < 0.05] = 0
    v = g.ravel(order="F")
    return v / np.linalg.norm(v)


def make_estimates(centres=CENTRES, dims=DIMS, n_frames=300, rng=0) -> Estimates:
    rng = np.random.default_rng(rng)
    k = len(centres)
    pixels = dims[0] * dims[1]
    if k:
        A = sp.csc_matrix(np.column_stack([_blob(dims, c) for c in centres]).astype(np.float32))
    else:
        A = sp.csc_matrix((pixels, 0), dtype=np.float32)
    S = (rng.random((k, n_frames)) < 0.03) * rng.exponential(1.0, (k, n_frames))
    C = np.zeros((k, n_frames))
    for t in range(1, n_frames):
        C[:, t] = 0.9 * C[:, t - 1] + S[:, t]
    YrA = rng.normal(0.0, 0.1, (k, n_frames))
    Cn = np.asarray(A.sum(axis=1)).reshape(dims, order="F") + rng.normal(0, 0.05, dims)
    pnr = 10 * Cn + rng.random(dims)
    z = np.zeros(k)
    return Estimates(A=A, C=C, S=S, YrA=YrA, bl=z, c1=z, g=np.zeros((k, 1)), neurons_sn=z, lam=z,
                     dims=dims, sn=np.ones(pixels), b0=np.zeros(pixels), Cn=Cn, pnr=pnr)


def names(k):
    return [f"C{i:03d}" for i in range(k)]


def check_pair(paths, stem: Path):
    svg, png = stem.with_name(stem.name + ".svg"), stem.with_name(stem.name + ".png")
    assert [Path(p) for p in paths] == [svg, png]
    for p in (svg, png):
        assert p.is_file() and p.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    # nothing temporary left beside them
    assert not list(stem.parent.glob(".*tmp-*"))


def n_figures():
    gc.collect()
    return sum(isinstance(o, Figure) for o in gc.get_objects())


@pytest.fixture
def est():
    return make_estimates()


@pytest.fixture
def captured(monkeypatch):
    """Figures as they are about to be saved (to inspect their artists)."""
    figs = []
    original = pv.save_figure

    def spy(fig, stem):
        info = {"axes": [], "suptitle": fig._suptitle.get_text() if fig._suptitle else ""}
        for ax in fig.axes:
            info["axes"].append({
                "lines": [(ln.get_linestyle(), np.asarray(ln.get_xdata(), dtype=float)) for ln in ax.lines],
                "ymax": [float(np.max(ln.get_ydata())) for ln in ax.lines if ln.get_linestyle() == "-"],
                "segments": [seg for col in ax.collections if isinstance(col, LineCollection)
                             for seg in col.get_segments()],
                "texts": [t.get_text().strip() for t in ax.texts],
                "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
                "title": ax.get_title(),
            })
        figs.append(info)
        return original(fig, stem)

    monkeypatch.setattr(pv, "save_figure", spy)
    return figs


def test_all_previews_write_svg_and_png_and_release_figures(tmp_path, est):
    import matplotlib.pyplot as plt

    before = n_figures()
    k = est.K
    check_pair(pv.initialization_images(tmp_path / "initialization_images", pnr=est.pnr,
                                        correlation=est.Cn, title_suffix="(gSig = 3)"),
               tmp_path / "initialization_images")
    stem = tmp_path / "footprints_cellset_raw.000"  # the dot is part of the name, not a suffix
    check_pair(pv.footprints_preview(stem, est), stem)
    stem = tmp_path / "traces_cellset_raw.000"
    check_pair(pv.traces_preview(stem, est.C + est.YrA, fr=10.0, names=names(k)), stem)
    stem = tmp_path / "preview_neural_events.000"
    check_pair(pv.events_preview(stem, est.S, fr=10.0, names=names(k)), stem)
    check_pair(pv.no_cells_image(tmp_path / "empty"), tmp_path / "empty")
    assert plt.get_fignums() == []
    assert n_figures() == before


def test_copy_preview_writes_the_same_files_under_another_stem(tmp_path, est):
    source = tmp_path / "footprints_cellset_raw.000"
    pv.footprints_preview(source, est)
    copied = copy_preview(tmp_path / "footprints_cellset_denoised.001", source)
    assert [path.name for path in copied] == ["footprints_cellset_denoised.001.svg",
                                              "footprints_cellset_denoised.001.png"]
    for path, original in zip(copied, (source.with_name(source.name + ".svg"), source.with_name(source.name + ".png"))):
        assert path.read_bytes() == original.read_bytes()


def test_copy_preview_of_a_missing_preview_leaves_no_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        copy_preview(tmp_path / "copy", tmp_path / "absent")
    assert list(tmp_path.iterdir()) == []


def test_stem_with_svg_suffix_is_dropped(tmp_path):
    paths = pv.no_cells_image(tmp_path / "x.000.svg")
    assert [p.name for p in paths] == ["x.000.svg", "x.000.png"]


def test_k0_writes_the_no_cells_image(tmp_path):
    empty = make_estimates(centres=[])
    reference = pv.no_cells_image(tmp_path / "reference")[1].read_bytes()
    outputs = [
        pv.footprints_preview(tmp_path / "fp", empty),
        pv.traces_preview(tmp_path / "tr", empty.C, fr=10.0, names=[]),
        pv.events_preview(tmp_path / "ev", empty.S, fr=10.0, names=[]),
    ]
    for paths in outputs:
        check_pair(paths, paths[0].with_suffix(""))
        assert paths[1].read_bytes() == reference


def test_footprint_outlines_in_fortran_pixel_order_and_statuses(tmp_path, est, captured):
    statuses = ["accepted", "rejected", "undecided", "accepted"]
    data_before = est.A.data.copy()
    pv.footprints_preview(tmp_path / "fp", est, statuses=statuses)
    assert np.array_equal(est.A.data, data_before)  # input untouched
    ax = captured[0]["axes"][0]
    segments = ax["segments"]
    assert len(segments) == len(CENTRES)  # one closed outline per blob
    for seg, (row, col) in zip(segments, CENTRES):
        x, y = seg[:, 0], seg[:, 1]  # x = column, y = row
        assert abs(x.mean() - col) < 0.5 and abs(y.mean() - row) < 0.5
        assert 2.0 < (x.max() - x.min()) / 2 < 6.0  # radius of a sigma-2 blob's 90% energy
    assert ax["texts"] == names(4)
    assert "4 cells" in ax["title"]


def test_footprints_without_correlation_image_use_max_projection(tmp_path, est):
    est.Cn = None
    check_pair(pv.footprints_preview(tmp_path / "fp", est), tmp_path / "fp")


def test_footprints_many_components_fast(tmp_path):
    rng = np.random.default_rng(1)
    dims = (120, 150)
    centres = [tuple(x) for x in rng.uniform(4, 110, (300, 2))]
    est = make_estimates(centres=centres, dims=dims, n_frames=20)
    start = time.perf_counter()
    paths = pv.footprints_preview(tmp_path / "fp", est)
    elapsed = time.perf_counter() - start
    check_pair(paths, tmp_path / "fp")
    assert elapsed < 15.0  # ~2 s on an idle core; generous for a loaded machine


def test_traces_cap_at_20_cells_and_draw_boundaries(tmp_path, captured):
    rng = np.random.default_rng(2)
    traces = rng.normal(size=(30, 600))
    boundaries = [0.0, 20.0, 45.0]
    pv.traces_preview(tmp_path / "tr", traces, fr=10.0, names=names(30), boundaries=boundaries,
                      title="Raw traces")
    ax = captured[0]["axes"][0]
    solid = [x for style, x in ax["lines"] if style == "-"]
    dashed = [x for style, x in ax["lines"] if style == "--"]
    assert len(solid) == 20
    assert len(dashed) == len(boundaries)
    assert sorted(float(x[0]) for x in dashed) == boundaries
    assert ax["yticklabels"] == names(20)
    assert ax["texts"] == ["movie 000", "movie 001", "movie 002"]
    assert max(x.max() for x in solid) == pytest.approx(59.9)  # seconds, not frames
    assert "20 of 30 cells" in ax["title"]


def test_long_traces_are_reduced_to_an_envelope(tmp_path, captured):
    traces = np.zeros((2, 50_000))
    traces[0, 12_345] = 5.0  # a single-frame peak must survive the reduction
    pv.traces_preview(tmp_path / "tr", traces, fr=20.0, names=names(2))
    ax = captured[0]["axes"][0]
    lines = [x for style, x in ax["lines"] if style == "-"]
    assert all(len(x) <= pv._MAX_POINTS for x in lines)
    top_offset = 1.0  # first cell drawn on top at offset 1, scaled to 0.85 of a row
    assert ax["ymax"][0] == pytest.approx(top_offset + 0.85)


def test_a_raster_of_thousands_of_events_is_one_image_in_the_svg(tmp_path):
    """Drawn as one <path> per event the SVG grew to megabytes and cost more than the PNG; PNG unchanged."""
    spikes = np.zeros((10, 400))
    spikes[:, ::2] = 1.0  # 2000 events: vector markers
    few = pv.events_preview(tmp_path / "few", spikes, fr=10.0, names=names(10))[0].read_text()
    spikes[0, 1] = 1.0  # one more: rasterized
    many = pv.events_preview(tmp_path / "many", spikes, fr=10.0, names=names(10))[0].read_text()
    assert "<image" not in few and few.count("<path") >= 2000
    assert "<image" in many and many.count("<path") < 500


def test_events_preview_panels_and_boundaries(tmp_path, est, captured):
    pv.events_preview(tmp_path / "ev", est.S, fr=10.0, names=names(est.K), boundaries=[12.0])
    raster, rate, _, _ = captured[0]["axes"][:4]
    assert [s for s, _ in raster["lines"]] == ["--"]
    assert raster["texts"] == ["movie 001"]
    assert [s for s, _ in rate["lines"]] == ["--"]
    assert f"{int((est.S > 0).sum())} in 4 cells" in raster["title"]


def test_events_preview_without_events(tmp_path):
    check_pair(pv.events_preview(tmp_path / "ev", np.zeros((3, 50)), fr=5.0, names=names(3)),
               tmp_path / "ev")


def test_safe_preview_turns_errors_into_messages(tmp_path):
    paths, error = pv.safe_preview(pv.traces_preview, tmp_path / "tr", np.ones((2, 10)),
                                   fr=10.0, names=["only one"])
    assert paths == [] and error.startswith("traces preview failed: ")
    assert list(tmp_path.iterdir()) == []

    paths, error = pv.safe_preview(pv.no_cells_image, tmp_path / "ok")
    assert error is None and len(paths) == 2


def test_safe_preview_removes_partial_files(tmp_path, est, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", boom)  # the SVG is written, then the PNG fails
    stem = tmp_path / "footprints_cellset_raw.000"
    (tmp_path / ".footprints_cellset_raw.000.tmp-deadbeef.svg").write_text("partial")  # a killed run
    paths, error = pv.safe_preview(pv.footprints_preview, stem, est)
    assert paths == []
    assert error == "footprints preview failed: RuntimeError: disk full"
    assert list(tmp_path.iterdir()) == []


def test_correlation_tif_round_trips_float32(tmp_path):
    image = np.random.default_rng(3).random((40, 50)) * 2 - 1  # float64 in
    path = write_correlation_tif(tmp_path / "local_corr_img.tif", image)
    back = tifffile.imread(path)
    assert back.dtype == np.float32 and back.shape == (40, 50)
    np.testing.assert_array_equal(back, image.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local_corr_img.tif"]
    with pytest.raises(ValueError):
        write_correlation_tif(tmp_path / "bad.tif", np.zeros((2, 3, 4)))


def _drawn_figure(path: Path) -> list[Path]:
    from cnmflow.outputs.figures import new_figure, save_figure

    fig = new_figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    return save_figure(fig, path)


def test_a_figure_drawn_in_another_thread_does_not_hang_a_forked_child(tmp_path):
    # matplotlib draws every figure under one class-wide lock; a sweep's second export held it while the first forked
    # its previews' process, which then waited for it until the export killed it 30 s later
    from cnmflow.processes import ForkedCall

    held, forked = threading.Event(), threading.Event()

    def drawing() -> None:  # a thread drawing at the moment of the fork holds the lock
        with Figure._render_lock:
            held.set()
            forked.wait(30.0)

    drawer = threading.Thread(target=drawing)
    drawer.start()
    try:
        assert held.wait(30.0)
        call = ForkedCall(_drawn_figure, tmp_path / "child")
    finally:
        forked.set()
        drawer.join()
    written = call.result(timeout_s=20.0)
    assert [path.name for path in written] == ["child.svg", "child.png"] and all(path.is_file() for path in written)
