"""Tracking finished output folders in MLflow: one run per folder, sweeps, comparison, commands.

Real extractions of a tiny simulated movie (a few seconds each) into one sqlite store per
module (creating a store costs ~4 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import cnmflow
from cnmflow.errors import InputError, ParameterError
from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5
from cnmflow.params import PARAM_NAMES
from cnmflow.params_file import read_params_file, resolve_run_params
from cnmflow.scoring import score
from cnmflow.synthetic import simulate_1p, write_tiff
from cnmflow.tracking import (TrackingError, comparison_rows, finish_sweep, format_table, log_output_folder,
                              start_sweep_run, tracking_uri)
from cnmflow.cli.tracking import add_commands, run_command
from cnmflow.lineage import write_manifest
from cnmflow.tracking.compare import display_rows, markdown_table
from cnmflow.tracking.folder import COUNT_METRICS, DISTRIBUTION_METRICS, recorded_seconds
from cnmflow.tracking.store import EXPERIMENT_KIND_TAG, RUNS_KIND, RUNS_VIEW_TAG, experiment_id
from cnmflow.tracking.sweep import compare_children

PARAMS = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "min_pnr": 6, "rf": None}
RUN_IDS = {"prefect_flow_run_id": "11111111-2222-3333-4444-555555555555",
           "prefect_flow_run_url": "http://127.0.0.1:4200/runs/flow-run/11111111-2222-3333-4444-555555555555"}
GRID = {"min_pnr": [6, 10], "gSig": [3, 4]}


@pytest.fixture(scope="module", autouse=True)
def environment(tmp_path_factory):
    """No tracking server from the environment, no telemetry, and a scratch working directory
    (MLflow's defaults write ./mlflow.db and ./mlruns there: none must end up in the checkout)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setenv("DO_NOT_TRACK", "true")
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(scope="module")
def simulated():
    return simulate_1p(shape=(48, 48), n_frames=300, n_neurons=6, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=3)


@pytest.fixture(scope="module")
def movies(simulated, tmp_path_factory) -> list[Path]:
    """The simulated recording as a series of two TIFF movies."""
    folder = tmp_path_factory.mktemp("movies")
    return [write_tiff(folder / "part1.tif", simulated.movie[:150], fr=10.0),
            write_tiff(folder / "part2.tif", simulated.movie[150:], fr=10.0)]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture(scope="module")
def series_output(movies, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("runs") / "series"
    cnmflow.extract(movies, output_dir, params=PARAMS, evaluate=True, run_ids=RUN_IDS)
    return output_dir


@pytest.fixture(scope="module")
def logged(series_output, simulated, store):
    """The series folder logged with ground-truth scores as extra metrics."""
    estimates = read_caiman_hdf5(series_output / "caiman_output.hdf5")
    truth = score(simulated.truth.footprints, estimates.footprints(),
                  truth_traces=simulated.truth.calcium, estimated_traces=estimates.C).summary()
    run_id = log_output_folder(series_output, experiment="single", tracking_uri=store,
                               tags={"purpose": "test"}, extra_metrics=truth)
    return run_id, truth


@pytest.fixture(scope="module")
def sweep_outputs(movies, tmp_path_factory) -> list[tuple[dict, Path]]:
    """Real extractions of the 2 × 2 grid on the first movie."""
    root = tmp_path_factory.mktemp("sweep")
    children = []
    for min_pnr in GRID["min_pnr"]:
        for gsig in GRID["gSig"]:
            combination = {"min_pnr": min_pnr, "gSig": gsig}
            output_dir = root / f"min_pnr-{min_pnr}_gSig-{gsig}"
            cnmflow.extract(movies[:1], output_dir, params={**PARAMS, **combination})
            children.append((combination, output_dir))
    return children


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# ------------------------------------------------------------------------------------ one run

def test_tracking_uri_prefers_the_environment(tmp_path, monkeypatch):
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.absolute()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri(tmp_path) == "http://tracking.example:5000"


def test_logged_run_holds_params_with_sources_metrics_inputs_tags_and_artifacts(logged, series_output, movies, store):
    run_id, truth = logged
    client = MlflowClient(store)
    run = client.get_run(run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags

    assert params["init.min_pnr"] == "6.0" and params["source.min_pnr"] == "table"
    assert params["init.gSig"] == "(3.0, 3.0)" and params["patch.rf"] == "None"
    assert params["preprocess.p"] == params["temporal.p"] == "1"            # p is in two CaImAn groups
    assert params["init.nb"] == params["temporal.nb"] == params["spatial.nb"] == "0"
    assert params["cnmflow.refit"] == "False"                                 # in no CaImAn group
    assert params["source.fr"] == "metadata" and params["source.K"] == "preset 1p"
    assert {f"source.{name}" for name in PARAM_NAMES} <= set(params)
    assert params["input.000.name"] == "part1.tif" and params["input.001.frames"] == "150"
    assert params["input.000.fr"] == "10.0"
    assert params["series.n_movies"] == "2" and params["series.n_frames"] == "300"
    assert params["series.frame_shape"] == "[48, 48]"

    expected = {*COUNT_METRICS, *DISTRIBUTION_METRICS, "runtime_s", "runtime_fit_s", "runtime_fit_patches_s",
                "peak_rss_mb", "frames_per_s", "precision", "recall", "f1"}
    assert expected <= set(metrics)
    summary = read_manifest(series_output)["run"]
    assert metrics["n_components"] == summary["n_components"] > 0
    assert metrics["n_accepted"] + metrics["n_rejected"] + metrics["n_undecided"] == metrics["n_components"]
    assert metrics["n_accepted"] == summary["statuses"]["accepted"]
    assert metrics["runtime_fit_s"] == summary["timings_s"]["fit"]
    assert metrics["frames_per_s"] == pytest.approx(300 / metrics["runtime_s"])
    assert 0 < metrics["event_rate_mean"] < 10.0                             # events/s at 10 fps
    assert metrics["snr_q25"] <= metrics["snr_median"] <= metrics["snr_q75"]
    assert metrics["f1"] == truth["f1"] > 0.5

    manifest = read_manifest(series_output)
    datasets = {entry.dataset.name: entry for entry in run.inputs.dataset_inputs}
    assert set(datasets) == {"part1.tif", "part2.tif"}
    for record in manifest["inputs"]:
        entry = datasets[Path(record["path"]).name]
        assert record["sha256"].startswith(entry.dataset.digest) and len(entry.dataset.digest) == 36
        assert {tag.key: tag.value for tag in entry.tags}["sha256"] == record["sha256"]
        assert json.loads(entry.dataset.source)["uri"] == record["path"]

    assert tags["prefect.flow_run_id"] == RUN_IDS["prefect_flow_run_id"]
    assert tags["prefect.flow_run_url"] == RUN_IDS["prefect_flow_run_url"]
    assert tags["cnmflow.version"] == cnmflow.__version__
    assert tags["preset"] == "1p" and tags["purpose"] == "test"           # the value, not "preset 1p"
    if manifest["code"]["git_commit"]:
        assert tags["git.commit"] == manifest["code"]["git_commit"]

    artifacts = {item.path for item in client.list_artifacts(run_id)}
    assert {"manifest.json", "output_metadata.json", "parameters", "previews"} <= artifacts
    previews = {Path(item.path).name for item in client.list_artifacts(run_id, "previews")}
    assert "footprints_cellset_denoised.000.png" in previews and "traces_cellset_raw.001.png" in previews


def test_the_nwb_files_are_artifacts_of_the_run(logged, series_output, store):
    client = MlflowClient(store)
    logged_nwb = {item.path: item.file_size for item in client.list_artifacts(logged[0], "nwb")}
    assert logged_nwb == {f"nwb/ophys.{k:03d}.nwb": (series_output / f"ophys.{k:03d}.nwb").stat().st_size
                          for k in (0, 1)}
    assert client.get_run(logged[0]).data.metrics["runtime_export_nwb_s"] > 0


def test_manifest_records_the_run(logged, series_output, store):
    run_ids = read_manifest(series_output)["run_ids"]
    assert run_ids["mlflow_run_id"] == logged[0]
    assert run_ids["mlflow_tracking_uri"] == store and run_ids["mlflow_experiment"] == "single"
    assert run_ids["prefect_flow_run_id"] == RUN_IDS["prefect_flow_run_id"]
    assert verify_manifest(series_output) == []


def test_parameter_file_artifact_reads_back_to_the_effective_values(logged, series_output, store, tmp_path):
    path = mlflow.artifacts.download_artifacts(run_id=logged[0], artifact_path="parameters/caiman_params.json",
                                               dst_path=str(tmp_path), tracking_uri=store)
    assert read_params_file(path).ignored_keys == ()
    resolved = resolve_run_params(params_file=path, overwrite_params=True)
    effective = {name: entry["value"] for name, entry in read_manifest(series_output)["parameters"].items()}
    assert resolved.params.model_dump(mode="json") == effective


def test_runs_differing_in_min_pnr_differ_only_there_in_search_runs(sweep_outputs, store):
    folders = {combination["min_pnr"]: folder for combination, folder in sweep_outputs if combination["gSig"] == 3}
    for folder in folders.values():
        log_output_folder(folder, experiment="min_pnr", tracking_uri=store)
    mlflow.set_tracking_uri(store)  # also sets MLFLOW_TRACKING_URI: unset both afterwards
    try:
        frame = mlflow.search_runs(experiment_names=["min_pnr"])
    finally:
        mlflow.set_tracking_uri(None)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert len(frame) == 2
    assert set(frame["params.init.min_pnr"]) == {"6.0", "10.0"}
    for column in ("params.init.gSig", "params.patch.rf", "params.source.min_pnr", "params.input.000.name",
                   "params.series.n_frames", "tags.preset"):
        assert frame[column].nunique() == 1, column
    changed = [column for column in frame.columns if column.startswith("params.") and frame[column].nunique() > 1]
    assert changed == ["params.init.min_pnr"]


def test_no_cells_logs_zero_counts_and_no_distribution_metrics(movies, store, tmp_path):
    output_dir = tmp_path / "none"
    cnmflow.extract(movies[:1], output_dir, params={**PARAMS, "min_pnr": 200, "min_corr": 0.99})
    run = MlflowClient(store).get_run(log_output_folder(output_dir, experiment="single", tracking_uri=store))
    metrics = run.data.metrics
    assert metrics["n_components"] == metrics["n_undecided"] == 0
    assert "n_accepted" not in metrics                                      # not evaluated: unknown, not 0
    assert metrics["n_rejected"] == 0      # what the engine itself rejected (1P focus test) is known either way
    assert not set(DISTRIBUTION_METRICS) & set(metrics)
    assert "runtime_s" in metrics


# -------------------------------------------------------------------------------------- failure

def test_unreachable_server_fails_fast_and_leaves_outputs_intact(series_output, tmp_path):
    folder = _copy(series_output, tmp_path)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=r"http://127\.0\.0\.1:9"):
        log_output_folder(folder, tracking_uri="http://127.0.0.1:9")
    assert time.monotonic() - started < 10
    assert verify_manifest(folder) == []
    manifest = read_manifest(folder)
    assert manifest["run_ids"]["mlflow_run_id"] is None
    assert any(note.startswith("tracking missing:") and "127.0.0.1:9" in note for note in manifest["notes"])


def test_bad_uri_is_a_tracking_error(series_output, tmp_path):
    folder = _copy(series_output, tmp_path)
    with pytest.raises(TrackingError, match="nosuchscheme://"):
        log_output_folder(folder, tracking_uri="nosuchscheme://nowhere")
    assert verify_manifest(folder) == []


def test_folder_without_manifest_is_an_input_error(tmp_path, store):
    with pytest.raises(InputError, match="manifest"):
        log_output_folder(tmp_path, tracking_uri=store)


# ---------------------------------------------------------------------------------------- sweeps

def test_sweep_nests_four_children_under_one_parent_and_compares_them(sweep_outputs, store, tmp_path):
    children = [(combination, _copy(folder, tmp_path)) for combination, folder in sweep_outputs]
    parent = start_sweep_run(experiment="sweep", tracking_uri=store, grid=GRID, base_params=PARAMS,
                             tags={"purpose": "test"})
    with ThreadPoolExecutor(max_workers=2) as pool:  # Prefect logs children from worker threads
        child_ids = list(pool.map(lambda child: log_output_folder(child[1], experiment="sweep", tracking_uri=store,
                                                                  parent_run_id=parent), children))
    comparison = finish_sweep(parent, tracking_uri=store, children=children)

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("sweep").experiment_id
    runs = client.search_runs([experiment])
    assert len(runs) == 5
    nested = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent]
    assert sorted(run.info.run_id for run in nested) == sorted(child_ids)
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.params["grid.min_pnr"] == "[6, 10]" and parent_run.data.params["base.gSiz"] == "13"
    artifacts = {item.path for item in client.list_artifacts(parent, "sweep")}
    assert {"sweep/comparison.csv", "sweep/comparison.png", "sweep/footprints_contact_sheet.png",
            "sweep/grid.json"} <= artifacts

    assert comparison.varied == ["min_pnr", "gSig"] and len(comparison.rows) == 4
    assert {(row["min_pnr"], row["gSig"]) for row in comparison.rows} == {(6, 3), (6, 4), (10, 3), (10, 4)}
    assert [row["run_id"] for row in comparison.rows] == child_ids
    assert comparison.columns[:7] == ["min_pnr", "gSig", "n_components", "n_accepted", "n_rejected", "snr_median",
                                      "runtime_s"]
    # the engine's own rejections (1P focus test, 2P compactness) are known without evaluation
    assert all(isinstance(row["n_rejected"], int) for row in comparison.rows)
    assert comparison.csv().splitlines()[0].startswith("min_pnr,gSig,n_components")

    back = comparison_rows(parent, tracking_uri=store)
    assert sorted(back, key=lambda row: row["run_id"]) == sorted(comparison.rows, key=lambda row: row["run_id"])
    by_experiment = comparison_rows("sweep", tracking_uri=store)
    assert len(by_experiment) == 4 and {"min_pnr", "gSig"} <= set(by_experiment[0])
    text = format_table(back)
    assert text.splitlines()[0].split()[:3] == ["min_pnr", "gSig", "n_components"]
    assert len(text.splitlines()) == 2 + 4
    assert {row["n_accepted"] for row in back} == {None} and "—" in text  # no evaluation: not measured, not 0

    names = {run.info.run_id: run.info.run_name for run in nested}
    assert sorted(names.values()) == ["min_pnr 10 · gSig 3", "min_pnr 10 · gSig 4", "min_pnr 6 · gSig 3",
                                      "min_pnr 6 · gSig 4"]
    description = parent_run.data.tags["mlflow.note.content"]
    assert "| min_pnr | gSig | n_components | n_accepted | n_rejected | snr_median | runtime_s | run_id |" in description
    for row in comparison.rows:
        snr = "—" if row["snr_median"] is None else f"{row['snr_median']:.4g}"   # rounded; none without cells
        assert (f"| {row['min_pnr']:g} | {row['gSig']:g} | {row['n_components']} | — | {row['n_rejected']} | {snr} |"
                in description)
        assert f"[{row['run_id'][:8]}](#/experiments/{experiment}/runs/{row['run_id']})" in description
    parent_images = {item.path for item in client.list_artifacts(parent, "images")}
    assert any(path.startswith("images/footprints_contact_sheet") for path in parent_images)


def test_previews_are_where_the_compare_view_and_the_image_grid_find_them(sweep_outputs, store, tmp_path):
    """The compare view lists only root files every run has; the chart view's image grid reads ``images/``."""
    run_ids = [log_output_folder(_copy(folder, tmp_path), experiment="images", tracking_uri=store)
               for _, folder in sweep_outputs[:2]]
    client = MlflowClient(store)
    for run_id in run_ids:
        root = {item.path for item in client.list_artifacts(run_id) if not item.is_dir}
        assert {"footprints.png", "traces.png", "initialization.png"} <= root
        images = [item.path for item in client.list_artifacts(run_id, "images")]
        assert any(path.startswith("images/footprints+step+0") and path.endswith(".png") for path in images)
        assert client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"


def test_contact_sheet_panels_name_the_values_and_k(sweep_outputs):
    comparison, sheet = compare_children(sweep_outputs)
    for (label, _), row in zip(sheet, comparison.rows):
        assert label == f"min_pnr {row['min_pnr']:g} · gSig {row['gSig']:g}\nK = {row['n_components']} components"


def test_tables_round_for_reading_and_keep_the_metrics_exact(logged, store):
    run = MlflowClient(store).get_run(logged[0])
    snr = run.data.metrics["snr_median"]
    assert len(repr(snr)) > 8                                             # the metric keeps every digit
    (shown,) = display_rows([{"snr_median": snr, "n_accepted": None}])
    assert shown == {"snr_median": f"{snr:.4g}", "n_accepted": "—"}
    assert markdown_table([{"snr_median": snr}]).splitlines()[2] == f"| {snr:.4g} |"


# ------------------------------------------------------------------------------------- screens

def test_experiments_open_on_their_runs_with_the_key_metrics(logged, store):
    client = MlflowClient(store)
    tags = client.get_experiment_by_name("single").tags                  # created by logging
    assert tags[EXPERIMENT_KIND_TAG] == RUNS_KIND == "custom_model_development"
    assert json.loads(tags[RUNS_VIEW_TAG])["selectedColumns"][1:] == [
        "metrics.`n_components`", "metrics.`n_accepted`", "metrics.`n_rejected`", "metrics.`snr_median`",
        "metrics.`runtime_s`"]
    old = client.create_experiment("made-before-the-fix")                 # an existing experiment gets it
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert experiment_id(client, "made-before-the-fix", store) == old
    assert experiment_id(client, "chosen", store) == chosen
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == RUNS_KIND
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"   # a user's choice stays


def test_the_manifest_links_the_runs_page(logged, series_output, store):
    experiment = MlflowClient(store).get_experiment_by_name("single").experiment_id
    assert read_manifest(series_output)["run_ids"]["mlflow_runs_url"] == (
        f"http://127.0.0.1:5000/#/experiments/{experiment}/runs"
        "?workflowType=machine_learning&viewStateShareKey=cnmflow-runs")


def test_run_times_are_the_work_times_not_the_logging_time(logged, series_output, store, tmp_path):
    run = MlflowClient(store).get_run(logged[0])
    manifest = read_manifest(series_output)
    finished = datetime.fromisoformat(manifest["created"]).timestamp()
    assert abs(run.info.end_time / 1000 - finished) <= 1.0
    assert run.info.end_time - run.info.start_time == pytest.approx(
        1000 * recorded_seconds(manifest["run"]["timings_s"]), abs=1)

    folder = _copy(series_output, tmp_path)                              # logged long after its work
    manifest = read_manifest(folder)
    manifest["created"] = "2025-03-04T05:06:07+00:00"
    write_manifest(folder, manifest)
    end = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    client = MlflowClient(store)
    estimated = client.get_run(log_output_folder(folder, experiment="times", tracking_uri=store)).info
    assert estimated.end_time == end.timestamp() * 1000
    assert estimated.start_time == pytest.approx(
        (end.timestamp() - recorded_seconds(manifest["run"]["timings_s"])) * 1000, abs=1)
    started = end - timedelta(seconds=42)                                 # the orchestration run's start
    given = client.get_run(log_output_folder(folder, experiment="times", tracking_uri=store,
                                             started_at=started)).info
    assert (given.start_time, given.end_time) == (started.timestamp() * 1000, end.timestamp() * 1000)
    late = client.get_run(log_output_folder(folder, experiment="times", tracking_uri=store,
                                            started_at=end + timedelta(hours=1))).info   # a re-track: not the start
    assert late.start_time == estimated.start_time


def test_sweep_grid_names_known_parameters(store):
    with pytest.raises(ParameterError, match="min_prn"):
        start_sweep_run(tracking_uri=store, grid={"min_prn": [1, 2]}, base_params={}, tags={})


def test_compare_unknown_name_is_a_tracking_error(store):
    with pytest.raises(TrackingError, match="neither a run id nor an experiment"):
        comparison_rows("no-such-experiment", tracking_uri=store)


# -------------------------------------------------------------------------------------- commands

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnmflow")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_track_command_logs_an_existing_folder_and_compare_prints_it(series_output, tmp_path, capsys):
    folder = _copy(series_output, tmp_path)
    assert run_command(_parser().parse_args(["track", str(folder), "--experiment", "cli"])) == 0
    out = capsys.readouterr().out
    run_id = read_manifest(folder)["run_ids"]["mlflow_run_id"]
    uri = f"sqlite:///{tmp_path.absolute()}/mlflow.db"       # default: beside the output folder
    assert run_id in out and uri in out and "mlflow ui" in out
    experiment = MlflowClient(uri).get_experiment_by_name("cli").experiment_id
    assert f"Runs page:     http://127.0.0.1:5000/#/experiments/{experiment}/runs?workflowType=machine_learning" in out
    assert MlflowClient(uri).get_run(run_id).data.params["init.min_pnr"] == "6.0"

    assert run_command(_parser().parse_args(["compare", "cli", "--tracking-uri", uri])) == 0
    assert run_id in capsys.readouterr().out
    assert run_command(_parser().parse_args(["compare", run_id, "--tracking-uri", uri])) == 0
    assert "n_components" in capsys.readouterr().out


def test_commands_report_failures_with_exit_codes(series_output, tmp_path, capsys):
    assert run_command(_parser().parse_args(["track", str(tmp_path)])) == 2
    assert "manifest" in capsys.readouterr().err
    folder = _copy(series_output, tmp_path)
    assert run_command(_parser().parse_args(["track", str(folder), "--tracking-uri", "http://127.0.0.1:9"])) == 1
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_compare_from_a_folder_without_a_store_is_refused_and_leaves_no_store_there(tmp_path, capsys):
    """Reading must not create: compare run where no run was tracked made an empty mlflow.db in that folder, then
    said the name was unknown."""
    missing = tmp_path / "mlflow.db"
    assert run_command(_parser().parse_args(["compare", "cli", "--tracking-uri", f"sqlite:///{missing}"])) == 2
    assert f"no MLflow store at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_the_cli_side_and_the_engine_do_not_import_mlflow():
    code = ("import sys, cnmflow.tracking, cnmflow.cli.tracking, cnmflow.tracking.uri, cnmflow.api, "
            "cnmflow.engine; assert 'mlflow' not in sys.modules, 'mlflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
