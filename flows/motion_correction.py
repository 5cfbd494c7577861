"""The ``motion-correction`` flow: validate → motion_correction (correct and write), on its own.

For labs that register recordings without extracting them (or check a correction first): the
outputs are ``motion_corrected.{k}.tif`` (``.isxd`` for isxd inputs, with their timing), the
shifts (``motion_shifts.hdf5``), previews and a manifest. The form holds the motion section of
the analysis table, pre-filled with rigid correction.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from cnmflow.params_form import MotionForm, OptionalText, table_from_motion_form
from cnmflow.request import Preset, RunRequest
from cnmflow.tasks.motion_only import correct_and_write, validate_motion
from cnmflow.tasks.progress import RunProgress
from cnmflow.tasks.report import failed_run, quiet_user_error_tracebacks


#: Artifact key of a failed motion-correction run's summary.
FAILURE_KEY = "motion-correction-failure"

quiet_user_error_tracebacks()   # bad input: one line in the logs, not two 60-line tracebacks


@flow(name="motion-correction",
      description="Rigid or piecewise-rigid motion correction (NoRMCorre-style, CaImAn's parameter names) of a "
                  "movie or series into motion-corrected movies, shifts and previews.")
def motion_correction(
    movies: list[str],
    output_dir: str,
    params_file: OptionalText = None,
    overwrite_params: bool = False,
    preset: Preset = "1p",
    params: MotionForm = MotionForm(),  # type: ignore[valid-type]
    overwrite: bool = False,
    work_dir: OptionalText = None,
    dask_address: OptionalText = None,
) -> dict:
    """Motion-correct ``movies`` (one recording, or a series) into ``output_dir``.

    Args:
        movies: Movie files (.isxd, .tif/.tiff, .avi); several files form one series.
        output_dir: Folder for the results (created if needed).
        params_file: CaImAn-style JSON parameters file (its ``motion`` group), applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the form's values.
        preset: The seed's 1P or 2P column (it changes no motion field).
        params: The motion section of the analysis table (motion_correction rigid or piecewise_rigid).
        overwrite: Replace the outputs of an earlier run in output_dir.
        work_dir: Folder for the temporary float32 copies (default: inside output_dir).
        dask_address: Dask scheduler for the chunk jobs (default: $CNMFLOW_DASK_ADDRESS, else local processes).
    """
    progress = RunProgress(key="motion-correction-progress")
    progress.start()
    try:
        request = RunRequest(preset=preset, table=table_from_motion_form(params), params_file=params_file,
                             overwrite_params=overwrite_params)
        inputs = validate_motion(movies, output_dir, request, overwrite=overwrite, progress=progress)
        run = correct_and_write(inputs, output_dir, overwrite=overwrite, work_dir=work_dir,
                                dask_scheduler=inputs.machine.dask_scheduler(dask_address),
                                run_ids={"prefect_flow_run_id": flow_run.id}, progress=progress)
    except Exception as error:
        return failed_run(error, progress, movies=movies, output_dir=output_dir, job="Motion correction",
                          key=FAILURE_KEY)
    finally:
        progress.close()  # its last update is sent
    result = run.outcome.result
    summary = (f"**{result.method}** motion correction of {result.shifts_rig.shape[0]} frames: largest shift "
               f"{result.max_shift():.2f} px, crop box {result.crop.max} px\n\n"
               + "\n".join(f"- `{name}`" for name in sorted(run.files)))
    create_markdown_artifact(summary, key="motion-correction-summary", description=str(run.output_dir))
    get_run_logger().info("motion corrected (%s, largest shift %.2f px); results in %s", result.method,
                          result.max_shift(), run.output_dir)
    return {"output_dir": str(run.output_dir), "files": sorted(run.files), "max_shift_px": result.max_shift()}
