"""The validate step: movies, parameters and output folder checked before anything is computed."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from cnmflow.motion.movement import MOTION_CHECK
from cnmflow.movies.series import READING_MOVIES
from cnmflow.plan import RunPlan, plan_run
from cnmflow.progress import reporting_to, weighted_fraction
from cnmflow.request import RunRequest
from cnmflow.tasks.progress import Progress
from cnmflow.tasks.retries import RETRY_OPTIONS

#: The checks that report their progress, and their shares of the step (about equal on a long AVI).
CHECK_WEIGHTS = {READING_MOVIES: 1.0, MOTION_CHECK: 1.0}


@task(name="validate", cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTIONS)
def validate(movies: list[str], output_dir: str, request: RunRequest, *, overwrite: bool, evaluate: bool,
             progress: Progress, nwb: bool = True, nwb_metadata: str | None = None) -> RunPlan:
    """Resolve parameters, check the series, the NWB metadata file and the output folder, hash the inputs.

    A gSig far below the cells' size is logged as a warning here, in the run's log before any compute (it is in
    the run's notes too: the summary, the manifest and ``output_metadata.json``).
    """
    progress("validate", 0.0)
    with reporting_to(_checks_moving(progress)):  # an AVI's frames are all decoded: the step's bar follows
        plan = plan_run(movies, output_dir, request, overwrite=overwrite, evaluate=evaluate, nwb=nwb,
                        nwb_metadata=nwb_metadata)
    if plan.inputs.size_note:
        get_run_logger().warning(plan.inputs.size_note)
    progress("validate", 1.0)
    return plan


def _checks_moving(progress: Progress) -> Progress:
    """The long checks' reports as the validate step's progress, short of done."""
    return lambda stage, fraction: progress("validate", 0.99 * weighted_fraction(CHECK_WEIGHTS, stage, fraction))
