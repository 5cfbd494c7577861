"""The concatenate step: the series as the fit reads it — a single raw movie in place, else one work copy
(in the inputs' integer type, or float32) shared by every run on the same bytes."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from cnmflow.movies import ConcatenatedMovie, ensure_work_copy
from cnmflow.plan import RunPlan
from cnmflow.tasks.progress import Progress
from cnmflow.tasks.retries import RETRY_OPTIONS


@task(name="concatenate", cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTIONS)
def concatenate(plan: RunPlan, work_dir: Path, *, progress: Progress) -> tuple[ConcatenatedMovie, bool]:
    """The series' work copy under ``work_dir`` (reused when finished earlier; the input itself when it is
    read in place), held for this run, and whether it is new; give it back with
    :func:`cnmflow.movies.remove_work_copy` when the run is done."""
    progress("concatenate", 0.0)
    return ensure_work_copy(plan.inputs.series, work_dir, plan.series_key, progress=progress)
