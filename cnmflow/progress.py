"""A command-line progress display for ``progress(stage, fraction)`` callbacks.

The engine and the movie code only call ``progress(stage, fraction)``; this turns those calls
into one bar per stage on a terminal (rich), or one line per finished stage in a log.

The checks before a run are called through several layers that take no callback (validation → a series' movies →
an AVI's frame count, the motion check); what takes long there calls :func:`report`, which goes to the callback a
caller installed with :func:`reporting_to` for the block (a context variable: another thread's work is not reported
to it), and nowhere otherwise.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Mapping

Progress = Callable[[str, float], None]

_LISTENER: ContextVar[Progress | None] = ContextVar("cnmflow_progress_listener", default=None)


@contextmanager
def reporting_to(progress: Progress | None) -> Iterator[None]:
    """Send the :func:`report` calls made in this block (in this thread or task) to ``progress``."""
    token = _LISTENER.set(progress)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def report(stage: str, fraction: float) -> None:
    """``progress(stage, fraction)`` to the listener :func:`reporting_to` installed, if any."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(stage, fraction)


def after_seconds(progress: Progress, seconds: float) -> Progress:
    """``progress``, but each stage only from ``seconds`` after its first report on: quick stages leave no bar or
    line behind."""
    first_reported: dict[str, float] = {}

    def update(stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if now - first_reported.setdefault(stage, now) >= seconds:
            progress(stage, fraction)

    return update


@contextmanager
def part_of(stage: str, index: int, count: int) -> Iterator[None]:
    """Reports made in this block, whatever their stage, count as the ``index``-th of ``count`` equal parts of
    ``stage`` (the movies of a series: one bar for them all)."""
    outer = _LISTENER.get()
    if outer is None:
        yield
        return
    with reporting_to(lambda _stage, fraction: outer(stage, (index + min(max(fraction, 0.0), 1.0)) / count)):
        yield


def weighted_fraction(weights: Mapping[str, float], stage: str, fraction: float) -> float:
    """Share of a whole job done when ``stage`` is ``fraction`` done: the job's stages run in the order
    of ``weights``, each taking its weight's share of the time (weights are normalised to their sum).
    A stage not in ``weights`` counts as all of them done."""
    total = sum(weights.values())
    done = 0.0
    for name, weight in weights.items():
        if name == stage:
            return min(1.0, (done + weight * min(max(fraction, 0.0), 1.0)) / total)
        done += weight
    return min(1.0, done / total)


@contextmanager
def progress_bar(*, enabled: bool = True) -> Iterator[Progress]:
    """Yield a ``progress(stage, fraction)`` callback that draws bars on stderr while in the block."""
    if not enabled:
        yield lambda stage, fraction: None
        return
    if not sys.stderr.isatty():
        yield _line_logger()
        return
    from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

    bars = RichProgress(TextColumn("{task.description:<16}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                        TimeElapsedColumn(), transient=False)
    tasks: dict[str, int] = {}

    def update(stage: str, fraction: float) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=1.0)
        bars.update(tasks[stage], completed=min(max(fraction, 0.0), 1.0))

    with bars:
        yield update


def _line_logger() -> Progress:
    started = time.perf_counter()
    finished: set[str] = set()

    def update(stage: str, fraction: float) -> None:
        if fraction >= 1.0 and stage not in finished:
            finished.add(stage)
            print(f"[{time.perf_counter() - started:7.1f} s] {stage} done", file=sys.stderr, flush=True)

    return update
