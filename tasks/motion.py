"""The motion_correction step: the concatenated series registered into a float32 work copy."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from cnmflow.motion.work_copy import STAGE, MotionOutcome, ensure_corrected_copy
from cnmflow.movies import ConcatenatedMovie
from cnmflow.plan import RunPlan
from cnmflow.tasks.progress import Progress
from cnmflow.tasks.retries import RETRY_OPTIONS


@task(name="motion_correction", cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTIONS)
def motion_correction(plan: RunPlan, movie: ConcatenatedMovie, work_dir: Path, *, progress: Progress,
                      dask_scheduler: str | None = None) -> tuple[ConcatenatedMovie, MotionOutcome]:
    """The corrected copy of ``movie`` (reused when finished earlier with the same settings), held for this
    run, and its shifts; give it back with :func:`cnmflow.movies.remove_work_copy` when the run is done."""
    progress(STAGE, 0.0)
    params = plan.inputs.resolved.params
    corrected, result, _ = ensure_corrected_copy(movie, work_dir, plan.series_key, params.motion,
                                                 n_processes=params.n_processes, dask_scheduler=dask_scheduler,
                                                 chunk_mb=plan.inputs.machine.chunk_mb, progress=progress)
    return corrected, result
