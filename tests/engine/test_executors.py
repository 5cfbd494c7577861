"""Patch jobs give the same components whichever executor runs them: here, local processes or Dask."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine import fit
from cnmflow.errors import ParameterError
from cnmflow.params import build_params
from cnmflow.synthetic import simulate_1p

PARAMS = dict(gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, fr=10, rf=16, stride=8)


@pytest.fixture(scope="module")
def movie_file(tmp_path_factory) -> np.memmap:
    simulated = simulate_1p(shape=(56, 64), n_frames=300, n_neurons=10, gsig=3, fr=10, rng=4, peak_snr=(6, 12))
    path = tmp_path_factory.mktemp("movie") / "movie.float32"
    stored = np.memmap(path, dtype=np.float32, mode="w+", shape=simulated.movie.shape)
    stored[:] = simulated.movie
    stored.flush()
    return np.memmap(path, dtype=np.float32, mode="r", shape=simulated.movie.shape)


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_a_dask_cluster_gives_the_same_components_as_local_processes(movie_file, dask_cluster):
    local = fit(movie_file, build_params({**PARAMS, "n_processes": 2}))
    stages = []
    on_dask = fit(movie_file, build_params({**PARAMS, "n_processes": 2}), dask_scheduler=dask_cluster,
                  progress=lambda stage, fraction: stages.append((stage, fraction)))
    assert local.K > 3 and on_dask.K == local.K
    np.testing.assert_allclose(on_dask.A.toarray(), local.A.toarray(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(on_dask.C, local.C, rtol=1e-3, atol=1e-3 * float(np.abs(local.C).max()))
    assert ("patches", 1.0) in stages


def test_dask_needs_a_movie_file_the_workers_can_read(movie_file, dask_cluster):
    with pytest.raises(ParameterError, match="shared storage"):
        fit(np.array(movie_file), build_params(PARAMS), dask_scheduler=dask_cluster)


def test_an_unreachable_scheduler_is_a_clear_error(movie_file, monkeypatch):
    pytest.importorskip("distributed")
    import cnmflow.engine.executors as executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ParameterError, match="127.0.0.1:9"):
        fit(movie_file, build_params(PARAMS), dask_scheduler="tcp://127.0.0.1:9")
