"""The main job as a library call: validated inputs → concatenated movie → fitted components.

The Prefect tasks and the CLI both call these functions, so a run from the UI and a run from a
terminal do exactly the same work. The concatenated movie lives in the output folder's work
root (``.cnmflow-work``), held for this run and removed by its last user at the end, also on
errors; a copy a killed run left there is adopted (same series key) or removed by the next run.
"""

from __future__ import annotations

import os
import resource
import secrets
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from cnmflow.engine import Estimates, check_supported, fit
from cnmflow.engine.fitting import chunk_mb_setting
from cnmflow.motion.work_copy import MotionOutcome, ensure_corrected_copy
from cnmflow.movies import ConcatenatedMovie
from cnmflow.movies.work_copy import WORK_DIR_NAME, ensure_work_copy, remove_work_copy
from cnmflow.outputs.folder import open_output_dir
from cnmflow.validate import ValidatedInputs

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ExtractionResult:
    """Components of a series and how its frames map back to the input movies."""

    inputs: ValidatedInputs
    estimates: Estimates
    offsets: dict[int, tuple[int, int]]        # movie index (user order) → frame range in the series
    filled_frames: dict[int, tuple[int, ...]]  # movie index → frames interpolated (isxd dropped/cropped)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None           # largest resident memory of this process or a worker
    motion: MotionOutcome | None = None         # the shifts when motion_correction is not 'none'


def peak_rss_mb() -> float:
    """Largest resident set so far of this process and of its finished children (patch workers), MiB."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale


def extract(inputs: ValidatedInputs, output_dir: str | os.PathLike, *, progress: Progress | None = None,
            series_key: str | None = None) -> ExtractionResult:
    """Concatenate the series on disk and fit it; nothing but the work copy is written.

    ``series_key`` (see :attr:`cnmflow.plan.RunPlan.series_key`) names the work copy so that one
    a killed run left behind is adopted; without it the copy gets a name of its own.
    """
    check_supported(inputs.resolved.params)
    with open_output_dir(output_dir) as lock:
        started = time.perf_counter()
        concatenated, _ = ensure_work_copy(inputs.series, lock.folder / WORK_DIR_NAME,
                                           series_key or f"private-{secrets.token_hex(12)}", progress=progress)
        seconds = time.perf_counter() - started
        corrected, motion = None, None
        try:
            params = inputs.resolved.params
            if params.motion_correction != "none":
                started = time.perf_counter()
                corrected, motion, _ = ensure_corrected_copy(
                    concatenated, lock.folder / WORK_DIR_NAME, series_key or concatenated.path.parent.name,
                    params.motion, n_processes=params.n_processes, chunk_mb=chunk_mb_setting(), progress=progress)
                motion_seconds = time.perf_counter() - started
            result = fit_series(inputs, corrected or concatenated, progress=progress, motion=motion)
        finally:
            if corrected is not None:
                remove_work_copy(corrected)
            remove_work_copy(concatenated)
    timings = {"concatenate": seconds, **({"motion_correction": motion_seconds} if motion else {})}
    return replace(result, timings={**timings, **result.timings})


def fit_series(inputs: ValidatedInputs, concatenated: ConcatenatedMovie, *,
               progress: Progress | None = None, dask_scheduler: str | None = None,
               motion: MotionOutcome | None = None) -> ExtractionResult:
    """Fit an already concatenated (and, with ``motion``, corrected) series with the run's parameters.

    ``dask_scheduler`` sends the patch jobs to that Dask cluster (the copy must be on shared storage).
    ``motion`` is carried into the result for the outputs (shifts, crop box, previews).
    """
    params = inputs.resolved.params
    check_supported(params)
    started = time.perf_counter()
    estimates = fit(concatenated.open(), params, progress, dask_scheduler=dask_scheduler)
    timings = {"fit": time.perf_counter() - started}
    timings.update({f"fit.{stage}": seconds for stage, seconds in estimates.timings.items()})
    return ExtractionResult(inputs=inputs, estimates=estimates, offsets=concatenated.offsets,
                            filled_frames=concatenated.filled_frames, timings=timings,
                            peak_rss_mb=peak_rss_mb(), motion=motion)
