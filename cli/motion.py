"""``cnmflow motion-correct MOVIE... --output-dir DIR``: motion correction alone, from a terminal.

Runs :func:`cnmflow.motion_run.motion_correct` in this process (no Prefect server to start for a
registration), with the same parameter options as ``run`` (``--set``, ``--params-file``,
``--preset``); motion_correction defaults to rigid here. ``cnmflow.cli`` registers it with
:func:`add_command` and hands the arguments to :func:`run_command`; bad input exits 2 (one
line) before any compute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnmflow.cli.parameters import add_parameter_options, request_from_args
from cnmflow.errors import InputError, ParameterError
from cnmflow.cli.exit_codes import EXIT_OK, EXIT_BAD_INPUT

COMMAND = "motion-correct"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``motion-correct`` to the ``cnmflow`` sub-command parsers (with the shared parameter options)."""
    parser = subparsers.add_parser(
        COMMAND, help="motion-correct a movie or series alone: motion_corrected.{k}.tif/isxd, shifts, previews")
    parser.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    parser.add_argument("--output-dir", type=Path, required=True, help="folder for the results (created if needed)")
    add_parameter_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --output-dir")
    parser.add_argument("--work-dir", type=Path,
                        help="folder for the temporary float32 copies (default: inside --output-dir)")
    parser.add_argument("--dask", metavar="ADDRESS", help="run chunk jobs on this Dask scheduler")
    parser.add_argument("--no-progress", action="store_true", help="do not draw progress bars")


def run_command(args: argparse.Namespace) -> int:
    """Run ``motion-correct``; the exit status (2: bad input, one line)."""
    from cnmflow.motion_run import motion_correct, validate_motion_inputs
    from cnmflow.progress import progress_bar

    try:
        inputs = validate_motion_inputs(args.movies, request_from_args(args))
        with progress_bar(enabled=not args.no_progress) as bar:
            run = motion_correct(args.movies, args.output_dir, overwrite=args.overwrite, work_dir=args.work_dir,
                                 dask_scheduler=args.dask, progress=bar, inputs=inputs)
    except (InputError, FileExistsError) as err:
        text = " ".join(str(err).split()) if isinstance(err, ParameterError) else str(err)
        print(f"cnmflow: error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = run.outcome.result
    print(f"{result.method}: largest shift {result.max_shift():.2f} px, crop box {result.crop.max} px; "
          f"{run.timings.get('motion_correction', 0.0):.1f} s for {result.shifts_rig.shape[0]} frames")
    for name in sorted(run.files):
        print(run.output_dir / name)
    for note in run.notes:
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK
