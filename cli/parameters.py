"""The parameter options every command shares (``--preset``, ``--set``, ``--params-file``,
``--overwrite-params``) and the one :class:`~cnmflow.request.RunRequest` they make."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnmflow.request import RunRequest


def parse_assignment(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from ``--set``: JSON values (numbers, true/false, null) or 'auto' / plain strings; 'none' is
    None except where the parameter has a value of that name (``motion_correction=none``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--set expects NAME=VALUE, got {text!r} (e.g. --set min_pnr=8)")
    lowered = raw.strip().lower()
    if lowered in ("auto", "none", "null", ""):   # gSig's "auto" (estimated from the movie), motion_correction's "none"
        from cnmflow.params import literal_words   # only here: the table's import costs ~0.4 s

        return name.strip(), (lowered if lowered in literal_words(name.strip()) else None)
    if lowered in ("true", "false"):
        return name.strip(), lowered == "true"
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        from cnmflow.sweep_grid import typed_number

        number = typed_number(raw)
        return name.strip(), raw.strip() if number is None else number


def add_parameter_options(parser: argparse.ArgumentParser) -> None:
    """``--params-file``, ``--overwrite-params``, ``--preset`` and ``--set``: what a :class:`RunRequest` holds."""
    parser.add_argument("--params-file", type=Path, help="CaImAn-style JSON parameters file")
    parser.add_argument("--overwrite-params", action="store_true",
                        help="apply the parameters file over the table values (without it the file is not applied)")
    parser.add_argument("--preset", choices=("1p", "2p"), default="1p",
                        help="the seed's 1P (default) or 2P parameter preset")
    parser.add_argument("--set", dest="assignments", metavar="NAME=VALUE", action="append", default=[],
                        type=parse_assignment, help="set one parameter, e.g. --set min_pnr=8 (repeatable)")


def request_from_args(args: argparse.Namespace) -> RunRequest:
    """The parameters a command's ``--preset`` / ``--set`` / ``--params-file`` / ``--overwrite-params`` ask for."""
    from cnmflow.request import RunRequest  # with the engine's checks: not for `cnmflow --help`

    return RunRequest(preset=args.preset, table=dict(args.assignments), params_file=args.params_file,
                      overwrite_params=args.overwrite_params)
