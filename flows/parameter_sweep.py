"""The ``parameter-sweep`` flow: one movie, a grid of settings, one child run per combination.

The movie is validated, hashed and concatenated once; the children reuse the copy and run
concurrently up to ``max_concurrent``.  Each child is a ``source-extraction`` run in its own
sub-folder with its own MLflow run nested under the sweep's parent run, and the sweep ends with
a comparison (table, CSV, contact sheet of footprints) in Prefect, in MLflow and in the folder.

Every combination is checked (parameters, movies, parameters file) before anything is computed;
a combination that fails while running does not stop the others, but the sweep then ends Failed
(:class:`~cnmflow.sweep_grid.SweepFailed`, naming each failed combination and why) after the
comparison of those that finished is written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from cnmflow.movies import remove_work_copy
from cnmflow.errors import ParameterError
from cnmflow.params_form import ExtractionParams
from cnmflow.report import RunReport
from cnmflow.request import Preset, RunRequest
from cnmflow.sweep_grid import SweepFailed, check_sweep, folder_name
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT, tracking_uri as default_tracking_uri
from cnmflow.movies.work_copy import WORK_DIR_NAME
from cnmflow.tasks.concatenate import concatenate
from cnmflow.tasks.progress import RunProgress
from cnmflow.tasks.sweep import close_sweep, open_sweep_run
from cnmflow.tasks.validate import validate
from cnmflow.flows.source_extraction import source_extraction

#: Threads available to children; ``max_concurrent`` limits how many run at once.
MAX_THREADS = 16


@flow(name="parameter-sweep", task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
      description="Run source extraction once per combination of a parameter grid and compare the results.")
def parameter_sweep(
    movies: list[str],
    output_dir: str,
    grid: dict[str, list[Any]],
    params_file: str | None = None,
    overwrite_params: bool = False,
    preset: Preset = "1p",
    params: ExtractionParams = ExtractionParams(),  # type: ignore[valid-type]
    max_concurrent: int = 2,
    evaluate: bool = False,
    overwrite: bool = False,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    dask_address: str | None = None,
    nwb: bool = True,
    nwb_metadata: str | None = None,
) -> list[dict[str, Any]]:
    """Sweep ``grid`` (e.g. ``{"min_corr": [0.7, 0.8], "min_pnr": [6, 8, 10]}``) over ``movies``.

    Args:
        movies: Movie files of one recording (a series is allowed).
        output_dir: Sweep folder; each combination writes into a sub-folder named after its values.
        grid: Parameter name → values to try; every combination runs.
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
        preset: The seed's 1P or 2P column the form is based on; must agree with method_init (as in
            source-extraction).
        params: The analysis table shared by every combination (the grid's values replace its fields);
            it runs as shown.
        max_concurrent: Combinations running at the same time.
        evaluate: Evaluate components and mark them accepted/rejected.
        overwrite: Replace earlier, different outputs in the sub-folders.
        experiment: MLflow experiment of the parent and child runs.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<output_dir>/mlflow.db).
        dask_address: Dask scheduler for the patch jobs of every combination (default: $CNMFLOW_DASK_ADDRESS).
        nwb: Write ophys.{k}.nwb in every combination's folder.
        nwb_metadata: YAML/JSON file with the NWB subject/session/device/imaging_plane facts (checked first).

    Raises:
        ParameterError: before anything runs, naming the first combination that cannot run.
        SweepFailed: after the others finished and were compared, naming each combination that
            failed while running and why (the flow run ends Failed).
    """
    if max_concurrent < 1:
        raise ParameterError(f"max_concurrent={max_concurrent}: at least one combination must run at a time; "
                             "give 1 or more")
    request = RunRequest.from_form(params, preset=preset, params_file=params_file, overwrite_params=overwrite_params)
    combos = check_sweep(movies, grid, request)
    root = Path(output_dir).expanduser().absolute()
    progress = RunProgress(key="parameter-sweep-progress")
    plan = validate(movies, str(root), request.with_table(combos[0]), overwrite=True, evaluate=evaluate,
                    progress=progress, nwb=nwb, nwb_metadata=nwb_metadata)
    uri = tracking_uri or default_tracking_uri(root)
    work = root / WORK_DIR_NAME
    movie, created = concatenate(plan, work, progress=progress)
    try:
        parent = open_sweep_run(experiment=experiment, tracking_uri=uri, grid=grid, base=dict(request.table),
                                tags={"prefect.flow_run_id": str(flow_run.id)})
        shared = dict(params_file=params_file, overwrite_params=overwrite_params, overwrite=overwrite,
                      evaluate=evaluate, work_dir=str(work), experiment=experiment, tracking_uri=uri,
                      mlflow_parent_run_id=parent, dask_address=dask_address, nwb=nwb, nwb_metadata=nwb_metadata)
        slots = threading.BoundedSemaphore(max_concurrent)
        futures = [(combo, run_combination.submit(combo, slots=slots, movies=movies, request=request,
                                                  output_dir=root / folder_name(combo), shared=shared))
                   for combo in combos]
        children, failures = _collect(futures)
    finally:
        if created:
            remove_work_copy(movie)
    if children:
        rows = close_sweep(parent, tracking_uri=uri, children=children, folder=root, failed=len(failures))
    else:
        rows = _close_failed(parent, uri)
    if failures:
        raise SweepFailed(failures, len(combos), rows=rows, folder=root)
    return rows


@task(name="combination", cache_policy=NO_CACHE, persist_result=False)
def run_combination(combination: dict[str, Any], *, slots: threading.BoundedSemaphore, movies: list[str],
                    output_dir: Path, request: RunRequest, shared: dict[str, Any]) -> RunReport:
    """One combination as a ``source-extraction`` child run, once a slot is free."""
    with slots:
        return source_extraction(movies=movies, output_dir=str(output_dir), preset=request.preset,
                                 params=request.with_table(combination).form(), **shared)


def _collect(futures: list[tuple[dict[str, Any], Any]]) -> tuple[list[tuple[dict[str, Any], Path]],
                                                                   list[tuple[dict[str, Any], str]]]:
    """(combination, output folder) of the children that finished; (combination, why) of those that failed."""
    children, failures = [], []
    for combo, future in futures:
        try:
            report = future.result()
        except Exception as err:  # noqa: BLE001 - one failed combination must not hide the others
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            get_run_logger().error("combination %s failed: %s", folder_name(combo), reason)
            failures.append((combo, reason))
            continue
        children.append((combo, report.output_dir))
    return children, failures


def _close_failed(parent: str | None, uri: str) -> list[dict[str, Any]]:
    """Every combination failed: nothing to compare; the parent MLflow run is closed as FAILED."""
    if parent:
        from cnmflow.tracking import TrackingError
        from cnmflow.tracking.sweep import end_sweep_run

        try:
            end_sweep_run(parent, tracking_uri=uri, status="FAILED")
        except TrackingError as err:
            get_run_logger().error("could not close the sweep's MLflow run: %s", err)
    return []
