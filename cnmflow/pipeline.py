"""The main job as a library call: validated inputs → concatenated movie → fitted components.

The Prefect tasks and the CLI both call these functions, so a run from the UI and a run from a
terminal do exactly the same work. The concatenated movie lives in a private work directory
under the output directory and is removed at the end, also on errors.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from cnmflow.engine import Estimates, check_supported, fit
from cnmflow.movies import ConcatenatedMovie, concatenate, work_directory
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


def peak_rss_mb() -> float:
    """Largest resident set so far of this process and of its finished children (patch workers), MiB."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale


def extract(inputs: ValidatedInputs, output_dir: str | os.PathLike, *,
            progress: Progress | None = None) -> ExtractionResult:
    """Concatenate the series on disk and fit it; nothing but the work directory is written."""
    check_supported(inputs.resolved.params)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with work_directory(output_dir) as work:
        started = time.perf_counter()
        concatenated = concatenate(inputs.series, work, progress=progress)
        seconds = time.perf_counter() - started
        result = fit_series(inputs, concatenated, progress=progress)
    return replace(result, timings={"concatenate": seconds, **result.timings})


def fit_series(inputs: ValidatedInputs, concatenated: ConcatenatedMovie, *,
               progress: Progress | None = None, dask_scheduler: str | None = None) -> ExtractionResult:
    """Fit an already concatenated series (e.g. a shared work copy) with the run's parameters.

    ``dask_scheduler`` sends the patch jobs to that Dask cluster (the copy must be on shared storage).
    """
    params = inputs.resolved.params
    check_supported(params)
    started = time.perf_counter()
    estimates = fit(concatenated.open(), params, progress, dask_scheduler=dask_scheduler)
    timings = {"fit": time.perf_counter() - started}
    timings.update({f"fit.{stage}": seconds for stage, seconds in estimates.timings.items()})
    return ExtractionResult(inputs=inputs, estimates=estimates, offsets=concatenated.offsets,
                            filled_frames=concatenated.filled_frames, timings=timings,
                            peak_rss_mb=peak_rss_mb())
