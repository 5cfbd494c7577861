"""A parameter sweep: one parent MLflow run, one child per combination, a comparison, the movie read once."""

from __future__ import annotations

import os
import time
from pathlib import Path
from uuid import UUID

import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, FlowRunFilter,
                                            FlowRunFilterParentFlowRunId, TaskRunFilter, TaskRunFilterFlowRunId)
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.events.worker import EventsWorker
from prefect.utilities.callables import parameter_schema

import cnmflow.movies.work_copy as work_copy
from cnmflow.errors import ParameterError
from cnmflow.lineage import read_manifest
from cnmflow.params_form import form_with
from cnmflow.sweep_grid import (GRID_EXAMPLE, combination_label, combinations, folder_name, parse_grid_option,
                                sweep_fraction, sweep_label)
from cnmflow.flows.parameter_sweep import parameter_sweep
from cnmflow.tasks.progress import SWEEP_PROGRESS_KEY as PROGRESS_KEY
from tests.runs import small_movie

TABLE = {"rf": None, "gSiz": 13}


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    return small_movie(tmp_path_factory.mktemp("movie"), rng=21, compression="zlib")   # a work copy to share


def test_grid_options_parse_and_every_combination_is_checked_first():
    assert parse_grid_option("min_pnr=6,8,10") == ("min_pnr", [6, 8, 10])
    assert parse_grid_option("K=auto,5") == ("K", [None, 5])
    assert parse_grid_option("gSig=auto,3") == ("gSig", ["auto", 3])  # the table's "auto", which the form takes
    assert parse_grid_option("motion_correction=none,rigid") == ("motion_correction", ["none", "rigid"])  # a word
    assert parse_grid_option("rf=none,40") == ("rf", [None, 40])   # rf's None: one patch
    assert parse_grid_option("min_corr=.7,.8") == ("min_corr", [0.7, 0.8])  # were text: 'without quotes'
    with pytest.raises(ParameterError, match="min_pnr=6 and min_pnr=6.0 are the same values"):  # were run twice
        combinations(dict([parse_grid_option("min_pnr=6,6.0,8")]))
    assert len(combinations(dict([parse_grid_option("gSig=auto,3")]))) == 2
    assert parse_grid_option("center_psf=true,false") == ("center_psf", [True, False])
    assert len(combinations({"min_corr": [0.7, 0.8], "min_pnr": [6, 8, 10]})) == 6
    with pytest.raises(ParameterError, match="gSiz=2"):
        combinations({"gSiz": [13, 2]}, base={"gSig": 3})
    with pytest.raises(ParameterError, match="min_prn"):
        combinations({"min_prn": [6]})
    assert folder_name({"min_corr": 0.8, "K": None}) == "min_corr=0.8_K=auto"
    assert combination_label({"min_corr": 0.8, "K": None}) == "min_corr 0.8, K auto"
    assert sweep_label({"min_corr": [0.7, 0.8], "min_pnr": [6, 8, 10]}) == "sweep min_corr × min_pnr (6 runs)"
    assert sweep_label("not a grid") == "sweep"


def test_the_sweep_form_shows_an_example_grid_that_runs():
    grid = parameter_schema(parameter_sweep.fn).properties["grid"]
    assert grid["examples"] == [GRID_EXAMPLE] and "min_pnr" in grid["description"]
    assert len(combinations(grid["examples"][0])) == 6  # the example is a grid the sweep accepts


def test_the_sweep_bar_runs_through_the_work_copy_then_the_combinations_then_the_comparison():
    steps = [sweep_fraction("validate", 0.0), sweep_fraction("concatenate", 1.0),
             sweep_fraction("combinations", 0.5), sweep_fraction("combinations", 1.0), sweep_fraction("compare", 1.0)]
    assert steps == sorted(steps) and steps[0] == 0.0 and steps[-1] == pytest.approx(1.0)
    assert 0.4 < sweep_fraction("combinations", 0.5) < 0.6  # the combinations are most of the wait


@pytest.mark.usefixtures("prefect_harness")
def test_two_by_two_sweep_nests_four_children_and_compares_them(movie, tmp_path, monkeypatch):
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    concatenations = []
    real_concatenate = work_copy.concatenate
    monkeypatch.setattr(work_copy, "concatenate",
                        lambda *a, **k: concatenations.append(1) or real_concatenate(*a, **k))
    grid = {"min_corr": [0.7, 0.8], "min_pnr": [6, 9]}
    state = parameter_sweep(movies=[str(movie)], output_dir=str(tmp_path / "sweep"), grid=grid,
                            params=form_with("1p", TABLE), experiment="sweep-test", max_concurrent=2, return_state=True)
    rows = state.result()

    assert len(rows) == 4 and len(concatenations) == 1, "the movie is concatenated once for the whole sweep"
    assert {(row["min_corr"], row["min_pnr"]) for row in rows} == {(0.7, 6), (0.7, 9), (0.8, 6), (0.8, 9)}
    assert all(row["n_components"] is not None for row in rows)
    sweep = tmp_path / "sweep"
    assert (sweep / "comparison.csv").read_text().count("\n") == 5
    assert (sweep / "footprints_contact_sheet.png").is_file() and not (sweep / ".cnmflow-work").exists()

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags.get("cnmflow.kind") == "sweep"]
    assert len(parents) == 1
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 4
    for combo in combinations(grid):
        manifest = read_manifest(sweep / folder_name(combo))
        assert manifest["parameters"]["min_pnr"]["value"] == combo["min_pnr"]
        assert manifest["run_ids"]["mlflow_run_id"] in {run.info.run_id for run in children}
    artifacts = client.list_artifacts(parents[0].info.run_id, "sweep")
    assert {"sweep/comparison.csv", "sweep/footprints_contact_sheet.png"} <= {a.path for a in artifacts}

    with get_client(sync_client=True) as prefect:
        # this sweep's own table: other tests of the session (the CLI's sweeps) write theirs to the same server
        mine = ArtifactFilter(key=ArtifactFilterKey(any_=["sweep-comparison"]),
                              flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        (table,) = prefect.read_artifacts(artifact_filter=mine)
    assert table.type == "table" and table.data.count("min_pnr") >= 4
    check_prefect_screens(state.state_details.flow_run_id, grid)


def check_prefect_screens(sweep_run_id: UUID, grid: dict[str, list]) -> None:
    """What the Prefect UI shows of a finished 2×2 sweep: names, its progress bar, each child's own tasks."""
    labels = {combination_label(combo) for combo in combinations(grid)}
    with get_client(sync_client=True) as prefect:
        assert prefect.read_flow_run(sweep_run_id).name == "sweep min_corr × min_pnr (4 runs)"
        (bar,) = prefect.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[PROGRESS_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[sweep_run_id])))
        assert bar.type == "progress" and float(bar.data) == 100.0 and "4 combinations compared" in bar.description
        children = child_runs(prefect, sweep_run_id)
        assert {child.name for child in children} == labels, "child runs are named by their values"
        for child in children:
            assert {"validate", "extract", "export"} <= task_names(settled_task_runs(prefect, child, "extract"))
        parent_tasks = settled_task_runs(prefect, prefect.read_flow_run(sweep_run_id), "compare")
        assert {task.name for task in parent_tasks if task.name.startswith("combination")} == \
            {f"combination {label}" for label in labels}
        assert "extract" not in task_names(parent_tasks), "a child's extract belongs to the child"
        assert not [task.name for task in parent_tasks if task.state_name == "RolledBack"]


def child_runs(prefect, parent_id: UUID) -> list[FlowRun]:
    return prefect.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))


def task_names(task_runs: list[TaskRun]) -> set[str]:
    """Task names without Prefect's run suffix (``extract-02d`` → ``extract``)."""
    return {task.name.rsplit("-", 1)[0] if task.name[-4:-3] == "-" else task.name for task in task_runs}


def settled_task_runs(prefect, flow_run: FlowRun, wanted: str, timeout_s: float = 20.0) -> list[TaskRun]:
    """The flow run's task runs once one named ``wanted`` is filed there and all have ended (task runs
    reach the server as events, a moment after the run ends); if that never happens the test fails,
    listing what is there."""
    EventsWorker.drain_all(timeout=10)
    deadline = time.monotonic() + timeout_s
    while True:
        task_runs = prefect.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id])))
        settled = wanted in task_names(task_runs) and all(task.state and task.state.is_final() for task in task_runs)
        if settled or time.monotonic() > deadline:
            assert settled, f"{flow_run.name} holds {sorted((task.name, task.state_name) for task in task_runs)}"
            return task_runs
        time.sleep(0.5)


def test_an_impossible_value_in_the_grid_is_refused_before_anything_runs(movie, tmp_path):
    for grid, named in (({"min_pnr": [5, float("inf")]}, "min_pnr=inf"), ({"min_pnr": [5, "nan"]}, "min_pnr=nan"),
                        ({"gSig": [3, True]}, "gSig=True"), ({"tsub": [1, 50]}, "tsub=50")):
        with pytest.raises(ParameterError, match=named) as err:
            parameter_sweep.fn(movies=[str(movie)], output_dir=str(tmp_path / "sweep"), grid=grid,
                               params=form_with("1p", TABLE))
        assert "\n" not in str(err.value)
    assert not (tmp_path / "sweep").exists()


def test_a_grid_value_the_params_file_would_overwrite_is_refused(movie, tmp_path):
    params_file = tmp_path / "params.json"
    params_file.write_text('{"init": {"min_pnr": 7}}')
    with pytest.raises(ParameterError, match="min_pnr also set in parameters file"):
        combos_checked(movie, {"min_pnr": [6, 8]}, params_file=params_file, overwrite_params=True)
    assert len(combos_checked(movie, {"min_pnr": [6, 8]}, params_file=params_file, overwrite_params=False)) == 2


def combos_checked(movie, grid, **kwargs):
    from cnmflow.sweep_grid import check_sweep

    return check_sweep([movie], grid, base=TABLE, **kwargs)


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_combination_fails_the_sweep_after_comparing_the_others(movie, tmp_path, monkeypatch):
    from cnmflow.tasks import extract as extract_task
    from cnmflow.sweep_grid import SweepFailed

    real_fit = extract_task.fit_series

    def fit_failing_at_9(inputs, *args, **kwargs):
        if inputs.resolved.params.min_pnr == 9:
            raise RuntimeError("numerical trouble")
        return real_fit(inputs, *args, **kwargs)

    monkeypatch.setattr(extract_task, "fit_series", fit_failing_at_9)
    monkeypatch.setenv("CNMFLOW_CACHE_DIR", str(tmp_path / "cache"))
    sweep = tmp_path / "sweep"
    state = parameter_sweep(movies=[str(movie)], output_dir=str(sweep), grid={"min_pnr": [6, 9]},
                            params=form_with("1p", TABLE), experiment="sweep-fail-test", return_state=True)
    assert state.is_failed()
    with pytest.raises(SweepFailed) as err:
        state.result()
    message = str(err.value)
    assert "1 of 2 sweep combinations failed" in message
    assert "min_pnr=9: RuntimeError: numerical trouble" in message and "min_pnr=6:" not in message
    assert [row["min_pnr"] for row in err.value.rows] == [6]
    assert (sweep / "comparison.csv").read_text().count("\n") == 2  # header + the one that finished
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("sweep-fail-test").experiment_id])
    (parent,) = [run for run in runs if run.data.tags.get("cnmflow.kind") == "sweep"]
    assert parent.info.status == "FAILED"

    with get_client(sync_client=True) as prefect:  # the failed child keeps its tasks; none roll back in the sweep
        (failed_child,) = [child for child in child_runs(prefect, state.state_details.flow_run_id)
                           if child.name == "min_pnr 9"]
        assert failed_child.state.is_failed()
        child_tasks = {task.name[:-4]: task.state_name for task in settled_task_runs(prefect, failed_child, "validate")}
        steps = {name: child_tasks.get(name) for name in ("validate", "concatenate", "extract")}
        assert steps == {"validate": "Completed", "concatenate": "Completed", "extract": "Failed"}, \
            "the steps that finished stay Completed (not RolledBack) in the child"
        parent_tasks = settled_task_runs(prefect, prefect.read_flow_run(state.state_details.flow_run_id), "compare")
        assert not [task.name for task in parent_tasks if task.state_name == "RolledBack"]
        assert [task.name[:-4] for task in parent_tasks].count("validate") == 1  # the sweep's own, not the child's
