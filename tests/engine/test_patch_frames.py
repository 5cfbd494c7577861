"""A patch's frames in a scratch file behave like the in-memory array (the memory test is in
test_scaling)."""

from __future__ import annotations


import numpy as np
import pytest

from cnmflow.engine import chunking
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.patch_job.dispatch import fit_patch
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import EngineSettings
from cnmflow.errors import ParameterError
from cnmflow.params import build_params
from cnmflow.settings import DEFAULT_PATCH_MB, load_settings
from cnmflow.synthetic import simulate_1p


def test_scratch_frames_read_and_write_like_an_array(tmp_path):
    values = np.random.default_rng(0).random((37, 9, 11), dtype=np.float32)
    on_disk = PatchStorage(memory_bytes=0, directory=str(tmp_path)).allocate(values.shape)
    in_memory = PatchStorage().allocate(values.shape)
    assert on_disk.on_disk and not in_memory.on_disk
    for frames in (on_disk, in_memory):
        frames[:20] = values[:20]
        frames[20:] = values[20:]
        frames[5:30, 2:6, 3:9] = values[5:30, 2:6, 3:9] * 2          # a box of a run of frames
    expected = values.copy()
    expected[5:30, 2:6, 3:9] *= 2
    for key in (np.s_[:], np.s_[::4, 1:8, 2:], np.s_[3:17, 4, 5], np.s_[10]):
        np.testing.assert_array_equal(on_disk[key], expected[key])
        np.testing.assert_array_equal(in_memory[key], expected[key])
    folder = next(tmp_path.iterdir())
    on_disk.close()
    assert not folder.exists(), "closing removes the scratch file and its folder"


def test_the_budget_counts_the_arrays_a_job_holds_in_memory():
    import pickle

    storage = PatchStorage(memory_bytes=4 * 10 * 8 * 8 * 2)       # room for two (10, 8, 8) arrays
    first, second, third = (storage.allocate((10, 8, 8)) for _ in range(3))
    assert not first.on_disk and not second.on_disk and third.on_disk
    assert storage.held_bytes == 2 * 4 * 10 * 8 * 8
    big = storage.allocate((21, 8, 8))
    assert big.on_disk, "larger than the budget: always a file"
    big.close()
    first.close()
    third.close()
    again = storage.allocate((10, 8, 8))
    assert not again.on_disk, "closing an array gives its memory back to the budget"
    assert pickle.loads(pickle.dumps(storage)).held_bytes == 0, "a worker's copy starts empty"
    second.close()
    again.close()
    assert storage.held_bytes == 0


@pytest.mark.parametrize("value", ["-1", "lots", "nan"])
def test_a_bad_patch_memory_setting_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("CNMFLOW_PATCH_MB", value)
    with pytest.raises(ParameterError, match="CNMFLOW_PATCH_MB"):
        PatchStorage.from_settings(load_settings())


def test_a_missing_scratch_folder_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("CNMFLOW_SCRATCH_DIR", str(tmp_path / "absent"))
    with pytest.raises(ParameterError, match="CNMFLOW_SCRATCH_DIR"):
        PatchStorage.from_settings(load_settings())


def test_the_settings_reach_the_policy(monkeypatch, tmp_path):
    monkeypatch.setenv("CNMFLOW_PATCH_MB", "0.5")
    monkeypatch.setenv("CNMFLOW_SCRATCH_DIR", str(tmp_path))
    assert PatchStorage.from_settings(load_settings()) == PatchStorage(memory_bytes=0.5 * 2 ** 20, directory=str(tmp_path))
    monkeypatch.delenv("CNMFLOW_PATCH_MB")
    assert PatchStorage.from_settings(load_settings()).memory_bytes == DEFAULT_PATCH_MB * 2 ** 20


def _fit_in_memory_and_on_disk(movie: np.ndarray, params, tmp_path, monkeypatch):
    """One patch covering ``movie``, fitted in memory, then from scratch files read in small
    chunks (30 frames) and bands (a few rows); checks the job leaves no scratch file behind."""
    path = tmp_path / "movie.npy"
    np.save(path, movie)
    source = MovieSource.of(np.load(path, mmap_mode="r")).without_array()
    box = PatchBox(0, movie.shape[1], 0, movie.shape[2])
    job = EngineSettings.from_params(params).patch_job
    in_memory = fit_patch(source, box, job, fov_dims=movie.shape[1:])
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 4 * movie.shape[1] * movie.shape[2] * 30)
    monkeypatch.setattr(chunking, "BAND_VALUES", movie.shape[0] * movie.shape[2] * 3)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    on_disk = fit_patch(source, box, job, fov_dims=movie.shape[1:],
                        storage=PatchStorage(memory_bytes=0, directory=str(scratch)))
    assert list(scratch.iterdir()) == [], "the patch job deletes its scratch files"
    assert in_memory.A.shape[1] >= 4
    assert on_disk.A.shape == in_memory.A.shape
    return in_memory, on_disk


def test_a_patch_fitted_from_scratch_files_equals_the_in_memory_fit(tmp_path, monkeypatch):
    simulated = simulate_1p(shape=(44, 44), n_frames=400, n_neurons=6, gsig=3, fr=10, rng=2, peak_snr=(6, 12))
    params = build_params(dict(gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, fr=10, rf=None))
    in_memory, on_disk = _fit_in_memory_and_on_disk(simulated.movie, params, tmp_path, monkeypatch)
    np.testing.assert_allclose(on_disk.A @ on_disk.C, in_memory.A @ in_memory.C, rtol=0, atol=1e-3 * np.abs(
        in_memory.A @ in_memory.C).max())
    np.testing.assert_allclose(on_disk.pnr, in_memory.pnr, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method_init", ["greedy_roi", "sparse_NMF"])
def test_a_2p_patch_fitted_from_scratch_files_equals_the_in_memory_fit(tmp_path, monkeypatch, method_init):
    from cnmflow.params import PRESETS
    from cnmflow.synthetic import simulate_2p

    simulated = simulate_2p(shape=(40, 40), n_frames=400, n_neurons=5, gsig=3, fr=30, rng=3)
    params = build_params(dict(PRESETS["2p"], gSig=3, gSiz=7, fr=30, K=6, rf=None, method_init=method_init))
    in_memory, on_disk = _fit_in_memory_and_on_disk(simulated.movie, params, tmp_path, monkeypatch)
    for name in ("A", "C", "b", "f"):
        np.testing.assert_allclose(getattr(on_disk, name), getattr(in_memory, name), rtol=0,
                                   atol=1e-4 * np.abs(getattr(in_memory, name)).max(), err_msg=name)
