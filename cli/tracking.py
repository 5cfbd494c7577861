"""``cnmflow track`` and ``cnmflow compare``: the command-line side of tracking.

``cnmflow.cli`` registers them with :func:`add_commands` and hands the parsed arguments to
:func:`run_command`.  Importing this module does not import MLflow; running a command does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnmflow.errors import InputError
from cnmflow.lineage import read_manifest
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT, tracking_uri
from cnmflow.cli.exit_codes import EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT

COMMANDS = ("track", "compare")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``track`` and ``compare`` to the ``cnmflow`` sub-command parsers."""
    track = subparsers.add_parser(
        "track", help="log a finished output folder to MLflow (params, metrics, inputs, previews)")
    track.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR")
    track.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                       help=f"MLflow experiment name (default: {DEFAULT_EXPERIMENT})")
    track.add_argument("--tracking-uri", default=None,
                       help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                            "sqlite:///<OUTPUT_DIR's parent>/mlflow.db)")

    compare = subparsers.add_parser(
        "compare", help="compare tracked runs: the children of a sweep run, or every run of an experiment")
    compare.add_argument("target", metavar="RUN_ID|EXPERIMENT")
    compare.add_argument("--tracking-uri", default=None,
                         help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                              "sqlite:///<current folder>/mlflow.db)")


def run_command(args: argparse.Namespace) -> int:
    """Run ``track`` or ``compare``; the exit status (1: tracking failed, 2: bad input)."""
    from cnmflow.tracking.errors import TrackingError

    try:
        if args.command == "track":
            return _track(args)
        if args.command == "compare":
            return _compare(args)
    except InputError as err:
        print(f"cnmflow: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrackingError as err:
        print(f"cnmflow: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    raise ValueError(f"not a tracking command: {args.command!r} (known: {', '.join(COMMANDS)})")


def _track(args: argparse.Namespace) -> int:
    from cnmflow.tracking.log_run import log_output_folder

    uri = args.tracking_uri or tracking_uri(args.output_dir.absolute().parent)
    run_id = log_output_folder(args.output_dir, experiment=args.experiment, tracking_uri=uri)
    runs_url = read_manifest(args.output_dir)["run_ids"].get("mlflow_runs_url")
    print(f"MLflow run {run_id} (experiment {args.experiment!r}) at {uri}")
    print(_how_to_open(uri))
    if runs_url:
        print(f"Runs page:     {runs_url}")
    print(f"Compare runs:  cnmflow compare {args.experiment!r} --tracking-uri {uri!r}")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from cnmflow.tracking.compare import comparison_rows, format_table

    uri = args.tracking_uri or tracking_uri(Path.cwd())
    print(format_table(comparison_rows(args.target, tracking_uri=uri)), end="")
    return EXIT_OK


def _how_to_open(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"Open the UI:   {uri}"
    return f"Open the UI:   mlflow ui --backend-store-uri '{uri}' --workers 1  (then the runs page below)"
