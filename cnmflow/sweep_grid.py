"""A parameter grid: every combination checked before the first one runs.

Users tune min_corr / min_pnr (and friends) by trial; a sweep runs the grid's combinations over
one movie.  A combination that cannot run (say ``gSiz`` smaller than ``gSig``) is an error
naming it before any compute, not a failure an hour into the sweep.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, Mapping, Sequence

from cnmflow.errors import ParameterError
from cnmflow.params import PARAM_NAMES, resolve_params

MAX_COMBINATIONS = 256


def parse_grid_option(text: str) -> tuple[str, list[Any]]:
    """``NAME=V1,V2,...`` from ``--grid`` → (name, values); values are JSON (numbers, true/false) or text."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or not raw.strip():
        raise ParameterError(f"--grid expects NAME=V1,V2,... got {text!r} (e.g. --grid min_pnr=6,8,10)")
    values = []
    for item in raw.split(","):
        item = item.strip()
        lowered = item.lower()
        if lowered in ("auto", "none", "null"):
            values.append(None)
            continue
        try:
            values.append(json.loads(lowered if lowered in ("true", "false") else item))
        except json.JSONDecodeError:
            values.append(item)
    return name, values


def combinations(grid: Mapping[str, Sequence[Any]], *, preset: str = "1p",
                 base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid's values (grid order), each validated with the base table values."""
    unknown = sorted(set(grid) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError(f"sweep grid: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAM_NAMES)}")
    empty = [name for name, values in grid.items() if not list(values)]
    if not grid or empty:
        raise ParameterError("sweep grid: give at least one parameter with values, e.g. min_pnr=6,8,10"
                             + (f" ({', '.join(empty)} has none)" if empty else ""))
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*(list(grid[name]) for name in names))]
    if len(combos) > MAX_COMBINATIONS:
        raise ParameterError(f"sweep grid has {len(combos)} combinations (at most {MAX_COMBINATIONS}); "
                             "sweep fewer values")
    for combo in combos:
        try:
            resolve_params(preset=preset, table={**(base or {}), **combo})
        except ParameterError as err:
            raise ParameterError(f"sweep combination {folder_name(combo)}: {err}") from None
    return combos


def folder_name(combination: Mapping[str, Any]) -> str:
    """A readable, file-system-safe sub-folder name, e.g. ``min_corr=0.8_min_pnr=6``."""
    parts = [f"{name}={'auto' if value is None else value}" for name, value in combination.items()]
    return re.sub(r"[^0-9A-Za-z_.=+-]", "-", "_".join(parts))
