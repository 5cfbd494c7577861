"""``cnmflow suggest MOVIE... [--output FIGURE.png]``: the "auto" values of a movie, with reasons and a figure.

The same estimate a run with gSig/min_corr/min_pnr = "auto" makes (:mod:`cnmflow.auto_params`),
on the parameters the options give (tsub, ssub, center_psf, border_pix; a gSig set with ``--set``
is kept and only the thresholds are estimated). ``cnmflow/cli.py`` registers it with
:func:`add_command` and hands the arguments to :func:`run_command`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

COMMAND = "suggest"
EXIT_OK = 0


def add_command(subparsers: argparse._SubParsersAction,
                add_parameter_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``suggest`` to the ``cnmflow`` sub-command parsers."""
    suggest = subparsers.add_parser(
        COMMAND, help="suggest gSig, min_corr and min_pnr from the movie, with reasons and a figure")
    suggest.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    add_parameter_options(suggest)
    suggest.add_argument("--output", type=Path, default=None, metavar="FIGURE",
                         help="figure to write (default: <first movie>.suggest.png next to it)")


def run_command(args: argparse.Namespace) -> int:
    """Run ``suggest`` (errors propagate to the CLI's one-line handler)."""
    output = args.output or args.movies[0].with_name(args.movies[0].name + ".suggest.png")
    result = suggest(args.movies, output, preset=args.preset, table=dict(args.assignments),
                     params_file=args.params_file, overwrite_params=args.overwrite_params)
    print(result["text"])
    return EXIT_OK


def suggest(movies: Sequence[str | Path], figure: str | Path, *, preset: str = "1p",
            table: dict[str, Any] | None = None, params_file: str | Path | None = None,
            overwrite_params: bool = False) -> dict[str, Any]:
    """Suggested values (``values``), one line each (``text``), the figure written (``figure``), seconds."""
    from cnmflow.auto_params import estimate_parameters
    from cnmflow.movies import validate_series
    from cnmflow.params import AUTO_FIELDS
    from cnmflow.params_file import resolve_run_params
    from cnmflow.suggest_figure import write_suggestion_figure

    started = time.perf_counter()
    table = {name: "auto" for name in AUTO_FIELDS} | dict(table or {})  # what is not given is suggested
    params = resolve_run_params(preset=preset, table=table, params_file=params_file,
                                overwrite_params=overwrite_params).params
    series = validate_series(list(movies), min_frames=params.minimum_frames())
    fixed = None if params.gSig == "auto" else float(params.gSig)
    est = estimate_parameters(series, tsub=params.tsub, ssub=params.ssub, gsig=fixed,
                              center_psf=params.center_psf, border_pix=params.border_pix)
    seconds = time.perf_counter() - started
    path = write_suggestion_figure(est, figure, title=", ".join(str(m) for m in movies))
    reasons = est.reasons()
    lines = [f"Suggested from {est.n_frames_used} frames (after tsub={params.tsub}) in {seconds:.1f} s:"]
    names = ("gSig", "gSiz", "min_corr", "min_pnr") if fixed is None else ("min_corr", "min_pnr")
    lines += [f"  {name:<8} {reasons[name]}" for name in names]
    lines.append(f"Figure: {path}")
    lines.append("Use: --set " + " --set ".join(f"{n}={v:g}" for n, v in est.values().items() if n in names))
    values = {name: getattr(est, name) for name in names}
    return {"values": values, "reasons": {n: reasons[n] for n in names}, "text": "\n".join(lines),
            "figure": str(path), "seconds": seconds}
