"""Many recordings through Dask: the batch flow on prefect-dask's task runner, patch jobs on a Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.lineage import read_manifest
from cnmflow.params_form import form_with
from cnmflow.synthetic import simulate_1p, write_tiff
from cnmflow.flows.batch_extraction import batch_extraction, recording_name, with_dask

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.usefixtures("prefect_harness")

TABLE = {"rf": 16, "stride": 8, "gSiz": 13, "min_corr": 0.8, "min_pnr": 5}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[list[str]]:
    folder = tmp_path_factory.mktemp("cohort")
    movies = []
    for index, seed in enumerate((31, 32)):
        simulated = simulate_1p(shape=(40, 48), n_frames=200, n_neurons=4, gsig=3.0, fr=10.0, peak_snr=(8, 12),
                                rng=seed)
        movies.append([str(write_tiff(folder / f"mouse{index}.tif", simulated.movie, fr=10.0))])
    return movies


@pytest.fixture(scope="module")
def cluster():
    # Threads, not processes: the workers then reach this test session's temporary Prefect API.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as local:
        yield local.scheduler_address


def test_recordings_fan_out_on_the_dask_task_runner(recordings, cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    rows = with_dask(batch_extraction, cluster)(recordings=recordings, output_root=str(tmp_path / "out"),
                                                params=form_with("1p", TABLE), dask_address=cluster)
    assert [row["state"] for row in rows] == ["done", "done"]
    for movies, row in zip(recordings, rows):
        manifest = read_manifest(tmp_path / "out" / recording_name(movies))
        assert manifest["inputs"][0]["path"] == movies[0]
        assert manifest["run"]["n_components"] == row["n_components"] > 0


def test_patch_jobs_on_dask_give_the_local_result(recordings, cluster, tmp_path, monkeypatch):
    from cnmflow.flows.source_extraction import source_extraction

    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache-local"))
    local = source_extraction(movies=recordings[0], output_dir=str(tmp_path / "local"), params=form_with("1p", TABLE),
                              track_run=False)
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache-dask"))
    remote = source_extraction(movies=recordings[0], output_dir=str(tmp_path / "dask"),
                               params=form_with("1p", TABLE), track_run=False, dask_address=cluster)
    assert not remote.reused_extraction and remote.n_components == local.n_components
    import h5py

    with h5py.File(tmp_path / "local" / "caiman_output.hdf5") as a, h5py.File(tmp_path / "dask" / "caiman_output.hdf5") as b:
        np.testing.assert_allclose(b["estimates/C"][()], a["estimates/C"][()], rtol=1e-3,
                                   atol=1e-3 * float(np.abs(a["estimates/C"][()]).max()))
