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

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from cnmflow.params_form import ExtractionParams, OptionalText
from cnmflow.pipeline import give_back_work_copies, stages_before_fit, timed_stage
from cnmflow.plan import RunPlan, check_run_options, needs_tracking, work_steps
from cnmflow.report import RunReport, report_from_manifest
from cnmflow.request import Preset, RunRequest
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT
from cnmflow.tasks.concatenate import concatenate
from cnmflow.tasks.export import export_task
from cnmflow.tasks.extract import extract, is_cached, keep_cache_bounded
from cnmflow.tasks.motion import motion_correction
from cnmflow.tasks.progress import RunProgress
from cnmflow.tasks.report import failed_run, publish_report, quiet_user_error_tracebacks
from cnmflow.tasks.track import track
from cnmflow.tasks.validate import validate


quiet_user_error_tracebacks()   # bad input: one line in the logs, not two 60-line tracebacks


def _run_ids() -> dict[str, str | None]:
    url = flow_run.ui_url  # None-prefixed when no UI is configured (the temporary server)
    return {"prefect_flow_run_id": flow_run.id,
            "prefect_flow_run_url": url if url and url.startswith("http") else None}


def _compute_and_export(plan: RunPlan, timings: dict[str, float], progress: RunProgress, *, work_dir: str | None,
                        dask_address: str | None, save_motion_corrected: bool = False) -> bool:
    """Make the work copies the plan's steps need, extract (cached by fingerprint) and export; whether the
    cache served."""
    machine = plan.inputs.machine
    cache = machine.results_cache()
    work = plan.work_root(work_dir)
    steps = work_steps(plan, cached=is_cached(plan, cache), save_motion_corrected=save_motion_corrected)
    scheduler = machine.dask_scheduler(dask_address)
    movie = corrected = motion = None
    try:
        if steps.concatenate:
            with timed_stage(timings, "concatenate"):
                movie, _ = concatenate(plan, work, progress=progress)
        if steps.correct_motion:
            with timed_stage(timings, "motion_correction"):
                corrected, motion = motion_correction(plan, movie, work, progress=progress, dask_scheduler=scheduler)
        with timed_stage(timings, "extract"):
            extraction = extract.with_options(result_storage=cache)(plan, corrected or movie, work, progress=progress,
                                                                    dask_scheduler=scheduler, motion=motion)
        with timed_stage(timings, "export"):
            export_task(plan, extraction.estimates.K)(plan, extraction, _run_ids(), progress, stages_before_fit(timings),
                                                      corrected if save_motion_corrected else None)
        keep_cache_bounded(plan, cache, served=steps.reused)
    finally:
        give_back_work_copies(work, corrected, movie)  # kept while another live run (a sweep's sibling) uses them
    return steps.reused


@flow(name="source-extraction",
      description="CNMF-E / CNMF source extraction of a movie or a movie series into cell sets, event sets "
                  "and CaImAn's hdf5, with the seed tool's parameters.")
def source_extraction(
    movies: list[str],
    output_dir: str,
    params_file: OptionalText = None,
    overwrite_params: bool = False,
    preset: Preset = "1p",
    params: ExtractionParams = ExtractionParams(),  # type: ignore[valid-type]
    overwrite: bool = False,
    evaluate: bool = False,
    save_motion_corrected: bool = False,
    nwb: bool = True,
    nwb_metadata: OptionalText = None,
    experiment: str = DEFAULT_EXPERIMENT,
    track_run: bool = True,
    tracking_uri: OptionalText = None,
    work_dir: OptionalText = None,
    dask_address: OptionalText = None,
    mlflow_parent_run_id: OptionalText = None,
) -> RunReport:
    """Extract neurons from ``movies`` (one recording, or a series) into ``output_dir``.

    The form's order: the movies and the output folder, the parameters file, the analysis table in the
    seed's order, the output options, then the advanced run settings (tracking, work folder, Dask).

    Args:
        movies: Movie files (.isxd, .tif/.tiff, .avi); several files form one series.
        output_dir: Folder for the results (created if needed).
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
        preset: The seed's 1P or 2P column the form is based on. It fills in no field; it must agree
            with params.method_init (1p: corr_pnr; 2p: greedy_roi or sparse_NMF), else the run fails
            before compute naming both.
        params: The analysis table, in the seed's order. What it shows is what runs: every field is
            applied as shown, an edit back to the other preset's value included.
        overwrite: Replace the outputs of an earlier, different run in output_dir.
        evaluate: Evaluate components (trace SNR, spatial consistency) and mark them accepted/rejected.
        save_motion_corrected: With motion correction on, also write the corrected movie per input movie
            (motion_corrected.{k}.tif, or .isxd with the input's timing for isxd inputs; float32).
        nwb: Write ophys.{k}.nwb (Neurodata Without Borders) per movie.
        nwb_metadata: YAML/JSON file with the subject, session, device and imaging_plane facts for the
            NWB files (placeholders otherwise); checked before any compute.
        experiment: MLflow experiment the run is logged to.
        track_run: Advanced run setting. Log the run to MLflow.
        tracking_uri: Advanced run setting. MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else
            sqlite:///<output_dir's parent>/mlflow.db).
        work_dir: Advanced run setting. Folder for the temporary work copy of a series or compressed movie
            and the motion-corrected copy (default: inside output_dir; one uncompressed movie is read in place).
        dask_address: Advanced run setting. Dask scheduler for the patch jobs (default:
            $CNMFLOW_DASK_ADDRESS, else local processes); its workers must reach work_dir.
        mlflow_parent_run_id: Advanced run setting. Nest the MLflow run under this run (parameter sweeps
            set it).
    """
    progress = RunProgress()
    progress.start()
    try:
        report = _run(movies, output_dir, progress, params_file=params_file, overwrite_params=overwrite_params,
                      preset=preset, params=params, overwrite=overwrite, evaluate=evaluate,
                      save_motion_corrected=save_motion_corrected, nwb=nwb, nwb_metadata=nwb_metadata,
                      experiment=experiment, track_run=track_run, tracking_uri=tracking_uri, work_dir=work_dir,
                      dask_address=dask_address, mlflow_parent_run_id=mlflow_parent_run_id)
    except Exception as error:
        return failed_run(error, progress, movies=movies, output_dir=output_dir)
    finally:
        progress.close()  # its last update is sent
    get_run_logger().info("%d components; results in %s", report.n_components, report.output_dir)
    return report


def _run(movies: list[str], output_dir: str, progress: RunProgress, *, params_file: str | None,
         overwrite_params: bool, preset: Preset, params: Any, overwrite: bool, evaluate: bool,
         save_motion_corrected: bool, nwb: bool, nwb_metadata: str | None, experiment: str, track_run: bool,
         tracking_uri: str | None, work_dir: str | None, dask_address: str | None,
         mlflow_parent_run_id: str | None) -> RunReport:
    """The run's steps: validate, compute and export (unless up to date), track, report."""
    timings: dict[str, float] = {}
    with timed_stage(timings, "validate"):
        request = RunRequest.from_form(params, preset=preset, params_file=params_file,
                                       overwrite_params=overwrite_params)
        plan = validate(movies, output_dir, request, overwrite=overwrite, evaluate=evaluate, progress=progress,
                        nwb=nwb, nwb_metadata=nwb_metadata)
    try:
        check_run_options(plan, work_dir=work_dir, save_motion_corrected=save_motion_corrected)
        if plan.up_to_date:
            get_run_logger().info("%s already holds this run's results (same inputs, parameters and code)",
                                  plan.output_dir)
        reused = plan.up_to_date or _compute_and_export(plan, timings, progress, work_dir=work_dir,
                                                        save_motion_corrected=save_motion_corrected,
                                                        dask_address=dask_address)
        error = None
        if needs_tracking(plan.output_dir, track_run=track_run):
            progress("track", 0.0)
            with timed_stage(timings, "track"):
                _, error = track(plan.output_dir, experiment=experiment, tracking_uri=tracking_uri,
                                 parent_run_id=mlflow_parent_run_id)
        progress("track", 1.0)
        report = report_from_manifest(plan.output_dir, reused_extraction=reused, up_to_date=plan.up_to_date,
                                      timings_s=timings, tracking_error=error)
    finally:
        plan.release()  # the folder is complete and tracked (or the run failed): the next writer may come
    publish_report(report, progress)
    return report
