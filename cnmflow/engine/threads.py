"""How many threads one process's FFTs and BLAS calls may use.

The main process uses every core; a patch worker uses one, because the workers themselves are
the parallelism (n_processes workers × all cores each would oversubscribe the machine). The fit's
stages after the patches also run one thread (:func:`cnmflow.engine.fitting.fit`): their products
are too small for threads to pay, which only spun (issue #22).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

_fft_workers = -1  # scipy.fft: -1 = all cores


def fft_workers() -> int:
    """The ``workers=`` argument for scipy.fft calls in this process."""
    return _fft_workers


def use_single_thread() -> None:
    """Pool initializer: one FFT thread and one BLAS thread in this worker process."""
    global _fft_workers
    _fft_workers = 1
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@contextmanager
def single_threaded() -> Iterator[None]:
    """One FFT thread and one BLAS thread inside the block, as in a patch worker, so that a job run in
    this process computes exactly what it computes in a worker; the earlier limits come back after."""
    global _fft_workers
    from threadpoolctl import threadpool_limits

    saved = _fft_workers
    _fft_workers = 1
    try:
        with threadpool_limits(1):
            yield
    finally:
        _fft_workers = saved
