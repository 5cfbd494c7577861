"""What a movie's pixels allow, checked before any long computation: each module one check.

- :mod:`.values`: NaN, ±inf, overflowing values, a range float32 rounds to a few levels or underflows — refused;
- :mod:`.blank`: no pixel changes over time — refused;
- :mod:`.blank_frames`: frames holding no image — a blank tail refused, others recorded on the movie and filled;
- :mod:`.channels`: two channels interleaved frame by frame without metadata — refused;
- :mod:`.defective_pixels`: isolated stuck or hot pixels — recorded on the movie and mended as frames are read;
- :mod:`.levels`: a series' parts on different scales (one processed apart, or of another bit depth) — refused;
- :mod:`.repeats`: a series' part given twice under files whose bytes differ (a copy saved again) — refused.

The channel, defective-pixel, level and repeat checks see the blank frames filled, and judge one read of the movie's
middle frames (:mod:`.middle_frames`). Every finding is remembered per file (:mod:`.memo`): the CLI's pre-check, the
flow's validate step, ``cnmflow suggest`` and a sweep's combinations read a movie once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cnmflow.errors import MovieError
from cnmflow.movies.checks.blank import check_not_blank
from cnmflow.movies.checks.blank_frames import blank_frames_note, blank_frames_problem, find_blank_frames
from cnmflow.movies.checks.channels import interleaved_problem
from cnmflow.movies.checks.defective_pixels import defects, defects_note
from cnmflow.movies.checks.levels import level_range, scale_problem
from cnmflow.movies.checks.memo import remembered
from cnmflow.movies.checks.middle_frames import read_middle
from cnmflow.movies.checks.repeats import content_digest, repeat_problem
from cnmflow.movies.checks.values import check_pixel_values
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import read_frames
from cnmflow.movies.series import MovieSeries

__all__ = ["check_not_blank", "check_pixel_values", "check_single_channel", "checked_pixel_values",
           "find_defective_pixels", "with_blank_frames", "with_defective_pixels"]


def check_single_channel(info: MovieInfo) -> None:
    """Raise MovieError when the movie's frames alternate between two images (:mod:`.channels`)."""
    problem = _middle_findings(info)[0]
    if problem is not None:
        raise MovieError(problem)


def find_defective_pixels(info: MovieInfo) -> tuple[tuple[int, int], ...]:
    """The movie's isolated defective pixels (row, col), read on frames from its middle (:mod:`.defective_pixels`)."""
    return _middle_findings(info)[1]


def with_defective_pixels(series: MovieSeries) -> tuple[MovieSeries, tuple[str, ...]]:
    """``series`` with each movie's defective pixels recorded (every frame then read has them mended:
    :mod:`cnmflow.movies.pixel_repair`), and a note for each movie that has some."""
    movies = tuple(replace(info, defective_pixels=find_defective_pixels(info)) for info in series.movies)
    notes = tuple(defects_note(info) for info in movies if info.defective_pixels)
    return replace(series, movies=movies), notes


def checked_pixel_values(series: MovieSeries) -> tuple[MovieSeries, tuple[str, ...]]:
    """The refusing checks of each movie of a series, in its listed order, then the series with its blank frames
    and defective pixels recorded and their notes: what a run's validation refuses and mends, ``cnmflow suggest``
    too (a NaN pixel had made it print min_pnr nan), whatever gSig is (a blank movie had been refused only where gSig
    was "auto", else reported after the fit)."""
    series, blank_notes = with_blank_frames(series)
    for info in series.movies:
        check_single_channel(info)
    if len(series.movies) > 1:
        found = [_middle_findings(info) for info in series.movies]
        problem = (repeat_problem(series.movies, [digest for *_, digest in found])
                   or scale_problem(series.movies, [levels for _, _, levels, _ in found]))
        if problem is not None:
            raise MovieError(problem)
    series, defect_notes = with_defective_pixels(series)
    return series, blank_notes + defect_notes


def with_blank_frames(series: MovieSeries) -> tuple[MovieSeries, tuple[str, ...]]:
    """``series`` with each movie's blank frames recorded (every frame then read has them filled), after the checks
    that refuse a movie's values or a movie blank throughout, and a note for each movie that has some; a blank tail
    is refused (:mod:`.blank_frames`)."""
    movies = []
    for info in series.movies:
        check_pixel_values(info)
        check_not_blank(info)
        blank = find_blank_frames(info)
        problem = blank_frames_problem(info, blank)
        if problem is not None:
            raise MovieError(problem)
        movies.append(replace(info, blank_frames=blank))
    notes = tuple(blank_frames_note(info) for info in movies if info.blank_frames)
    return replace(series, movies=tuple(movies)), notes


Findings = tuple[str | None, tuple[tuple[int, int], ...], tuple[float, float], str]


def _middle_findings(info: MovieInfo) -> Findings:
    """The channel check's refusal (None: one channel), the defective pixels, the level range (:mod:`.levels`) and
    the content digest (:mod:`.repeats`), judged on one read of the middle frames and remembered per file (only the
    findings: the frames' moments, 64 MB for a 2048² sensor, are not kept). Too few frames are read whole for the
    level and the digest only."""
    def judged() -> Findings:
        middle = read_middle(info)
        if middle is None:
            means = read_frames(info, 0, info.n_frames).mean(axis=0, dtype=np.float64)  # fewer than 16 frames
            return None, (), level_range(means), content_digest(info.n_frames, means)
        return (interleaved_problem(info, middle), defects(middle), level_range(middle.mean),
                content_digest(info.n_frames, middle.mean))

    return remembered("middle", info, judged)
