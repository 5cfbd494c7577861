"""Patch jobs give the same components whichever executor runs them: here, local processes, this process
(a small movie) or Dask."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine import executors, fit
from cnmflow.engine.threads import fft_workers
from cnmflow.errors import ParameterError
from cnmflow.params import build_params
from cnmflow.settings import Settings
from cnmflow.synthetic import simulate_1p

PARAMS = dict(gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, fr=10, rf=16, stride=8)
#: This machine's settings with every movie's patches in worker processes, however small.
WORKERS_ALWAYS = Settings(patches_in_process_below=0)


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


def _no_worker_pool(*args, **kwargs):
    raise AssertionError("a small movie started patch workers")


def test_a_small_movie_fits_its_patches_here_with_the_same_components_as_workers(movie_file, monkeypatch):
    params = build_params({**PARAMS, "n_processes": 2})
    in_workers = fit(movie_file, params, machine=WORKERS_ALWAYS)
    threads_before = fft_workers()
    monkeypatch.setattr(executors, "ProcessPoolExecutor", _no_worker_pool)
    small = Settings(patches_in_process_below=movie_file.size + 1)
    here = fit(movie_file, params, machine=small)
    assert in_workers.K > 3 and here.K == in_workers.K
    np.testing.assert_array_equal(here.A.toarray(), in_workers.A.toarray())
    np.testing.assert_array_equal(here.C, in_workers.C)
    np.testing.assert_array_equal(here.S, in_workers.S)
    assert fft_workers() == threads_before  # the single-threaded block gives the threads back
    with pytest.raises(AssertionError, match="started patch workers"):  # at the threshold: workers
        fit(movie_file, params, machine=Settings(patches_in_process_below=movie_file.size))


def _thread_recording(monkeypatch) -> list[int]:
    """Record the FFT threads each patch job runs with when it runs in this process."""
    seen, job = [], executors.fit_patch

    def recording(*args, **kwargs):
        seen.append(fft_workers())
        return job(*args, **kwargs)

    monkeypatch.setattr(executors, "fit_patch", recording)
    return seen


def test_one_worker_computes_what_two_do_single_threaded(movie_file, monkeypatch):
    in_workers = fit(movie_file, build_params({**PARAMS, "n_processes": 2}), machine=WORKERS_ALWAYS)
    seen = _thread_recording(monkeypatch)
    one = fit(movie_file, build_params({**PARAMS, "n_processes": 1}), machine=WORKERS_ALWAYS)
    assert len(seen) > 1 and set(seen) == {1}  # as a worker: one thread, whatever the machine has
    assert one.K == in_workers.K > 3
    np.testing.assert_array_equal(one.A.toarray(), in_workers.A.toarray())
    np.testing.assert_array_equal(one.C, in_workers.C)
    seen.clear()
    fit(np.array(movie_file), build_params({**PARAMS, "n_processes": 2}), machine=WORKERS_ALWAYS)
    assert len(seen) > 1 and set(seen) == {1}  # a movie held in memory runs here, single-threaded too


def test_a_movie_fitted_as_one_patch_keeps_its_threads(movie_file, monkeypatch):
    seen = _thread_recording(monkeypatch)
    fit(movie_file, build_params({**PARAMS, "rf": None, "n_processes": 1}), machine=WORKERS_ALWAYS)
    assert seen == [fft_workers()]  # the process's own setting: its only parallelism


def test_a_dask_cluster_gives_the_same_components_as_local_processes(movie_file, dask_cluster):
    local = fit(movie_file, build_params({**PARAMS, "n_processes": 2}), machine=WORKERS_ALWAYS)
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
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ParameterError, match="127.0.0.1:9"):
        fit(movie_file, build_params(PARAMS), dask_scheduler="tcp://127.0.0.1:9")
