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


def suggest(movies: Sequence[str | Path], figure: str | Path | None = None, request: RunRequest | None = None, *,
            preset: str = "1p", table: dict[str, Any] | None = None, params_file: str | Path | None = None,
            overwrite_params: bool = False) -> dict[str, Any]:
    """Suggested values (``values``), one line each (``text``), the figure written (``figure``), seconds.

    ``figure``: where to write it; by default ``<first movie>.suggest.png`` beside the movie, or in the current
    folder where the movie's folder cannot be written (a read-only acquisition share). ``request`` holds the
    parameters given (or give its fields as keywords).
    """
    from cnmflow.auto_params import estimate_parameters
    from cnmflow.auto_params.estimate import two_photon_somata
    from cnmflow.k_check import k_hint
    from cnmflow.motion.movement import movement_note
    from cnmflow.movies import validate_series
    from cnmflow.movies.checks import checked_pixel_values
    from cnmflow.params import AUTO_FIELDS
    from cnmflow.params_file import resolve_run_params
    from cnmflow.request import request_of
    from cnmflow.suggest_figure import write_suggestion_figure

    started = time.perf_counter()
    figure, figure_note = figure_path(movies, figure)  # before the estimate: a read-only folder fails in ms
    request = request_of(request, preset=preset, table=table, params_file=params_file,
                         overwrite_params=overwrite_params)
    table = {name: "auto" for name in AUTO_FIELDS} | dict(request.table)  # what is not given is suggested
    params = resolve_run_params(preset=request.preset, table=table, params_file=request.params_file,
                                overwrite_params=request.overwrite_params).params
    series = validate_series(list(movies), min_frames=params.minimum_frames(), tsub=params.tsub)
    series, pixel_notes = checked_pixel_values(series)  # as a run's validation: NaN had printed min_pnr nan
    fixed = None if params.gSig == "auto" else float(params.gSig)
    est = estimate_parameters(series, tsub=params.tsub, ssub=params.ssub, gsig=fixed,
                              center_psf=params.center_psf, border_pix=params.border_pix,
                              rings=two_photon_somata(params.method_init))
    seconds = time.perf_counter() - started
    path = write_suggestion_figure(est, figure, title=", ".join(str(m) for m in movies))
    reasons = est.reasons()
    lines = [f"Suggested from {est.sample_text(params.tsub)} in {seconds:.1f} s:"]
    thresholds = params.method_init == "corr_pnr"   # min_corr / min_pnr are corr_pnr's seed thresholds alone
    names = suggested_names(thresholds=thresholds, gsig_given=fixed is not None)
    lines += [f"  {name:<8} {reasons[name]}" for name in names]
    # defective pixels; a gSig set far below the cells' radius read here; an estimate resting on few visible cells;
    # a movie that moves while motion_correction is 'none'; thresholds the initialisation does not read
    moving = movement_note(series, params, gsig=est.gSig)
    unused = None if thresholds else (
        f"min_corr and min_pnr are not suggested: they are the seed thresholds of corr_pnr (1P), and method_init "
        f"{params.method_init} does not read them")
    k_fixed = k_hint(K=params.K, method_init=params.method_init)
    notes = [*pixel_notes, *(note for note in (est.given_gsig_note(), est.few_cells_note(), moving, unused, k_fixed,
                                               figure_note) if note)]
    lines += [f"Note: {note}" for note in notes]
    lines.append(f"Figure: {path}")
    lines.append("Use: --set " + " --set ".join(f"{n}={v:g}" for n, v in est.values().items() if n in names)
                 if names else "Use: the values given (nothing else here is estimated for this initialisation)")
    values = {name: getattr(est, name) for name in names}
    return {"values": values, "reasons": {n: reasons[n] for n in names}, "text": "\n".join(lines),
            "figure": str(path), "seconds": seconds, "notes": notes}


def suggested_names(*, thresholds: bool, gsig_given: bool) -> tuple[str, ...]:
    """The parameters a suggestion gives: the size (unless gSig was given) and the seed thresholds (where the
    initialisation reads them)."""
    size = () if gsig_given else ("gSig", "gSiz")
    return size + (("min_corr", "min_pnr") if thresholds else ())


def figure_path(movies: Sequence[str | Path], figure: str | Path | None) -> tuple[Path, str | None]:
    """Where the figure goes, and a note where that is not where the user would look first; an
    :class:`~cnmflow.errors.InputError` naming the folder where a given path cannot be written."""
    from cnmflow.errors import InputError
    from cnmflow.outputs.location import check_output_location

    if figure is not None:
        figure = Path(figure).expanduser()
        if figure.is_dir():
            raise InputError(f"the figure's path {figure} is a folder; give a file name such as "
                             f"{figure / 'suggest.png'}")
        _check_figure_format(figure)
        check_output_location(figure.parent, label="the figure's folder")
        return figure, None
    if not movies:
        return Path.cwd() / "suggest.png", None  # the movies' check says what is missing
    first = Path(movies[0]).expanduser()
    beside = first.with_name(first.name + ".suggest.png")
    try:
        check_output_location(beside.parent, label="the movie's folder")
        return beside, None
    except InputError as beside_error:
        here = Path.cwd() / beside.name
        try:
            check_output_location(here.parent, label="the current folder")
        except InputError:
            raise InputError(f"{beside_error}; nor can the current folder be written: give the figure's path "
                             "with --output") from None
        return here, (f"the figure is in the current folder: the movie's folder {beside.parent} cannot be written "
                      "(give another path with --output)")


def _check_figure_format(figure: Path) -> None:
    """Refuse a suffix matplotlib cannot write (it would fail after the estimate)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from cnmflow.errors import InputError

    formats = FigureCanvasBase.get_supported_filetypes()
    if figure.suffix.lower().lstrip(".") not in formats:
        raise InputError(f"the figure {figure}: {figure.suffix or 'no suffix'} is not a figure format; end the name "
                         "in .png, .svg or .pdf")
