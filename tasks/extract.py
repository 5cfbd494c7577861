"""The extract step: CNMF-E on the concatenated series, cached by the run's fingerprint.

The cache key is the fingerprint of input bytes + effective parameters + code, so a re-run on
the same data with the same settings reuses the components, whatever the paths or the output
folder; the export step re-attaches the current run's inputs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import task

from cnmflow.motion.work_copy import MotionOutcome
from cnmflow.movies import ConcatenatedMovie
from cnmflow.pipeline import ExtractionResult, fit_series, held_work_copies
from cnmflow.plan import RunPlan
from cnmflow.results_cache import RESULT_PREFIX, mark_used, prune
from cnmflow.tasks.progress import Progress
from cnmflow.tasks.retries import RETRY_OPTIONS


def fingerprint_key(context: Any, parameters: dict[str, Any]) -> str:
    """Prefect cache key: the run's fingerprint."""
    return f"{RESULT_PREFIX}{parameters['plan'].fingerprint}"


@task(name="extract", cache_key_fn=fingerprint_key, persist_result=True, cache_result_in_memory=False,
      **RETRY_OPTIONS)
def extract(plan: RunPlan, movie: ConcatenatedMovie | None, work_dir: Path, *,
            progress: Progress, dask_scheduler: str | None = None,
            motion: MotionOutcome | None = None) -> ExtractionResult:
    """Fit the series (``movie``: the corrected copy when ``motion`` is given).

    ``movie`` is None when the flow expected a cache hit; should the stored result have vanished
    since, the series is concatenated (and corrected) here after all (this run's holds given up afterwards).
    """
    progress("patches", 0.0)  # the fit's first stage: a failure from here on is reported as the fit's
    if movie is not None:
        return fit_series(plan.inputs, movie, progress=progress, dask_scheduler=dask_scheduler, motion=motion)
    with held_work_copies(plan.inputs, work_dir, plan.series_key, corrected_key=plan.series_key, progress=progress,
                          dask_scheduler=dask_scheduler) as copies:
        return fit_series(plan.inputs, copies.movie, progress=progress, dask_scheduler=dask_scheduler,
                          motion=copies.motion)


def is_cached(plan: RunPlan, cache_dir: Path) -> bool:
    """Whether :func:`extract` has a stored result for this plan (so concatenation can be skipped)."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore

    store = ResultStore(result_storage=LocalFileSystem(basepath=str(cache_dir)))
    return store.exists(fingerprint_key(None, {"plan": plan}))


def with_current_inputs(result: ExtractionResult, plan: RunPlan) -> ExtractionResult:
    """A cached result carries the inputs of the run that computed it; use this run's paths."""
    return replace(result, inputs=plan.inputs)


def stored_result(plan: RunPlan, cache_dir: Path) -> Path:
    """The file :func:`extract`'s result is stored in (a LocalFileSystem at ``cache_dir`` names it by its key)."""
    return Path(cache_dir) / fingerprint_key(None, {"plan": plan})


def keep_cache_bounded(plan: RunPlan, cache_dir: Path, *, served: bool) -> None:
    """After a run: its result marked used when the cache served it, then the cache pruned to
    ``CNMFLOW_CACHE_MAX_GB`` (least recently used first; this run's result kept)."""
    own = stored_result(plan, cache_dir)
    if served:
        mark_used(own)
    prune(Path(cache_dir), max_bytes=plan.inputs.machine.cache_max_gb * 2 ** 30, keep=own)
