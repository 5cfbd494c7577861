"""The main job as a library call: validated inputs → concatenated movie → fitted components.

The Prefect tasks and the CLI both call these functions, so a run from the UI and a run from a
terminal do exactly the same work. A single movie stored as one raw block is read in place; any
other series is concatenated into the output folder's work root (``.cnmflow-work``), held for
this run and removed by its last user at the end, also on errors; a copy a killed run left there
is adopted (same series key) or removed by the next run.
The parameters arrive checked (:mod:`cnmflow.validate`); nothing here checks them again.
"""

from __future__ import annotations

import os
import resource
import secrets
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from cnmflow.engine import Estimates, fit
from cnmflow.motion.exposed_edge import reject_on_exposed_edge
from cnmflow.motion.work_copy import MotionOutcome, ensure_corrected_copy
from cnmflow.movies import ConcatenatedMovie
from cnmflow.movies.work_copy import WORK_DIR_NAME, ensure_work_copy, remove_unused, remove_work_copy
from cnmflow.outputs.folder import open_output_dir
from cnmflow.validate import ValidatedInputs

Progress = Callable[[str, float], None]

#: The stages before the fit whose seconds the export records with the fit's own.
STAGES_BEFORE_FIT: tuple[str, ...] = ("validate", "concatenate", "motion_correction")


@dataclass(frozen=True)
class ExtractionResult:
    """Components of a series and how its frames map back to the input movies."""

    inputs: ValidatedInputs
    estimates: Estimates
    offsets: dict[int, tuple[int, int]]        # movie index (user order) → frame range in the series
    filled_frames: dict[int, tuple[int, ...]]  # movie index → frames interpolated (isxd dropped/cropped, blank)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None           # largest resident memory of this process or a worker
    motion: MotionOutcome | None = None         # the shifts when motion_correction is not 'none'


@dataclass
class WorkCopies:
    """The copies of the series a run holds: the concatenated one, then the corrected one (when correcting)."""

    held: list[ConcatenatedMovie] = field(default_factory=list)
    motion: MotionOutcome | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def movie(self) -> ConcatenatedMovie:
        """The copy the fit reads: the corrected one when there is one."""
        return self.held[-1]


def peak_rss_mb() -> float:
    """Largest resident set so far of this process and of its finished children (patch workers), MiB."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale


@contextmanager
def timed_stage(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the seconds the block takes as ``timings[stage]`` (rounded to ms), also when it fails."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - started, 3)


def stages_before_fit(timings: dict[str, float]) -> dict[str, float]:
    """The seconds of the stages before the fit, as the run summary records them."""
    return {stage: timings[stage] for stage in STAGES_BEFORE_FIT if stage in timings}


@contextmanager
def held_work_copies(inputs: ValidatedInputs, work_root: str | os.PathLike, series_key: str, *,
                     corrected_key: str | None = None, progress: Progress | None = None,
                     dask_scheduler: str | None = None) -> Iterator[WorkCopies]:
    """The series' work copy under ``work_root`` (or the input itself, read in place) and, with motion
    correction on, its corrected copy, held for the block and given back after it (also on errors).
    Finished copies are reused.

    ``corrected_key`` names the corrected copy (default: ``series_key``).
    """
    copies = WorkCopies()
    try:
        started = time.perf_counter()
        concatenated, _ = ensure_work_copy(inputs.series, work_root, series_key, progress=progress)
        copies.held.append(concatenated)
        copies.timings["concatenate"] = time.perf_counter() - started
        params = inputs.resolved.params
        if params.motion_correction != "none":
            started = time.perf_counter()
            corrected, copies.motion, _ = ensure_corrected_copy(
                concatenated, work_root, corrected_key or series_key, params.motion,
                n_processes=params.n_processes, dask_scheduler=dask_scheduler, chunk_mb=inputs.machine.chunk_mb,
                progress=progress)
            copies.held.append(corrected)
            copies.timings["motion_correction"] = time.perf_counter() - started
        yield copies
    finally:
        for copy in reversed(copies.held):
            remove_work_copy(copy)


def give_back_work_copies(work_root: str | os.PathLike, *copies: ConcatenatedMovie | None) -> None:
    """Release this run's holds on ``copies`` (each removed unless another live run still uses it), then
    remove what killed runs left in ``work_root`` that no live run holds."""
    for copy in copies:
        if copy is not None:
            remove_work_copy(copy)
    remove_unused(work_root)


def extract(inputs: ValidatedInputs, output_dir: str | os.PathLike, *, progress: Progress | None = None,
            series_key: str | None = None) -> ExtractionResult:
    """Concatenate the series on disk (unless it is read in place) and fit it; nothing but the work copy is
    written.

    ``series_key`` (see :attr:`cnmflow.plan.RunPlan.series_key`) names the work copy so that one
    a killed run left behind is adopted; without it the copy gets a name of its own.
    """
    with open_output_dir(output_dir) as lock:
        key = series_key or f"private-{secrets.token_hex(12)}"
        with held_work_copies(inputs, Path(lock.folder) / WORK_DIR_NAME, key, corrected_key=series_key,
                              progress=progress) as copies:
            result = fit_series(inputs, copies.movie, progress=progress, motion=copies.motion)
    return replace(result, timings={**copies.timings, **result.timings})


def fit_series(inputs: ValidatedInputs, concatenated: ConcatenatedMovie, *,
               progress: Progress | None = None, dask_scheduler: str | None = None,
               motion: MotionOutcome | None = None) -> ExtractionResult:
    """Fit an already concatenated (and, with ``motion``, corrected) series with the run's parameters.

    ``dask_scheduler`` sends the patch jobs to that Dask cluster (the copy must be on shared storage).
    ``motion`` is carried into the result for the outputs (shifts, crop box, previews).
    """
    started = time.perf_counter()
    estimates = fit(concatenated.open(), inputs.engine, progress, machine=inputs.machine,
                    dask_scheduler=dask_scheduler)
    if motion is not None:   # the flicker of the edge the shifts left without data (motion/exposed_edge)
        reject_on_exposed_edge(estimates, motion.result.crop)
    timings = {"fit": time.perf_counter() - started}
    timings.update({f"fit.{stage}": seconds for stage, seconds in estimates.timings.items()})
    return ExtractionResult(inputs=inputs, estimates=estimates, offsets=concatenated.offsets,
                            filled_frames=concatenated.filled_frames, timings=timings,
                            peak_rss_mb=peak_rss_mb(), motion=motion)
