"""``cnmflow suggest MOVIE... [--output FIGURE.png]``: the "auto" values of a movie, with reasons and a figure.

The same estimate a run with gSig/min_corr/min_pnr = "auto" makes (:mod:`cnmflow.auto_params`),
on the parameters the options give (tsub, ssub, center_psf, border_pix; a gSig set with ``--set``
is kept and only the thresholds are estimated). ``cnmflow.cli`` registers it with
:func:`add_command` and hands the arguments to :func:`run_command`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnmflow.cli.parameters import add_parameter_options, request_from_args
from cnmflow.suggestion import suggest
from cnmflow.cli.exit_codes import EXIT_OK

COMMAND = "suggest"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``suggest`` to the ``cnmflow`` sub-command parsers."""
    suggest = subparsers.add_parser(
        COMMAND, help="suggest gSig, min_corr and min_pnr from the movie, with reasons and a figure")
    suggest.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    add_parameter_options(suggest)
    suggest.add_argument("--output", type=Path, default=None, metavar="FIGURE",
                         help="figure to write (default: <first movie>.suggest.png next to it, or in the current "
                              "folder where the movie's folder cannot be written)")


def run_command(args: argparse.Namespace) -> int:
    """Run ``suggest`` (errors propagate to the CLI's one-line handler)."""
    result = suggest(args.movies, args.output, request_from_args(args))
    print(result["text"])
    return EXIT_OK
