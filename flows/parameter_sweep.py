"""The ``parameter-sweep`` flow: one movie, a grid of settings, one child run per combination.

The movie is validated, hashed and concatenated once; the children reuse the copy and run
concurrently up to ``max_concurrent``.  Each child is a ``source-extraction`` run in its own
sub-folder with its own MLflow run nested under the sweep's parent run, and the sweep ends with
a comparison (table, CSV, contact sheet of footprints) in Prefect, in MLflow and in the folder.

Every combination is checked (parameters, movies, parameters file) before anything is computed;
a combination that fails while running does not stop the others, but the sweep then ends Failed
(:class:`~cnmflow.sweep_grid.SweepFailed`, naming each failed combination and why) after the
comparison of those that finished is written.

In the Prefect UI the sweep is named by what it varies, each combination task and child flow run by its
values, and the sweep's progress bar moves as combinations finish.  A child's tasks stay in the child
run: see :func:`run_combination`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.transactions import CommitMode, transaction
from pydantic import Field

from cnmflow.movies import remove_work_copy
from cnmflow.errors import ParameterError
from cnmflow.params_form import ExtractionParams, OptionalText
from cnmflow.plan import RunPlan
from cnmflow.report import RunReport
from cnmflow.request import Preset, RunRequest
from cnmflow.sweep_grid import GRID_EXAMPLE, SweepFailed, check_sweep, combination_label, folder_name, sweep_label
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT, tracking_uri as default_tracking_uri
from cnmflow.movies.work_copy import WORK_DIR_NAME
from cnmflow.tasks.concatenate import concatenate
from cnmflow.tasks.progress import SweepProgress
from cnmflow.tasks.sweep import close_sweep, open_sweep_run
from cnmflow.tasks.validate import validate
from cnmflow.flows.source_extraction import source_extraction

#: Threads available to children; ``max_concurrent`` limits how many run at once.
MAX_THREADS = 16

#: The grid as the run form shows it: a JSON object with an example (Prefect's form shows the first example
#: as the empty field's placeholder).
Grid = Annotated[dict[str, list[Any]], Field(examples=[GRID_EXAMPLE])]



def sweep_run_name() -> str:
    """The sweep's flow run name, from its grid (e.g. ``sweep min_corr × min_pnr (6 runs)``)."""
    return sweep_label(flow_run.parameters.get("grid"))


def combination_run_name(parameters: dict[str, Any]) -> str:
    """A combination task run's name, from its values (e.g. ``combination min_corr 0.8, min_pnr 6``)."""
    return f"combination {combination_label(parameters['combination'])}"


@flow(name="parameter-sweep", task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS), flow_run_name=sweep_run_name,
      description="Run source extraction once per combination of a parameter grid and compare the results.")
def parameter_sweep(
    movies: list[str],
    output_dir: str,
    grid: Grid,
    params_file: OptionalText = None,
    overwrite_params: bool = False,
    preset: Preset = "1p",
    params: ExtractionParams = ExtractionParams(),  # type: ignore[valid-type]
    max_concurrent: int = 2,
    evaluate: bool = False,
    overwrite: bool = False,
    nwb: bool = True,
    nwb_metadata: OptionalText = None,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: OptionalText = None,
    dask_address: OptionalText = None,
) -> list[dict[str, Any]]:
    """Sweep ``grid`` (e.g. ``{"min_corr": [0.7, 0.8], "min_pnr": [6, 8, 10]}``) over ``movies``.

    Args:
        movies: Movie files of one recording (a series is allowed).
        output_dir: Sweep folder; each combination writes into a sub-folder named after its values.
        grid: Parameter name → list of values to try, as JSON, e.g. {"min_corr": [0.7, 0.8], "min_pnr": [6, 8, 10]}
            (6 runs: every combination); names as in params; auto is "auto" for gSig, min_corr and min_pnr,
            null for fr and K.
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
        preset: The seed's 1P or 2P column the form is based on; must agree with method_init (as in
            source-extraction).
        params: The analysis table shared by every combination (the grid's values replace its fields);
            it runs as shown.
        max_concurrent: Combinations running at the same time.
        evaluate: Evaluate components and mark them accepted/rejected.
        overwrite: Replace earlier, different outputs in the sub-folders.
        nwb: Write ophys.{k}.nwb in every combination's folder.
        nwb_metadata: YAML/JSON file with the NWB subject/session/device/imaging_plane facts (checked first).
        experiment: MLflow experiment of the parent and child runs.
        tracking_uri: Advanced run setting. MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else
            sqlite:///<output_dir>/mlflow.db).
        dask_address: Advanced run setting. Dask scheduler for the patch jobs of every combination (default:
            $CNMFLOW_DASK_ADDRESS).

    Raises:
        ParameterError: before anything runs, naming the first combination that cannot run.
        SweepFailed: after the others finished and were compared, naming each combination that
            failed while running and why (the flow run ends Failed).
    """
    if max_concurrent < 1:
        raise ParameterError(f"max_concurrent={max_concurrent}: at least one combination must run at a time; "
                             "give 1 or more")
    progress = SweepProgress()
    progress.start()
    try:
        request = RunRequest.from_form(params, preset=preset, params_file=params_file,
                                       overwrite_params=overwrite_params)
        combos = check_sweep(movies, grid, request)
        progress.total = len(combos)
        root = Path(output_dir).expanduser().absolute()
        plan = validate(movies, str(root), request.with_table(combos[0]), overwrite=True, evaluate=evaluate,
                        progress=progress, nwb=nwb, nwb_metadata=nwb_metadata)
        uri = tracking_uri or default_tracking_uri(root)
        shared = dict(params_file=params_file, overwrite_params=overwrite_params, overwrite=overwrite,
                      evaluate=evaluate, experiment=experiment, tracking_uri=uri, dask_address=dask_address, nwb=nwb,
                      nwb_metadata=nwb_metadata)
        parent, children, failures = _run_on_one_copy(plan, combos, root, progress, grid=grid, shared=shared,
                                                      max_concurrent=max_concurrent, movies=movies, request=request)
        rows = _compare(parent, uri, children, root, failed=len(failures), progress=progress)
    except Exception as err:
        progress.fail(f"{type(err).__name__}: {err}")
        raise
    progress.finish(failed=len(failures))
    if failures:
        raise SweepFailed(failures, len(combos), rows=rows, folder=root)
    return rows


def _run_on_one_copy(plan: RunPlan, combos: list[dict[str, Any]], root: Path, progress: SweepProgress, *,
                     grid: dict[str, list[Any]], shared: dict[str, Any], request: RunRequest, **options: Any
                     ) -> tuple[str | None, list[tuple[dict[str, Any], Path]], list[tuple[dict[str, Any], str]]]:
    """One work copy of the movie (removed after, unless an earlier one is reused), the parent MLflow run,
    then the combinations (:func:`_run_combinations`) on that copy under that run."""
    work = root / WORK_DIR_NAME
    movie, created = concatenate(plan, work, progress=progress)
    try:
        parent = open_sweep_run(experiment=shared["experiment"], tracking_uri=shared["tracking_uri"], grid=grid,
                                base=dict(request.table), tags={"prefect.flow_run_id": str(flow_run.id)})
        shared = {**shared, "work_dir": str(work), "mlflow_parent_run_id": parent}
        return (parent, *_run_combinations(combos, root, progress, shared=shared, request=request, **options))
    finally:
        if created:
            remove_work_copy(movie)


def _run_combinations(combos: list[dict[str, Any]], root: Path, progress: SweepProgress, *, max_concurrent: int,
                      movies: list[str], request: RunRequest, shared: dict[str, Any]
                      ) -> tuple[list[tuple[dict[str, Any], Path]], list[tuple[dict[str, Any], str]]]:
    """Every combination as a child run, ``max_concurrent`` at a time; (combination, output folder) of those
    that finished and (combination, why) of those that failed, both in grid order."""
    progress("combinations", 0.0)
    slots = threading.BoundedSemaphore(max_concurrent)
    futures = [run_combination.submit(combo, slots=slots, movies=movies, request=request,
                                      output_dir=root / folder_name(combo), shared=shared) for combo in combos]
    position = {future.task_run_id: index for index, future in enumerate(futures)}
    finished: dict[int, Path] = {}
    failed: dict[int, str] = {}
    for future in as_completed(futures):
        index = position[future.task_run_id]
        try:
            finished[index] = future.result().output_dir
        except Exception as err:  # noqa: BLE001 - one failed combination must not hide the others
            failed[index] = " ".join(f"{type(err).__name__}: {err}".split())
            get_run_logger().error("combination %s failed: %s", combination_label(combos[index]), failed[index])
        progress.combination_finished(failed=index in failed)
    return ([(combos[index], finished[index]) for index in sorted(finished)],
            [(combos[index], failed[index]) for index in sorted(failed)])


@task(name="combination", task_run_name=combination_run_name, cache_policy=NO_CACHE, persist_result=False)
def run_combination(combination: dict[str, Any], *, slots: threading.BoundedSemaphore, movies: list[str],
                    output_dir: Path, request: RunRequest, shared: dict[str, Any]) -> RunReport:
    """One combination as a ``source-extraction`` child run named by its values, once a slot is free.

    The child runs inside this task, so without its own transaction each of its tasks would join this
    task's transaction: their results (the extraction cache) would be written only when this task ends,
    and a rollback of it (a failed child, a result that cannot be stored) would run the child tasks'
    rollback hooks here, in the sweep's context, and Prefect would file them as RolledBack task runs of
    the sweep instead of the child.  An eager transaction makes each child task commit when it ends, in
    the child run, as in a run of its own."""
    name = combination_label(combination).replace("{", "{{").replace("}", "}}")  # a template, not a field
    child = source_extraction.with_options(flow_run_name=name)
    with slots, transaction(commit_mode=CommitMode.EAGER):
        return child(movies=movies, output_dir=str(output_dir), preset=request.preset,
                     params=request.with_table(combination).form(), **shared)


def _compare(parent: str | None, uri: str, children: list[tuple[dict[str, Any], Path]], root: Path, *, failed: int,
             progress: SweepProgress) -> list[dict[str, Any]]:
    """The comparison of the combinations that finished; with none, the parent MLflow run is closed FAILED."""
    progress("compare", 0.0)
    if children:
        return close_sweep(parent, tracking_uri=uri, children=children, folder=root, failed=failed)
    return _close_failed(parent, uri)


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
