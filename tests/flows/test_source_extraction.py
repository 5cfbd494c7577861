"""The source-extraction flow as the Prefect UI and the CLI run it: tasks, retries, caching, artifacts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

import cnmflow.flows.source_extraction as flow_module
import cnmflow.tasks.extract as extract_module
from cnmflow.errors import InputError
from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.outputs.isxd_sets import OutputExistsError
from cnmflow.params_form import form_with
from cnmflow.flows.source_extraction import source_extraction
from tests.runs import TABLE, flow_run_artifacts, small_movie

pytestmark = pytest.mark.usefixtures("prefect_harness", "private_cache")  # each test starts with an empty cache


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    return small_movie(tmp_path_factory.mktemp("movie"), rng=11)


def run(movie: Path, out: Path, table=TABLE, **kwargs):
    return source_extraction(movies=[str(movie)], output_dir=str(out), params=form_with("1p", table), **kwargs)


def _task_runs(flow_run_id: str):
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _read_C(folder: Path) -> np.ndarray:
    with h5py.File(folder / "caiman_output.hdf5", "r") as h5:
        return h5["estimates/C"][()]


@pytest.fixture(scope="module")
def tracked_run(movie, tmp_path_factory, prefect_harness):
    """(report, output folder) of one run with the table (tracked in the experiment "flow-tests", with a cache of
    its own): what a run reports, declares as assets and tracks is read from it; no test changes the folder."""
    folder = tmp_path_factory.mktemp("tracked-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNMFLOW_CACHE_DIR", str(folder / "cache"))
        report = run(movie, folder / "out", experiment="flow-tests")
    return report, folder / "out"


def test_flow_runs_the_plan_and_reports_it(movie, tracked_run):
    report, out = tracked_run
    assert report.n_components > 0 and not report.reused_extraction and not report.up_to_date
    manifest = read_manifest(out)
    flow_run_id = manifest["run_ids"]["prefect_flow_run_id"]
    assert verify_manifest(out) == []
    assert manifest["run"]["fingerprint"] and manifest["run"]["n_components"] == report.n_components
    assert (out / "lineage.png").is_file()
    assert not (out / ".cnmflow-work").exists(), "the work copy of the movie must be removed"

    names = sorted(task_run.name.rsplit("-", 1)[0] for task_run in _task_runs(flow_run_id))
    assert names == ["concatenate", "export", "extract", "report", "track", "validate"]
    by_key = flow_run_artifacts(flow_run_id)
    assert {"source-extraction-progress", "source-extraction-summary", "footprints-preview",
            "output-folder"} <= set(by_key)
    assert float(by_key["source-extraction-progress"].data) == pytest.approx(100.0)
    assert by_key["source-extraction-progress"].description == "report: 100%", "track and report are stages too"
    folder = by_key["output-folder"].data
    assert str(out) in folder and "file://" not in folder, "the path as text: browsers block file://"
    assert by_key["footprints-preview"].data.startswith("data:image/png;base64,")
    summary = by_key["source-extraction-summary"].data
    assert f"{report.n_components} components" in summary and "min_pnr | 8 | table" in summary
    assert str(movie) in summary and "cellset_raw.000.isxd" in summary


def _asset_events(flow_run_id: str, expected: int, timeout_s: float = 15.0) -> list[dict]:
    """Materialization events of one flow run (they reach the server's event store asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            events = client.request("POST", "/events/filter", json={
                "filter": {"event": {"prefix": ["prefect.asset.materialization"]},
                           "related": {"id": [f"prefect.flow-run.{flow_run_id}"]}},
                "limit": 50}).json()["events"]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_export_declares_outputs_as_assets_made_from_the_inputs(movie, tracked_run):
    _, out = tracked_run
    flow_run_id = read_manifest(out)["run_ids"]["prefect_flow_run_id"]
    events = _asset_events(flow_run_id, expected=8)  # hdf5, image, metadata, manifest, 2 cell sets, event set, nwb
    made = {event["resource"]["prefect.resource.id"] for event in events}
    assert f"file://{out / 'cellset_raw.000.isxd'}" in made
    assert f"file://{out / 'ophys.000.nwb'}" in made
    assert f"file://{out / 'caiman_output.hdf5'}" in made
    for event in events:
        upstream = {related["prefect.resource.id"] for related in event["related"]}
        assert f"file://{movie}" in upstream


def test_the_mlflow_run_and_the_prefect_run_point_at_each_other(tracked_run):
    from mlflow import MlflowClient

    report, out = tracked_run
    manifest = read_manifest(out)
    assert report.mlflow_run_id and manifest["run_ids"]["mlflow_run_id"] == report.mlflow_run_id
    mlflow_run = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(report.mlflow_run_id)
    assert mlflow_run.data.tags["prefect.flow_run_id"] == manifest["run_ids"]["prefect_flow_run_id"]
    assert mlflow_run.data.metrics["n_components"] == report.n_components
    assert mlflow_run.data.params["init.min_pnr"] == "8.0"
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    assert [item.path for item in client.list_artifacts(report.mlflow_run_id, "nwb")] == ["nwb/ophys.000.nwb"]
    assert mlflow_run.data.metrics["runtime_export_nwb_s"] > 0


def test_unreachable_tracking_keeps_the_outputs_and_says_so(movie, tmp_path):
    report = run(movie, tmp_path / "out", tracking_uri="http://127.0.0.1:9")
    assert report.n_components > 0 and report.mlflow_run_id is None
    assert "127.0.0.1:9" in report.tracking_error and "cnmflow track" in report.tracking_error
    assert verify_manifest(tmp_path / "out") == []
    assert any(note.startswith("tracking missing") for note in read_manifest(tmp_path / "out")["notes"])


def test_bad_input_fails_once_with_its_message(tmp_path):
    missing = tmp_path / "no_such_movie.tif"
    state = source_extraction(movies=[str(missing)], output_dir=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    assert "no_such_movie.tif" in state.message
    with pytest.raises(InputError):
        state.result()
    (validate_run,) = _task_runs(str(state.state_details.flow_run_id))
    assert validate_run.run_count == 1, "a validation error must not be retried"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    by_key = flow_run_artifacts(str(state.state_details.flow_run_id))
    failure = by_key["source-extraction-failure"].data
    assert "failed in validate" in failure and str(missing) in failure and "check the path" in failure
    assert "Traceback" not in failure
    progress = by_key["source-extraction-progress"].description
    assert progress.startswith("FAILED in validate:") and "no_such_movie.tif" in progress


def test_bad_input_is_logged_as_one_line_without_tracebacks(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="prefect")
    state = source_extraction(movies=[str(tmp_path / "gone.tif")], output_dir=str(tmp_path / "out"),
                              return_state=True)
    assert state.is_failed() and state.message.startswith("validate: movie file not found")
    assert any("gone.tif" in record.getMessage() and record.levelname == "ERROR" for record in caplog.records)
    assert not [record for record in caplog.records if record.exc_info or record.exc_text], "no traceback"


def test_a_bug_keeps_its_traceback_and_its_failure_summary(movie, tmp_path, monkeypatch, caplog):
    import logging

    def broken_fit(*args, **kwargs):
        raise ZeroDivisionError("a bug in the engine")

    monkeypatch.setattr(extract_module, "fit_series", broken_fit)
    monkeypatch.setattr(flow_module, "extract", flow_module.extract.with_options(retries=0))
    caplog.set_level(logging.INFO, logger="prefect")
    state = run(movie, tmp_path / "out", return_state=True, track_run=False)
    assert state.is_failed()
    with pytest.raises(ZeroDivisionError):
        state.result()
    assert any(record.exc_info for record in caplog.records), "a bug's traceback stays in the logs"
    by_key = flow_run_artifacts(str(state.state_details.flow_run_id))
    assert "ZeroDivisionError" in by_key["source-extraction-failure"].data
    assert by_key["source-extraction-progress"].description.startswith("FAILED in ")


def test_transient_failure_is_retried_and_the_run_completes(movie, tmp_path, monkeypatch):
    calls = []
    real_fit = extract_module.fit_series

    def flaky_fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the network share went away for a moment")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(extract_module, "fit_series", flaky_fit)
    monkeypatch.setattr(flow_module, "extract", flow_module.extract.with_options(retry_delay_seconds=0))
    report = run(movie, tmp_path / "out")
    assert len(calls) == 2 and report.n_components > 0
    assert verify_manifest(tmp_path / "out") == []


def test_same_inputs_reuse_the_extraction_and_a_changed_parameter_does_not(movie, tmp_path, monkeypatch):
    first = run(movie, tmp_path / "a")
    assert not first.reused_extraction

    renamed = tmp_path / "same_bytes_other_name.tif"
    shutil.copy(movie, renamed)
    fits = []
    monkeypatch.setattr(extract_module, "fit_series",
                        lambda *a, **k: fits.append(1) or pytest.fail("a cached extraction was recomputed"))
    second = run(renamed, tmp_path / "b")
    assert second.reused_extraction and not fits
    np.testing.assert_array_equal(_read_C(tmp_path / "a"), _read_C(tmp_path / "b"))
    assert read_manifest(tmp_path / "b")["inputs"][0]["path"] == str(renamed), "outputs name this run's inputs"

    again = run(movie, tmp_path / "a")
    assert again.up_to_date and again.n_components == first.n_components

    monkeypatch.undo()
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    changed = run(movie, tmp_path / "c", table={**TABLE, "min_pnr": 10})
    assert not changed.reused_extraction
    assert read_manifest(tmp_path / "c")["run"]["fingerprint"] != read_manifest(tmp_path / "a")["run"]["fingerprint"]


def test_the_cache_is_pruned_to_its_bound_and_keeps_the_result_a_run_used(movie, tmp_path, monkeypatch):
    results = Path(os.environ["CNMFLOW_CACHE_DIR"]) / "results"
    results.mkdir(parents=True, exist_ok=True)
    stale = results / "extract-of-a-recording-seen-long-ago"
    stale.write_bytes(b"x" * 4096)
    os.utime(stale, (1e9, 1e9))
    run(movie, tmp_path / "a")
    assert stale.exists() and len(list(results.iterdir())) == 2, "within the default bound nothing goes"

    monkeypatch.setenv("CNMFLOW_CACHE_MAX_GB", "0")
    again = run(movie, tmp_path / "b")
    assert again.reused_extraction
    assert not stale.exists(), "beyond the bound the least recently used result goes"
    fingerprint = read_manifest(tmp_path / "b")["run"]["fingerprint"]
    assert [path.name for path in results.iterdir()] == [f"extract-{fingerprint}"]


def test_damaged_outputs_are_never_taken_for_up_to_date(movie, tmp_path):
    run(movie, tmp_path / "out")
    (tmp_path / "out" / "cellset_raw.000.isxd").write_bytes(b"damaged")
    with pytest.raises(OutputExistsError):
        run(movie, tmp_path / "out")
    repaired = run(movie, tmp_path / "out", overwrite=True)
    assert repaired.reused_extraction and not repaired.up_to_date
    assert verify_manifest(tmp_path / "out") == []


def test_a_folder_another_run_writes_is_refused_once_and_left_alone(movie, tmp_path):
    from cnmflow.outputs.folder_lock import FolderBusyError
    from tests.outputs.holders import holding_folder

    out = tmp_path / "out"
    with holding_folder(out) as other:
        state = run(movie, out, return_state=True)
        assert state.is_failed() and f"pid {other.pid}" in state.message and str(out) in state.message
        with pytest.raises(FolderBusyError):
            state.result()
        (validate_run,) = _task_runs(str(state.state_details.flow_run_id))
        assert validate_run.run_count == 1, "a busy folder is bad input, not retried"
        assert os.listdir(out) == [".cnmflow-lock"], "nothing of the refused run is written"


def test_a_shared_work_copy_is_left_to_its_other_users_and_removed_by_the_last(tmp_path):
    from hashlib import sha256

    from cnmflow.fingerprint import input_hashes
    from cnmflow.validate import validate_inputs
    from tests.outputs.holders import holding_work_copy, kill_hard

    movie = small_movie(tmp_path, rng=11, compression="zlib")   # an uncompressed TIFF is read in place: no copy

    hashes = input_hashes(validate_inputs([movie]).series)
    series_key = sha256("".join(hashes[k] for k in sorted(hashes)).encode()).hexdigest()
    shared = tmp_path / "scratch"
    with holding_work_copy(movie, shared, series_key) as other_job:
        report = run(movie, tmp_path / "a", work_dir=str(shared))
        assert report.n_components > 0
        assert Path(other_job.line).is_file(), "the other job's copy must survive this run"
        assert len(list(shared.glob("series-*"))) == 1, "the copy was adopted, not written twice"
        kill_hard(other_job)
    run(movie, tmp_path / "b", work_dir=str(shared))   # components from the cache: no concatenation needed
    assert not shared.exists(), "nobody uses the dead job's copy any more: the next run removes it"


def test_nwb_settings_decide_up_to_date_while_the_components_are_reused(movie, tmp_path):
    """Not in the fingerprint (no refit), but a changed metadata file or --no-nwb is not up to date."""
    from pynwb import NWBHDF5IO

    from cnmflow.outputs.export import planned_names

    out, metadata = tmp_path / "out", tmp_path / "nwb.yaml"
    metadata.write_text("subject: {subject_id: m12}\n")
    run(movie, out, nwb_metadata=str(metadata), track_run=False)
    assert run(movie, out, nwb_metadata=str(metadata), track_run=False).up_to_date
    metadata.write_text("subject: {subject_id: m13}  # fixed\n")
    changed = run(movie, out, nwb_metadata=str(metadata), overwrite=True, track_run=False)
    assert changed.reused_extraction and not changed.up_to_date
    with NWBHDF5IO(str(out / "ophys.000.nwb"), "r") as io:
        assert io.read().subject.subject_id == "m13"
    off = run(movie, out, nwb=False, overwrite=True, track_run=False)
    assert off.reused_extraction and not list(out.glob("*.nwb"))
    listed = [name for name, record in read_manifest(out)["outputs"].items() if record["kind"] != "preview"]
    assert sorted(listed + ["manifest.json"]) == sorted(planned_names(1, nwb=False))


def test_a_bad_nwb_metadata_file_fails_in_validate_before_compute(movie, tmp_path):
    metadata = tmp_path / "nwb.yaml"
    metadata.write_text("subject: [not, a, mapping]\n")
    with pytest.raises(InputError, match=r"nwb\.yaml: section subject must be a mapping"):
        run(movie, tmp_path / "out", nwb_metadata=str(metadata), track_run=False)
    assert not (tmp_path / "out" / "manifest.json").exists()
