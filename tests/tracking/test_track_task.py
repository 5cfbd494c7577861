"""The flow's track step: the MLflow run spans the whole flow run, not the moment it was logged."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from mlflow.tracking import MlflowClient
from prefect import flow

import cnmflow
from cnmflow.lineage import read_manifest
from cnmflow.synthetic import simulate_1p, write_tiff
from cnmflow.tasks.track import flow_run_started, track


@pytest.mark.usefixtures("prefect_harness")
def test_the_tracked_run_spans_the_flow_run_from_its_start_to_the_written_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    simulated = simulate_1p(shape=(40, 40), n_frames=120, n_neurons=4, gsig=3.0, fr=10.0, rng=5)
    movie = write_tiff(tmp_path / "movie.tif", simulated.movie, fr=10.0)
    folder = tmp_path / "out"

    @flow
    def slow_run() -> tuple[float, str | None]:
        started = flow_run_started()
        time.sleep(2.0)                               # work the folder's stage timings do not record
        cnmflow.extract([movie], folder, params={"gSig": 3, "gSiz": 13, "rf": None})
        time.sleep(1.0)                               # tracking comes after the work: not its end
        run_id, _ = track(folder, experiment="task", tracking_uri=store, parent_run_id=None)
        return started.timestamp(), run_id

    started, run_id = slow_run()
    info = MlflowClient(store).get_run(run_id).info
    assert info.start_time == pytest.approx(started * 1000, abs=1)
    written = datetime.fromisoformat(read_manifest(folder)["created"]).timestamp()
    assert abs(info.end_time / 1000 - written) <= 1.0
    assert info.end_time - info.start_time >= 2000
    assert flow_run_started() is None                 # outside a flow: nothing to go by
