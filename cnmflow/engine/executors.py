"""Where patch jobs run: in this process, in local worker processes, or on a Dask cluster.

Kept apart from the jobs themselves (:mod:`cnmflow.engine.patch_job`): this module knows
processes, signals and clusters and nothing of the algorithm; the jobs know nothing of where
they run. A patch job is a pure function of (movie source, patch box, settings) and reads only its
patch from the movie file, so any executor that can reach the file gives the same components:
workers never receive the movie, only a path.  Results are returned in patch order whatever
order the jobs finish in, so the combination step — and the result — do not depend on the
executor. Jobs run in this process (one worker asked for, a movie held only in memory, or a small movie,
whose workers would cost more than its patches) run with one thread, as a worker runs them, so the
result does not depend on ``n_processes`` either, to the last bit; only a movie fitted as one patch keeps
every thread, which is then its only parallelism.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import PatchStorage, remove_orphaned_scratch
from cnmflow.engine.patch_job.dispatch import fit_patch
from cnmflow.engine.patch_job.result import PatchResult
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import PatchJobSettings
from cnmflow.engine.threads import single_threaded, use_single_thread
from cnmflow.errors import ParameterError
from cnmflow.processes import die_with_parent, sigint_blocked_in_children

Progress = Callable[[str, float], None]

#: Seconds to wait for a Dask scheduler before giving up with a clear message.
CONNECT_TIMEOUT_S = 20
#: Seconds to wait for a killed worker to be gone.
WORKER_EXIT_TIMEOUT_S = 5


def run_patch_jobs(source: MovieSource, boxes: Sequence[PatchBox], job: PatchJobSettings, dims: tuple[int, int],
                   report: Progress, *, workers: int = 1, dask_scheduler: str | None = None,
                   storage: PatchStorage = PatchStorage(), in_process_below: int = 0) -> list[PatchResult]:
    """Fit every patch with the executor the run asked for; results in ``boxes`` order.

    ``workers``: local worker processes (the layout's ``n_processes``), used for a movie in a file
    with at least ``in_process_below`` pixel-frames (a smaller one runs its jobs here, single-threaded).
    ``job`` and ``storage`` travel with each job: what the job reads, and where a worker keeps its
    patch's frames (scratch files go to the worker's own temp folder unless the policy names one).
    """
    report("patches", 0.0)
    if dask_scheduler:
        if not source.shareable:
            raise ParameterError("patches can run on a Dask cluster only for a movie stored in a file the workers "
                                 "can read; write the movie to shared storage (the flow's work_dir) first")
        return _on_dask(source.without_array(), boxes, job, dims, report, dask_scheduler, storage)
    remove_orphaned_scratch(storage.directory)  # what workers killed in an earlier run left behind
    if len(boxes) == 1:  # one patch: its own threads are the only parallelism there is
        return _in_this_process(source, boxes, job, dims, report, storage)
    workers = min(workers, len(boxes))
    if workers <= 1 or not source.shareable or pixel_frames(source) < in_process_below:
        with single_threaded():  # computes as the workers would, so n_processes changes the speed, not the result
            return _in_this_process(source, boxes, job, dims, report, storage)
    return _in_worker_processes(source, boxes, job, dims, report, workers, storage)


def pixel_frames(source: MovieSource) -> int:
    """The movie's size as rows x cols x frames: what the patch jobs' work grows with."""
    n_frames, rows, cols = source.shape
    return int(n_frames) * int(rows) * int(cols)


def _in_this_process(source: MovieSource, boxes: Sequence[PatchBox], job: PatchJobSettings, dims: tuple[int, int],
                     report: Progress, storage: PatchStorage) -> list[PatchResult]:
    results = []
    for done, box in enumerate(boxes, start=1):
        results.append(fit_patch(source, box, job, fov_dims=dims, storage=storage))
        report("patches", done / len(boxes))
    return results


def _in_worker_processes(source: MovieSource, boxes: Sequence[PatchBox], job: PatchJobSettings,
                         dims: tuple[int, int], report: Progress, workers: int,
                         storage: PatchStorage) -> list[PatchResult]:
    """Jobs in spawned processes that die with this one; a failure or Ctrl-C kills them at once."""
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                                 initargs=(os.getpid(),)) as pool:
            try:
                with sigint_blocked_in_children():  # Ctrl-C is the run's to handle; it then kills the workers
                    futures = [pool.submit(fit_patch, source.without_array(), box, job, fov_dims=dims,
                                           storage=storage) for box in boxes]
                results = []
                for done, future in enumerate(futures, start=1):
                    results.append(future.result())
                    report("patches", done / len(boxes))
            except BaseException:
                _stop_workers(pool)  # Ctrl-C / SIGTERM / a failed job: do not wait for the running jobs
                raise
    finally:
        remove_orphaned_scratch(storage.directory)  # what the workers just killed (or OOM-killed) left
    return results


def init_worker(parent_pid: int) -> None:
    """Patch worker start-up: die with the run's process (even a SIGKILLed one), one BLAS thread."""
    die_with_parent(parent_pid, signal.SIGKILL)
    use_single_thread()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued jobs and kill the workers now (leaving the ``with`` block would wait for
    the jobs that are running)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for process in processes:  # gone before their scratch folders are swept, not merely signalled
        try:
            process.join(timeout=WORKER_EXIT_TIMEOUT_S)
        except (OSError, ValueError, AssertionError):
            pass


def fit_patch_single_threaded(source: MovieSource, box: PatchBox, job: PatchJobSettings, *,
                              fov_dims: tuple[int, int], storage: PatchStorage = PatchStorage()) -> PatchResult:
    """A patch job for a cluster worker: one BLAS/FFT thread, since the workers are the parallelism."""
    use_single_thread()
    return fit_patch(source, box, job, fov_dims=fov_dims, storage=storage)


def _on_dask(source: MovieSource, boxes: Sequence[PatchBox], job: PatchJobSettings, dims: tuple[int, int],
             report: Progress, address: str, storage: PatchStorage) -> list[PatchResult]:
    from distributed import Client, as_completed, rejoin, secede

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise ParameterError(f"cannot reach the Dask scheduler at {address} ({err}); start it "
                             "(`dask scheduler`, `dask worker ADDRESS`) or run without --dask") from None
    # A fit running as a task on a worker of the same cluster (a recording fanned out by the flow's
    # Dask task runner) gives its thread back while it waits, or its own patch jobs could never start.
    inside_worker = _running_on_dask_worker()
    with client, client.as_current():
        futures = [client.submit(fit_patch_single_threaded, source, box, job, fov_dims=dims, storage=storage,
                                 pure=False,
                                 key=f"cnmflow-patch-{index}-{box.row0}-{box.col0}-{id(boxes)}")
                   for index, box in enumerate(boxes)]
        position = {future.key: index for index, future in enumerate(futures)}
        results: list[PatchResult | None] = [None] * len(futures)
        if inside_worker:
            secede()
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                results[position[future.key]] = future.result()
                report("patches", done / len(futures))
        finally:
            if inside_worker:
                rejoin()
    return results  # type: ignore[return-value]


def _running_on_dask_worker() -> bool:
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True
