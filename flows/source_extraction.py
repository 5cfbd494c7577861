"""The ``source-extraction`` flow: validate → concatenate → motion_correction (when on) → extract → export →
track → report.

Its parameters are what the Prefect UI shows as the run form: the movies, the output folder,
a parameters file, the preset and the analysis table (``params``, every seed parameter with the
preset's value pre-filled).  Re-running on the same bytes with the same effective parameters
reuses the components (or does nothing when the output folder already holds them).  The
validate step locks the output folder; the lock is held until the export and the tracking are
done, so a second run into the same folder is refused instead of mixing its files in.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from cnmflow.errors import ParameterError
from cnmflow.lineage import read_manifest
from cnmflow.movies import remove_work_copy
from cnmflow.movies.work_copy import remove_unused
from cnmflow.outputs.location import check_output_location
from cnmflow.params_form import ExtractionParams, table_from_form
from cnmflow.report import RunReport, report_from_manifest
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT
from cnmflow.flows.settings import cache_dir, dask_scheduler, work_root
from cnmflow.tasks.concatenate import concatenate
from cnmflow.tasks.export import export_task
from cnmflow.tasks.extract import extract, is_cached
from cnmflow.tasks.motion import motion_correction
from cnmflow.tasks.progress import RunProgress
from cnmflow.tasks.report import publish_report
from cnmflow.tasks.track import track
from cnmflow.tasks.validate import validate

Preset = Literal["1p", "2p"]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - started, 3)


def _run_ids() -> dict[str, str | None]:
    url = flow_run.ui_url  # None-prefixed when no UI is configured (the temporary server)
    return {"prefect_flow_run_id": flow_run.id,
            "prefect_flow_run_url": url if url and url.startswith("http") else None}


def _compute_and_export(plan, timings: dict[str, float], progress: RunProgress, *, work_dir: str | None,
                        dask_address: str | None, save_motion_corrected: bool = False) -> bool:
    """Concatenate and correct motion (unless the components are cached and no corrected movie is
    asked for), extract and export; whether the cache served."""
    cache = cache_dir()
    work = work_root(plan.output_dir, work_dir)
    reused = is_cached(plan, cache)
    movie = corrected = motion = None
    scheduler = dask_scheduler(dask_address)
    moving = plan.inputs.resolved.params.motion_correction != "none"
    try:
        if not reused or (moving and save_motion_corrected):
            with _timed(timings, "concatenate"):
                movie, _ = concatenate(plan, work, progress=progress)
            if moving:
                with _timed(timings, "motion_correction"):
                    corrected, motion = motion_correction(plan, movie, work, progress=progress,
                                                          dask_scheduler=scheduler)
        with _timed(timings, "extract"):
            extraction = extract.with_options(result_storage=cache)(plan, corrected or movie, work,
                                                                    progress=progress, dask_scheduler=scheduler,
                                                                    motion=motion)
        with _timed(timings, "export"):
            before_fit = {stage: timings[stage] for stage in ("validate", "concatenate", "motion_correction")
                          if stage in timings}
            export_task(plan, extraction.estimates.K)(plan, extraction, _run_ids(), progress, before_fit,
                                                      corrected if save_motion_corrected else None)
    finally:
        for copy in (corrected, movie):
            if copy is not None:
                remove_work_copy(copy)   # removed unless another live run (a sweep's sibling) still uses it
        remove_unused(work)  # what killed runs left in this run's work root, unless a live run holds it
    return reused


@flow(name="source-extraction",
      description="CNMF-E / CNMF source extraction of a movie or a movie series into cell sets, event sets "
                  "and CaImAn's hdf5, with the seed tool's parameters.")
def source_extraction(
    movies: list[str],
    output_dir: str,
    params_file: str | None = None,
    overwrite_params: bool = False,
    preset: Preset = "1p",
    params: ExtractionParams = ExtractionParams(),  # type: ignore[valid-type]
    overwrite: bool = False,
    evaluate: bool = False,
    save_motion_corrected: bool = False,
    work_dir: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    track_run: bool = True,
    mlflow_parent_run_id: str | None = None,
    dask_address: str | None = None,
    nwb: bool = True,
    nwb_metadata: str | None = None,
) -> RunReport:
    """Extract neurons from ``movies`` (one recording, or a series) into ``output_dir``.

    Args:
        movies: Movie files (.isxd, .tif/.tiff, .avi); several files form one series.
        output_dir: Folder for the results (created if needed).
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
        preset: The seed's 1P or 2P column the form is based on. It fills in no field; it must agree
            with params.method_init (1p: corr_pnr; 2p: greedy_roi or sparse_NMF), else the run fails
            before compute naming both.
        params: The analysis table. What it shows is what runs: every field is applied as shown,
            an edit back to the other preset's value included.
        overwrite: Replace the outputs of an earlier, different run in output_dir.
        evaluate: Evaluate components (trace SNR, spatial consistency) and mark them accepted/rejected.
        save_motion_corrected: With motion correction on, also write the corrected movie per input movie
            (motion_corrected.{k}.tif, or .isxd with the input's timing for isxd inputs; float32).
        work_dir: Folder for the temporary float32 copy of the movies (default: inside output_dir).
        experiment: MLflow experiment the run is logged to.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<output_dir's
            parent>/mlflow.db).
        track_run: Log the run to MLflow.
        mlflow_parent_run_id: Nest the MLflow run under this run (parameter sweeps set it).
        dask_address: Dask scheduler for the patch jobs (default: $CNMFLOW_DASK_ADDRESS, else local
            processes); its workers must reach work_dir.
        nwb: Write ophys.{k}.nwb (Neurodata Without Borders) per movie.
        nwb_metadata: YAML/JSON file with the subject, session, device and imaging_plane facts for the
            NWB files (placeholders otherwise); checked before any compute.
    """
    progress = RunProgress()
    progress.start()
    timings: dict[str, float] = {}
    with _timed(timings, "validate"):
        plan = validate(movies, output_dir, preset=preset, table=table_from_form(params, preset),
                        params_file=params_file, overwrite_params=overwrite_params, overwrite=overwrite,
                        evaluate=evaluate, progress=progress, nwb=nwb, nwb_metadata=nwb_metadata)
    try:
        if work_dir is not None:
            check_output_location(work_dir, label="work_dir")
        if save_motion_corrected and plan.inputs.resolved.params.motion_correction == "none":
            raise ParameterError("save_motion_corrected needs motion correction: set motion_correction to rigid or "
                                 "piecewise_rigid, or leave save_motion_corrected off")
        if plan.up_to_date:
            get_run_logger().info("%s already holds this run's results (same inputs, parameters and code)",
                                  plan.output_dir)
        reused = plan.up_to_date or _compute_and_export(plan, timings, progress, work_dir=work_dir,
                                                        save_motion_corrected=save_motion_corrected,
                                                        dask_address=dask_address)
        error = None
        # A fresh export has no MLflow run yet; an up-to-date folder may have been tracked already.
        if track_run and not read_manifest(plan.output_dir)["run_ids"].get("mlflow_run_id"):
            with _timed(timings, "track"):
                _, error = track(plan.output_dir, experiment=experiment, tracking_uri=tracking_uri,
                                 parent_run_id=mlflow_parent_run_id)
        report = report_from_manifest(plan.output_dir, reused_extraction=reused, up_to_date=plan.up_to_date,
                                      timings_s=timings, tracking_error=error)
    finally:
        plan.release()  # the folder is complete and tracked (or the run failed): the next writer may come
    publish_report(report)
    get_run_logger().info("%d components; results in %s", report.n_components, report.output_dir)
    return report
