"""A parameter grid: every combination checked before the first one runs.

Users tune min_corr / min_pnr (and friends) by trial; a sweep runs the grid's combinations over
one movie.  A combination that cannot run (say ``gSiz`` smaller than ``gSig``, or ``min_pnr``
inf) is an error naming it before any compute, not a failure an hour into the sweep; and a
combination that fails while running makes the whole sweep fail (:class:`SweepFailed`) once
the others have finished and been compared.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

from cnmflow.errors import InputError, ParameterError
from cnmflow.params import PARAM_NAMES, literal_words, unknown_message
from cnmflow.request import RunRequest, request_of
from cnmflow.progress import weighted_fraction

MAX_COMBINATIONS = 256

#: What a grid looks like (the sweep form's example, the docs): two parameters, six combinations.
GRID_EXAMPLE: dict[str, list[Any]] = {"min_corr": [0.7, 0.8], "min_pnr": [6, 8, 10]}

#: Share of a sweep's progress bar per stage: the shared work copy (validate, concatenate), the
#: combinations (one equal step each, as they finish), then the comparison.
SWEEP_STAGE_WEIGHTS: dict[str, float] = {"validate": 0.02, "concatenate": 0.08, "combinations": 0.85, "compare": 0.05}


class SweepFailed(RuntimeError):
    """Some combinations failed while running; ``rows`` compares the ones that finished."""

    def __init__(self, failures: Sequence[tuple[Mapping[str, Any], str]], n_combinations: int,
                 rows: list[dict[str, Any]] | None = None, folder: str | os.PathLike | None = None) -> None:
        self.failures = [(dict(combo), reason) for combo, reason in failures]
        self.n_combinations = n_combinations
        self.rows = rows or []
        listing = "; ".join(f"{folder_name(combo)}: {reason}" for combo, reason in self.failures)
        compared = (f"; the {len(self.rows)} that finished are compared in {folder}"
                    if self.rows and folder else "")
        super().__init__(f"{len(self.failures)} of {n_combinations} sweep combinations failed: {listing}{compared}")


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``NAME=V1,V2,...`` from ``--grid`` → (name, values); values are JSON (numbers, true/false) or text.

    ``auto`` is written as the table holds it: "auto" for gSig / min_corr / min_pnr, None for the others
    (fr, K: their auto is None); ``none`` / ``null`` are None, except for a parameter with a value of that name
    (``motion_correction=none,rigid``)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or not raw.strip():
        raise ParameterError(f"--grid expects NAME=V1,V2,... got {text!r} (e.g. --grid min_pnr=6,8,10)")
    values: list[Any] = []
    for item in raw.split(","):
        item = item.strip()
        lowered = item.lower()
        if lowered in ("auto", "none", "null"):   # gSig's "auto", motion_correction's "none": the parameter's own words
            values.append(lowered if lowered in literal_words(name) else None)
            continue
        try:
            values.append(json.loads(lowered if lowered in ("true", "false") else item))
            continue
        except json.JSONDecodeError:
            pass
        number = typed_number(item)
        values.append(item if number is None else number)
    return name, values


def typed_number(text: str) -> float | None:
    """A finite number as a shell user types one that JSON spells otherwise (.8, 8., +8), else None: such values
    are numbers in ``--set`` and ``--grid``, not quoted text; inf and nan stay text (refused as typed)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def combinations(grid: Mapping[str, Sequence[Any]], *, preset: str = "1p",
                 base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid's values (grid order), each checked as its child run will be.

    Each combination goes through the same form a child run receives
    (:meth:`~cnmflow.request.RunRequest.through_form`) and is resolved with the base table values;
    the first bad one raises ParameterError naming it.
    """
    _check_grid(grid)
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*(list(grid[name]) for name in names))]
    if len(combos) > MAX_COMBINATIONS:
        raise ParameterError(f"sweep grid has {len(combos)} combinations (at most {MAX_COMBINATIONS}); "
                             "sweep fewer values")
    folders = [folder_name(combo) for combo in combos]
    for k, combo in enumerate(combos):  # each run once: a value listed twice, or written two ways (6 and 6.0: one
        for j in range(k):              # run, in two folders and two rows of the comparison)
            if folders[j] == folders[k]:
                raise ParameterError(f"sweep grid: combination {folders[k]} appears more than once (repeated "
                                     "values?); list each value once")
            if combos[j] == combo:
                raise ParameterError(f"sweep grid: combinations {folders[j]} and {folders[k]} are the same values "
                                     "written two ways; list each value once")
    from cnmflow.params import resolve_params

    for combo in combos:
        with _labelled(combo):
            child = RunRequest(preset=preset, table={**(base or {}), **combo}).through_form()
            resolve_params(preset=preset, table=dict(child.table))  # the file and the movies: check_sweep
    return combos


def check_sweep(movies: Sequence[str | os.PathLike], grid: Mapping[str, Sequence[Any]],
                request: RunRequest | None = None, *, preset: str = "1p", base: Mapping[str, Any] | None = None,
                params_file: str | os.PathLike | None = None, overwrite_params: bool = False) -> list[dict[str, Any]]:
    """:func:`combinations`, then every combination validated with the movies and the parameters file.

    ``request`` holds the base table the grid's values replace (or give its fields as keywords).
    This is every check a child run's validate step makes (frames left after tsub, gSiz against
    the frame, the file's values), so no combination fails for its input once the sweep starts.
    """
    from cnmflow.movies import validate_series
    from cnmflow.validate import validate_inputs

    request = request_of(request, preset=preset, table=base, params_file=params_file,
                         overwrite_params=overwrite_params)
    combos = combinations(grid, preset=request.preset, base=request.table)
    _check_file_keeps_grid(grid, request.params_file, request.overwrite_params)
    validate_series(movies)  # the movies' own problems, once and without a combination's label
    for combo in combos:
        with _labelled(combo):
            validate_inputs(movies, request.with_table(combo))
    return combos


def _check_grid(grid: Mapping[str, Sequence[Any]]) -> None:
    if not isinstance(grid, Mapping):
        raise ParameterError(f"sweep grid must map parameter names to lists of values, e.g. "
                             f'{{"min_pnr": [6, 8, 10]}}; got {type(grid).__name__}')
    unknown = sorted(set(grid) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError("sweep grid: " + unknown_message(unknown))
    not_lists = [name for name, values in grid.items() if isinstance(values, (str, bytes)) or
                 not isinstance(values, Sequence)]
    if not_lists:
        raise ParameterError(f"sweep grid: {', '.join(not_lists)} must be a list of values, e.g. "
                             f'{{"{not_lists[0]}": [6, 8, 10]}}')
    empty = [name for name, values in grid.items() if not list(values)]
    if not grid or empty:
        raise ParameterError("sweep grid: give at least one parameter with values, e.g. min_pnr=6,8,10"
                             + (f" ({', '.join(empty)} has none)" if empty else ""))


def _check_file_keeps_grid(grid: Mapping[str, Any], params_file, overwrite_params: bool) -> None:
    """The file, applied over the table, would give every combination the file's value."""
    if params_file is None or not overwrite_params:
        return
    from cnmflow.params_file import read_params_file

    overlap = sorted(set(grid) & set(read_params_file(params_file).values))
    if overlap:
        raise ParameterError(
            f"sweep grid: {', '.join(overlap)} also set in parameters file {params_file}, which overwrite_params "
            "applies over the grid (every combination would run the file's value); remove it from the file or "
            "from the grid")


@contextmanager
def _labelled(combo: Mapping[str, Any]) -> Iterator[None]:
    """Re-raise an input error with the combination it belongs to (one line)."""
    try:
        yield
    except InputError as err:
        raise ParameterError(f"sweep combination {folder_name(combo)}: {err}") from None


def folder_name(combination: Mapping[str, Any]) -> str:
    """A readable, file-system-safe sub-folder name, e.g. ``min_corr=0.8_min_pnr=6``."""
    parts = [f"{name}={'auto' if value is None else value}" for name, value in combination.items()]
    return re.sub(r"[^0-9A-Za-z_.=+-]", "-", "_".join(parts))


def combination_label(combination: Mapping[str, Any]) -> str:
    """A run's name from its varied values, e.g. ``min_corr 0.8, min_pnr 6`` (None reads ``auto``).

    The folder name (:func:`folder_name`) is the file-system form; this one is for lists and graphs, where a
    scientist tells the combinations apart by their values.  A plain comma: the Prefect UI's run graph
    draws its labels in a font without "·"."""
    return ", ".join(f"{name} {'auto' if value is None else value}" for name, value in combination.items())


def sweep_label(grid: Any) -> str:
    """A sweep's name from what it varies, e.g. ``sweep min_corr × min_pnr (6 runs)``.

    Names the run before the grid is checked, so anything that is not a grid gives plain ``sweep``."""
    if not isinstance(grid, Mapping) or not grid:
        return "sweep"
    sizes = [len(values) if isinstance(values, Sequence) and not isinstance(values, str) else 1
             for values in grid.values()]
    count = 1
    for size in sizes:
        count *= size
    return f"sweep {' × '.join(str(name) for name in grid)} ({count} run{'' if count == 1 else 's'})"


def sweep_fraction(stage: str, fraction: float) -> float:
    """Share of the whole sweep done when ``stage`` is ``fraction`` done (stages in SWEEP_STAGE_WEIGHTS order)."""
    if stage not in SWEEP_STAGE_WEIGHTS:
        raise ValueError(f"unknown sweep stage {stage!r}; one of {', '.join(SWEEP_STAGE_WEIGHTS)}")
    return weighted_fraction(SWEEP_STAGE_WEIGHTS, stage, fraction)
