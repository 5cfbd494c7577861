"""Steps of the ``motion-correction`` flow: check the inputs, then correct and write the outputs."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from cnmflow.motion_run import MotionRun, check_motion_output_dir, motion_correct, validate_motion_inputs
from cnmflow.request import RunRequest
from cnmflow.validate import ValidatedInputs
from cnmflow.tasks.progress import Progress
from cnmflow.tasks.retries import RETRY_OPTIONS


@task(name="validate", cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTIONS)
def validate_motion(movies: list[str], output_dir: str, request: RunRequest, *, overwrite: bool,
                    progress: Progress) -> ValidatedInputs:
    """Movies, motion parameters (checked against the frame) and the output folder, before compute."""
    progress("validate", 0.0)
    inputs = validate_motion_inputs(movies, request)
    check_motion_output_dir(output_dir, inputs, overwrite=overwrite)
    progress("validate", 1.0)
    return inputs


@task(name="motion_correction", cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTIONS)
def correct_and_write(inputs: ValidatedInputs, output_dir: str, *, overwrite: bool, work_dir: str | None,
                      dask_scheduler: str | None, run_ids: dict[str, str | None], progress: Progress) -> MotionRun:
    """Correct the series (reusing a finished corrected copy) and write the outputs, all or nothing."""
    return motion_correct([], output_dir, inputs=inputs, overwrite=overwrite, work_dir=work_dir,
                          dask_scheduler=dask_scheduler, run_ids=run_ids, progress=progress)
