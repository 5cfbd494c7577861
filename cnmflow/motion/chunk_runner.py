"""Where chunk jobs run: in this process, in local worker processes, or on a Dask cluster.

The same arrangement as the engine's patch jobs (:mod:`cnmflow.engine.executors`): workers get
a :class:`MovieSource` path and a frame range, write their corrected frames straight into the
output file, and send back only shifts and two frame-sized sums. Results come back in frame
order whatever order jobs finish in, so the outcome does not depend on the executor.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np

from cnmflow.engine.movie_source import MovieSource
from cnmflow.errors import ParameterError
from cnmflow.motion.chunk_job import (ChunkPlan, ChunkResult, correct_chunk, correct_chunk_single_threaded,
                                     use_one_thread)

Progress = Callable[[str, float], None]
STAGE = "motion_correction"
#: Jobs submitted ahead per worker (keeps workers busy without holding many finished results).
IN_FLIGHT_PER_WORKER = 2
#: Seconds to wait for a Dask scheduler before giving up with a clear message.
CONNECT_TIMEOUT_S = 20


class ChunkRunner:
    """Runs the chunk jobs of every pass of one correction; open with :func:`chunk_runner`."""

    def __init__(self, source: MovieSource, *, pool: Executor | None = None, client=None, workers: int = 1,
                 out: np.ndarray | None = None, progress: Progress | None = None):
        self._source, self._pool, self._client, self._out = source, pool, client, out
        self._workers, self._progress = max(1, workers), progress

    def run(self, ranges: Sequence[tuple[int, int]], plan: ChunkPlan, *, done_before: float = 0.0,
            share: float = 1.0) -> Iterator[ChunkResult]:
        """Every chunk of one pass, yielded in frame order; progress runs from done_before to done_before+share.

        At most :data:`IN_FLIGHT_PER_WORKER` jobs per worker are submitted ahead of the one being
        collected, so finished results (two frame-sized sums each) never pile up with the movie's length.
        """
        if self._client is None and self._pool is None:
            for i, (a, b) in enumerate(ranges):
                yield correct_chunk(self._source, a, b, plan, self._out)
                self._report(done_before + share * (i + 1) / len(ranges))
            return
        ahead = IN_FLIGHT_PER_WORKER * self._workers
        pending: deque = deque()
        submitted = 0
        for i in range(len(ranges)):
            while submitted < len(ranges) and submitted < i + ahead:
                a, b = ranges[submitted]
                if self._client is not None:
                    pending.append(self._client.submit(correct_chunk_single_threaded, self._source, a, b, plan,
                                                       pure=False))
                else:
                    pending.append(self._pool.submit(correct_chunk, self._source, a, b, plan))
                submitted += 1
            yield pending.popleft().result()
            self._report(done_before + share * (i + 1) / len(ranges))

    def _report(self, fraction: float) -> None:
        if self._progress is not None:
            self._progress(STAGE, fraction)


@contextmanager
def chunk_runner(source: MovieSource, *, n_processes: int, parallel_ok: bool, dask_scheduler: str | None = None,
                 out: np.ndarray | None = None, progress: Progress | None = None) -> Iterator[ChunkRunner]:
    """A runner whose workers (if any) live as long as the ``with`` block, also on errors.

    ``parallel_ok`` says whether workers can reach both the movie and the output (files by path).
    """
    if dask_scheduler:
        if not parallel_ok:
            raise ParameterError("motion correction runs on a Dask cluster only for a movie and an output stored "
                                 "in files the workers can read and write; use the flow's work_dir on shared storage")
        from distributed import Client

        try:
            client = Client(dask_scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ParameterError(f"cannot reach the Dask scheduler at {dask_scheduler} ({err}); start it or run "
                                 "without --dask") from None
        with client:
            workers = max(1, sum(info.get("nthreads", 1) for info in client.scheduler_info()["workers"].values()))
            yield ChunkRunner(source.without_array(), client=client, workers=workers, progress=progress)
        return
    if n_processes <= 1 or not parallel_ok:
        yield ChunkRunner(source, out=out, progress=progress)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_processes, mp_context=context, initializer=use_one_thread) as pool:
        yield ChunkRunner(source.without_array(), pool=pool, workers=n_processes, progress=progress)
