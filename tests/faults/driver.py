"""Runs one extraction in its own process and kills itself (SIGKILL, no cleanup) where told.

Used by test_fault_injection.py; no production code knows about it.  ``library`` runs
``cnmflow.extract``; ``cli`` runs ``cnmflow run`` (pre-check, then the Prefect flow) in this
process.  Exit status: 0 done, 2 refused (InputError, as the CLI), -9 killed.

    python tests/faults/driver.py library|cli MOVIE OUT [--min-pnr 8] [--overwrite]
        [--kill-at STAGE]          # first progress report of STAGE (validate, concatenate, merge, ...; export:
                                   # while the staged files are written)
        [--kill-after-moves N]     # the N-th file move of the result swap
        [--kill-in-tracking]       # when the MLflow logging starts
        [--hold-at STAGE --hold-file F --release-file R]   # write F at STAGE, wait until R exists
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

TABLE = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "rf": None, "n_processes": 1}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("library", "cli"))
    parser.add_argument("movie")
    parser.add_argument("out")
    parser.add_argument("--min-pnr", type=float, default=8.0)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--kill-at")
    parser.add_argument("--kill-after-moves", type=int)
    parser.add_argument("--kill-in-tracking", action="store_true")
    parser.add_argument("--hold-at")
    parser.add_argument("--hold-file")
    parser.add_argument("--release-file")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    import quick_previews

    quick_previews.install()

    def listener(stage: str, fraction: float) -> None:
        if stage == args.kill_at:
            die()
        if stage == args.hold_at and not Path(args.hold_file).exists():
            Path(args.hold_file).write_text(str(os.getpid()))
            while not Path(args.release_file).exists():
                time.sleep(0.05)

    if args.kill_after_moves:
        real_replace, moves = os.replace, []

        def replace(src, dst, *a, **k):
            into_trash = ".cnmflow-trash-" in str(dst)
            into_place = ".cnmflow-export-" in str(src) and ".cnmflow-export-" not in str(dst)
            if into_trash or into_place:  # a move of the result swap
                moves.append(src)
                if len(moves) == args.kill_after_moves:
                    die()
            return real_replace(src, dst, *a, **k)

        os.replace = replace
    if args.kill_at == "export":  # the library reports no export progress: die while the staged files are written
        import cnmflow.outputs.export as export

        export.write_eventset = lambda *a, **k: die()
    if args.kill_in_tracking:
        import cnmflow.tracking

        cnmflow.tracking.log_output_folder = lambda *a, **k: die()

    if args.mode == "cli":
        from cnmflow.cli import main as cli_main
        from cnmflow.tasks.progress import add_listener

        add_listener(listener)
        table = {**TABLE, "min_pnr": args.min_pnr}
        argv = ["run", args.movie, "--output-dir", args.out, "--no-progress"]
        for name, value in table.items():
            argv += ["--set", f"{name}={'null' if value is None else value}"]
        return cli_main(argv + (["--overwrite"] if args.overwrite else []))

    import cnmflow
    from cnmflow.errors import InputError

    if args.kill_at == "validate":  # the library's validate step: checks, folder lock, hashes
        from cnmflow.plan import plan_run

        plan_run([args.movie], args.out, table={**TABLE, "min_pnr": args.min_pnr}, overwrite=args.overwrite)
        die()
    try:
        result = cnmflow.extract([args.movie], args.out, params={**TABLE, "min_pnr": args.min_pnr},
                                 overwrite=args.overwrite, progress=listener)
    except (InputError, FileExistsError) as err:
        print(f"cnmflow: error: {err}", file=sys.stderr)
        return 2
    print(f"{result.extraction.estimates.K} components")
    return 0


if __name__ == "__main__":
    sys.exit(main())
