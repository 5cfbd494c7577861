"""Shared fixtures: one temporary Prefect server and MLflow store for the whole session (~10 s to start)."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

# Prefect binds its console log handler to whatever sys.stderr is when logging is set up; doing it here,
# outside any test, binds it to pytest's session-long capture instead of one test's capsys stream
# (closed when that test ends, which would break logging in every later test).
from prefect.logging.configuration import setup_logging  # noqa: E402

setup_logging()


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> None:
    """An empty extraction cache of the test's own (a run's components are not served from another test's)."""
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory) -> Iterator[None]:
    """A throwaway Prefect API and result/cache folders of our own, for flows run in this process."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    names = ("CNMFLOW_CACHE_DIR", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "MLFLOW_TRACKING_URI")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["CNMFLOW_CACHE_DIR"] = str(tmp_path_factory.mktemp("cnmflow-cache"))
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(storage)
    # One MLflow store for every flow run of the session (creating a sqlite store costs ~4 s).
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    try:
        # No flow-run heartbeats (Prefect's crash detection, which no test here reads): the heartbeat thread sleeps in
        # 1 s steps and every flow run, subflows too, waited up to a second for it to notice the run had ended.
        with prefect_test_harness(server_startup_timeout=120), \
                temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
