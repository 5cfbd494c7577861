"""What ``cnmflow suggest`` and the suggest-parameters flow compute: the "auto" values of a movie,
one line of reasons each, and the figure they were read from (:mod:`cnmflow.suggest_figure`).

The same estimate a run with gSig/min_corr/min_pnr = "auto" makes (:mod:`cnmflow.auto_params`),
on the parameters given (tsub, ssub, center_psf, border_pix; a gSig that is set is kept and only
the thresholds are estimated).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from cnmflow.request import RunRequest


def suggest(movies: Sequence[str | Path], figure: str | Path, request: RunRequest | None = None, *,
            preset: str = "1p", table: dict[str, Any] | None = None, params_file: str | Path | None = None,
            overwrite_params: bool = False) -> dict[str, Any]:
    """Suggested values (``values``), one line each (``text``), the figure written (``figure``), seconds.

    ``request`` holds the parameters given (or give its fields as keywords).
    """
    from cnmflow.auto_params import estimate_parameters
    from cnmflow.motion.movement import movement_note
    from cnmflow.movies import validate_series
    from cnmflow.movies.checks import checked_pixel_values
    from cnmflow.params import AUTO_FIELDS
    from cnmflow.params_file import resolve_run_params
    from cnmflow.request import request_of
    from cnmflow.suggest_figure import write_suggestion_figure

    started = time.perf_counter()
    request = request_of(request, preset=preset, table=table, params_file=params_file,
                         overwrite_params=overwrite_params)
    table = {name: "auto" for name in AUTO_FIELDS} | dict(request.table)  # what is not given is suggested
    params = resolve_run_params(preset=request.preset, table=table, params_file=request.params_file,
                                overwrite_params=request.overwrite_params).params
    series = validate_series(list(movies), min_frames=params.minimum_frames(), tsub=params.tsub)
    series, pixel_notes = checked_pixel_values(series)  # as a run's validation: NaN had printed min_pnr nan
    fixed = None if params.gSig == "auto" else float(params.gSig)
    est = estimate_parameters(series, tsub=params.tsub, ssub=params.ssub, gsig=fixed,
                              center_psf=params.center_psf, border_pix=params.border_pix)
    seconds = time.perf_counter() - started
    path = write_suggestion_figure(est, figure, title=", ".join(str(m) for m in movies))
    reasons = est.reasons()
    lines = [f"Suggested from {est.n_frames_used} frames (after tsub={params.tsub}) in {seconds:.1f} s:"]
    names = ("gSig", "gSiz", "min_corr", "min_pnr") if fixed is None else ("min_corr", "min_pnr")
    lines += [f"  {name:<8} {reasons[name]}" for name in names]
    # defective pixels; a gSig set far below the cells' radius read here; an estimate resting on few visible cells;
    # a movie that moves while motion_correction is 'none'
    moving = movement_note(series, params, gsig=est.gSig)
    notes = [*pixel_notes, *(note for note in (est.given_gsig_note(), est.few_cells_note(), moving) if note)]
    lines += [f"Note: {note}" for note in notes]
    lines.append(f"Figure: {path}")
    lines.append("Use: --set " + " --set ".join(f"{n}={v:g}" for n, v in est.values().items() if n in names))
    values = {name: getattr(est, name) for name in names}
    return {"values": values, "reasons": {n: reasons[n] for n in names}, "text": "\n".join(lines),
            "figure": str(path), "seconds": seconds, "notes": notes}
