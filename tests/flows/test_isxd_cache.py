"""An isxd run's components are cached and reused like any other (isx objects once made them unpicklable)."""

from __future__ import annotations

from pathlib import Path

import isx
import numpy as np
import pytest

import cnmflow.tasks.extract as extract_module
from cnmflow.params_form import form_with
from cnmflow.synthetic import simulate_1p, write_isxd
from cnmflow.flows.source_extraction import source_extraction

pytestmark = pytest.mark.usefixtures("prefect_harness")

TABLE = {"rf": None, "gSiz": 13, "min_corr": 0.8, "min_pnr": 8}


def test_isxd_extraction_is_reused_and_keeps_the_input_timing(tmp_path, monkeypatch):
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    simulated = simulate_1p(shape=(40, 48), n_frames=200, n_neurons=4, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=11)
    movie = write_isxd(tmp_path / "movie.isxd", simulated.movie, fr=10.0, start_s=100.0, dropped=[5, 77])

    def run(out: Path):
        return source_extraction(movies=[str(movie)], output_dir=str(out), params=form_with("1p", TABLE))

    first = run(tmp_path / "a")
    assert not first.reused_extraction
    monkeypatch.setattr(extract_module, "fit_series", lambda *a, **k: pytest.fail("a cached extraction was recomputed"))
    second = run(tmp_path / "b")
    assert second.reused_extraction and second.n_components == first.n_components

    source = isx.Movie.read(str(movie))
    for folder in ("a", "b"):
        cells = isx.CellSet.read(str(tmp_path / folder / "cellset_raw.000.isxd"))
        assert cells.timing == source.timing and cells.spacing == source.spacing
        assert cells.timing.dropped == [5, 77]
        del cells
    a, b = (isx.CellSet.read(str(tmp_path / f / "cellset_denoised.000.isxd")) for f in ("a", "b"))
    for k in range(a.num_cells):
        np.testing.assert_array_equal(a.get_cell_trace_data(k), b.get_cell_trace_data(k))
    del a, b, source
