"""``cnmflow nwb OUTPUT_DIR [--metadata FILE]``: NWB files for a folder a finished run left.

Like ``cnmflow track``, it needs only the folder: the files are rebuilt from
``caiman_output.hdf5``, the cell sets and ``manifest.json`` (`nwb_run_from_folder`), written
with the folder's lock held into a hidden staging folder together with the manifest that
lists them (kind ``nwb``, one per movie), and swapped in as the export swaps a result set, so
``cnmflow lineage ophys.000.nwb`` works.
``cnmflow.cli`` registers it with :func:`add_command` and hands the arguments to
:func:`run_command`. Importing this module does not import pynwb.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cnmflow.errors import InputError
from cnmflow.outputs.nwb_folder import write_nwb_for_folder
from cnmflow.outputs.names import MANIFEST_NAME
from cnmflow.cli.exit_codes import EXIT_OK, EXIT_BAD_INPUT

COMMAND = "nwb"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nwb`` to the ``cnmflow`` sub-command parsers."""
    nwb = subparsers.add_parser(
        COMMAND, help="write ophys.{k}.nwb (Neurodata Without Borders) for a finished output folder")
    nwb.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR")
    nwb.add_argument("--metadata", type=Path, default=None, metavar="FILE",
                     help="YAML or JSON with subject, session, device and imaging_plane facts "
                          "(placeholders otherwise)")
    nwb.add_argument("--overwrite", action="store_true", help="replace NWB files written earlier")


def run_command(args: argparse.Namespace) -> int:
    """Run ``nwb``; the exit status (2: bad input, printed as one line)."""
    try:
        started = time.perf_counter()
        paths, placeholders = write_nwb_for_folder(args.output_dir, metadata=args.metadata,
                                                   overwrite=args.overwrite)
    except (InputError, FileExistsError) as err:
        print(f"cnmflow: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in paths:
        print(path)
    print(f"{len(paths)} NWB file(s) in {time.perf_counter() - started:.1f} s; listed in "
          f"{Path(args.output_dir) / MANIFEST_NAME}")
    if placeholders:
        print(f"placeholders to fill with --metadata FILE: {', '.join(placeholders)}", file=sys.stderr)
    return EXIT_OK
