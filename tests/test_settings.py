"""The machine's knobs: read once from the environment, bad values refused naming the variable."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from cnmflow.errors import ParameterError
from cnmflow.settings import (DEFAULT_CACHE_MAX_GB, DEFAULT_CHUNK_MB, DEFAULT_IN_PROCESS_BELOW, DEFAULT_PATCH_MB,
                              Settings, load_settings)

VARIABLES = ("CNMFLOW_CHUNK_MB", "CNMFLOW_PATCH_MB", "CNMFLOW_SCRATCH_DIR", "CNMFLOW_CACHE_DIR",
             "CNMFLOW_DASK_ADDRESS", "CNMFLOW_PATCHES_IN_PROCESS_BELOW", "CNMFLOW_CACHE_MAX_GB", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_any_variable():
    settings = load_settings()
    assert settings.chunk_mb == DEFAULT_CHUNK_MB and settings.patch_mb == DEFAULT_PATCH_MB
    assert settings.scratch_dir is None and settings.dask_address is None and settings.tracking_uri is None
    assert settings.patches_in_process_below == DEFAULT_IN_PROCESS_BELOW
    assert settings.cache_dir.expanduser() == Path.home() / ".cache" / "cnmflow"
    assert settings.cache_max_gb == DEFAULT_CACHE_MAX_GB > 0   # bounded unless the user says otherwise


def test_every_variable_reaches_its_field(monkeypatch, tmp_path):
    monkeypatch.setenv("CNMFLOW_CHUNK_MB", "64")
    monkeypatch.setenv("CNMFLOW_PATCH_MB", "0")
    monkeypatch.setenv("CNMFLOW_SCRATCH_DIR", str(tmp_path))
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CNMFLOW_DASK_ADDRESS", "tcp://10.0.0.5:8786")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    monkeypatch.setenv("CNMFLOW_PATCHES_IN_PROCESS_BELOW", "0")
    monkeypatch.setenv("CNMFLOW_CACHE_MAX_GB", "0.5")
    settings = load_settings()
    assert settings.patches_in_process_below == 0 and settings.cache_max_gb == 0.5
    assert (settings.chunk_mb, settings.patch_memory_bytes, settings.scratch_dir) == (64.0, 0.0, str(tmp_path))
    assert settings.dask_address == "tcp://10.0.0.5:8786"
    assert settings.tracking_uri == "http://tracking.example:5000"
    assert settings.results_cache() == (tmp_path / "cache" / "results").resolve()
    assert settings.results_cache().is_dir()


def test_blank_variables_mean_unset(monkeypatch):
    for name in VARIABLES:
        monkeypatch.setenv(name, "  ")
    assert load_settings() == Settings()


@pytest.mark.parametrize(("name", "value"), [("CNMFLOW_CHUNK_MB", "0"), ("CNMFLOW_CHUNK_MB", "lots"),
                                             ("CNMFLOW_PATCH_MB", "-1"), ("CNMFLOW_PATCH_MB", "nan"),
                                             ("CNMFLOW_PATCHES_IN_PROCESS_BELOW", "-5"),
                                             ("CNMFLOW_PATCHES_IN_PROCESS_BELOW", "1.5"),
                                             ("CNMFLOW_PATCHES_IN_PROCESS_BELOW", "inf"),
                                             ("CNMFLOW_PATCHES_IN_PROCESS_BELOW", "small"),
                                             ("CNMFLOW_CACHE_MAX_GB", "-1"), ("CNMFLOW_CACHE_MAX_GB", "20GB")])
def test_a_bad_number_is_refused_naming_the_variable_and_the_fix(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ParameterError, match=f"{name}='{value}' must be .* unset it or set e.g. {name}="):
        load_settings()


def test_a_scratch_folder_that_does_not_exist_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("CNMFLOW_SCRATCH_DIR", str(tmp_path / "absent"))
    with pytest.raises(ParameterError, match="CNMFLOW_SCRATCH_DIR=.* is not a folder; create it or unset it"):
        load_settings()


def test_settings_travel_to_worker_processes_unchanged(monkeypatch):
    monkeypatch.setenv("CNMFLOW_CHUNK_MB", "32")
    settings = load_settings()
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_a_cache_dir_that_cannot_be_written_is_refused_naming_the_variable(monkeypatch, tmp_path):
    """Every run stores its results there: a read-only one (a read-only home on a cluster) failed the run after it
    had started, with "OSError: Read-only file system" and no word of CNMFLOW_CACHE_DIR."""
    (tmp_path / "a_file").write_text("")
    for folder, words in ((tmp_path / "a_file", "is not a folder"),
                          (tmp_path / "a_file" / "cache", "cannot be created (its nearest existing parent")):
        monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(folder))
        with pytest.raises(ParameterError) as err:
            load_settings()
        assert str(err.value).startswith(f"CNMFLOW_CACHE_DIR={str(folder)!r} {words}")
        assert "set CNMFLOW_CACHE_DIR to a writable folder" in str(err.value)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode))
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(read_only / "cnmflow"))
    with pytest.raises(ParameterError, match="nearest existing parent .*read_only is not writable"):
        load_settings()
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "new" / "cache"))  # created on first use: fine
    assert load_settings().results_cache().is_dir()


def test_a_scratch_dir_that_cannot_be_written_is_refused_naming_the_variable(monkeypatch, tmp_path):
    """Patch jobs write their frames there: a read-only one failed the run during 'patches', after compute began."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path and real_access(path, mode))
    monkeypatch.setenv("CNMFLOW_SCRATCH_DIR", str(tmp_path))
    with pytest.raises(ParameterError) as err:
        load_settings()
    assert str(err.value) == (f"CNMFLOW_SCRATCH_DIR={str(tmp_path)!r} is not writable; "
                              "set CNMFLOW_SCRATCH_DIR to a writable folder")
