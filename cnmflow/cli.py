"""The ``cnmflow`` command line: validate inputs, run an extraction, run the demo.

Prefect and MLflow are imported lazily by the commands that need them, so ``cnmflow validate``
answers in about a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from cnmflow import __version__
from cnmflow.errors import InputError

EXIT_BAD_INPUT = 2


def parse_assignment(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` from ``--set``: JSON values (numbers, true/false, null) or 'auto' / plain strings."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--set expects NAME=VALUE, got {text!r} (e.g. --set min_pnr=8)")
    lowered = raw.strip().lower()
    if lowered in ("auto", "none", "null", ""):
        return name.strip(), None
    if lowered in ("true", "false"):
        return name.strip(), lowered == "true"
    try:
        return name.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return name.strip(), raw.strip()


def _add_parameter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params-file", type=Path, help="CaImAn-style JSON parameters file")
    parser.add_argument("--overwrite-params", action="store_true",
                        help="apply the parameters file over the table values (without it the file is not applied)")
    parser.add_argument("--preset", choices=("1p", "2p"), default="1p",
                        help="the seed's 1P (default) or 2P parameter preset")
    parser.add_argument("--set", dest="assignments", metavar="NAME=VALUE", action="append", default=[],
                        type=parse_assignment, help="set one parameter, e.g. --set min_pnr=8 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnmflow", description="Calcium-imaging source extraction (CNMF-E) with CaImAn's parameter names.")
    parser.add_argument("--version", action="version", version=f"cnmflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", help="check movies and parameters; print the effective parameters and the movie summary")
    validate.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    _add_parameter_options(validate)

    run = commands.add_parser("run", help="extract neurons from a movie or a movie series")
    run.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    run.add_argument("--output-dir", type=Path, required=True, help="folder for the results (created if needed)")
    _add_parameter_options(run)
    run.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --output-dir")
    run.add_argument("--evaluate", action="store_true",
                     help="evaluate components (trace SNR, spatial consistency) and mark cells accepted/rejected")
    run.add_argument("--no-progress", action="store_true", help="do not draw progress bars")

    lineage = commands.add_parser("lineage", help="print where an output file came from (inputs, parameters, code)")
    lineage.add_argument("path", type=Path, metavar="OUTPUT_FILE")

    demo = commands.add_parser("demo", help="simulate a 1P movie with known neurons and run it end to end")
    demo.add_argument("--output-dir", type=Path, default=Path("demo-output"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args)
        if args.command == "run":
            return _run(args)
        if args.command == "lineage":
            return _lineage(args)
        return _demo(args)
    except (InputError, FileExistsError) as err:
        print(f"cnmflow: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _validate(args: argparse.Namespace) -> int:
    from cnmflow.validate import describe_inputs, validate_inputs

    inputs = validate_inputs(args.movies, preset=args.preset, table=dict(args.assignments),
                             params_file=args.params_file, overwrite_params=args.overwrite_params)
    print(describe_inputs(inputs))
    return 0


def _run(args: argparse.Namespace) -> int:
    from cnmflow.api import extract
    from cnmflow.progress import progress_bar

    with progress_bar(enabled=not args.no_progress) as progress:
        result = extract(args.movies, args.output_dir, preset=args.preset, params=dict(args.assignments),
                         params_file=args.params_file, overwrite_params=args.overwrite_params,
                         overwrite=args.overwrite, evaluate=args.evaluate, progress=progress)
    _print_result(result)
    return 0


def _print_result(result) -> None:
    estimates = result.extraction.estimates
    for note in result.extraction.inputs.resolved.notes + result.outputs.notes:
        print(f"note: {note}")
    print(f"{estimates.K} components from {estimates.n_frames} frames "
          f"in {result.extraction.timings.get('fit', 0.0):.1f} s")
    print(f"Results are in {result.output_dir}:")
    for name in sorted(result.outputs.files):
        print(f"  {name}")


def _lineage(args: argparse.Namespace) -> int:
    from cnmflow.lineage import lineage_of

    print(lineage_of(args.path))
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Simulate a 1P movie with known neurons, run the whole job on it and score the result."""
    from cnmflow.api import extract
    from cnmflow.progress import progress_bar
    from cnmflow.scoring import score
    from cnmflow.synthetic import simulate_1p, write_tiff
    from cnmflow.validate import describe_inputs, validate_inputs

    output_dir = args.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    simulated = simulate_1p(shape=(128, 128), n_frames=1000, n_neurons=25, gsig=3.0, fr=10.0, rng=0)
    movie_path = output_dir / "demo_movie.tif"
    if not movie_path.exists():
        write_tiff(movie_path, simulated.movie, fr=simulated.truth.fr)
    print(f"Simulated a 1P movie with {simulated.truth.footprints.shape[0]} known neurons: {movie_path}")
    table = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "min_pnr": 6}
    print(describe_inputs(validate_inputs([movie_path], table=table)))
    with progress_bar() as progress:
        result = extract([movie_path], output_dir / "results", overwrite=True, progress=progress, params=table)
    estimates = result.extraction.estimates
    accuracy = score(simulated.truth.footprints, estimates.footprints(), truth_traces=simulated.truth.calcium,
                     estimated_traces=estimates.C)
    _print_result(result)
    print(f"Against the simulation's ground truth: precision {accuracy.precision:.2f}, recall {accuracy.recall:.2f}, "
          f"F1 {accuracy.f1:.2f}, median trace correlation {accuracy.median_trace_corr:.2f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
