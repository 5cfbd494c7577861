"""The ``cnmflow`` command line: validate inputs, run the extraction flow, serve deployments, demo.

Prefect and MLflow are imported lazily by the commands that need them, so ``cnmflow validate``
answers in about a second.  ``run`` checks everything before it starts a flow run: bad input
exits with status 2 and one message; a failure during the run exits with 1 naming the stage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from cnmflow.version import __version__
from cnmflow.errors import InputError, ParameterError
from cnmflow.processes import EXIT_STATUS, sigterm_as_interrupt
from cnmflow.cli.parameters import add_parameter_options, request_from_args
from cnmflow.cli.nwb import COMMAND as NWB_COMMAND, add_command as add_nwb_command
from cnmflow.cli.motion import COMMAND as MOTION_COMMAND, add_command as add_motion_command
from cnmflow.cli.suggest import COMMAND as SUGGEST_COMMAND, add_command as add_suggest_command
from cnmflow.cli.tracking import COMMANDS as TRACKING_COMMANDS, add_commands as add_tracking_commands
from cnmflow.outputs.names import HDF5_NAME
from cnmflow.prefect_server import KEPT_PORT
from cnmflow.cli.exit_codes import EXIT_FAILED, EXIT_BAD_INPUT

if TYPE_CHECKING:
    from cnmflow.prefect_server import KeptServer, StartedServer
    from cnmflow.request import RunRequest


def _add_nwb_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-nwb", dest="nwb", action="store_false",
                        help="do not write ophys.{k}.nwb (Neurodata Without Borders; written by default)")
    parser.add_argument("--nwb-metadata", type=Path, metavar="FILE",
                        help="YAML or JSON with the subject, session, device and imaging_plane facts of the NWB "
                             "files (placeholders otherwise)")


def _add_dask_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dask", metavar="ADDRESS", help="run patch jobs on this Dask scheduler (e.g. tcp://host:8786; "
                                                          "its workers must reach the movies and --work-dir)")


def _add_tracking_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", default="source-extraction", help="MLflow experiment (default: source-extraction)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                               "sqlite:///<parent of --output-dir>/mlflow.db)")
    parser.add_argument("--no-track", action="store_true", help="do not log the run to MLflow")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnmflow", description="Calcium-imaging source extraction (CNMF-E) with CaImAn's parameter names.")
    parser.add_argument("--version", action="version", version=f"cnmflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", help="check movies and parameters; print the effective parameters and the movie summary")
    validate.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    add_parameter_options(validate)

    run = commands.add_parser("run", help="extract neurons from a movie or a movie series")
    run.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    run.add_argument("--output-dir", type=Path, required=True, help="folder for the results (created if needed)")
    add_parameter_options(run)
    run.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --output-dir")
    run.add_argument("--evaluate", action="store_true",
                     help="evaluate components (trace SNR, spatial consistency) and mark cells accepted/rejected")
    run.add_argument("--work-dir", type=Path,
                     help="folder for the temporary work copy of a series or compressed movie and the motion-corrected "
                          "copy (default: inside --output-dir; one uncompressed movie is read in place)")
    run.add_argument("--save-motion-corrected", action="store_true",
                     help="with motion_correction on, also write motion_corrected.{k}.tif/.isxd per movie")
    run.add_argument("--no-progress", action="store_true", help="do not draw progress bars")
    run.add_argument("--verbose", action="store_true", help="show Prefect's log lines")
    _add_nwb_options(run)
    _add_tracking_options(run)
    _add_dask_option(run)

    lineage = commands.add_parser("lineage", help="print where an output file came from (inputs, parameters, code)")
    lineage.add_argument("path", type=Path, metavar="OUTPUT_FILE")

    sweep = commands.add_parser(
        "sweep", help="run every combination of a parameter grid on a movie and compare them (MLflow + table)")
    sweep.add_argument("movies", nargs="+", type=Path, metavar="MOVIE")
    sweep.add_argument("--output-dir", type=Path, required=True, help="sweep folder (one sub-folder per combination)")
    sweep.add_argument("--grid", dest="grid", metavar="NAME=V1,V2", action="append", required=True,
                       help="values to try for one parameter, e.g. --grid min_pnr=6,8,10 (repeatable)")
    add_parameter_options(sweep)
    sweep.add_argument("--max-concurrent", type=int, default=2, help="combinations running at once (default 2)")
    sweep.add_argument("--overwrite", action="store_true", help="replace earlier outputs in the sub-folders")
    sweep.add_argument("--evaluate", action="store_true", help="mark components accepted/rejected")
    sweep.add_argument("--verbose", action="store_true", help="show Prefect's log lines")
    sweep.add_argument("--experiment", default="source-extraction", help="MLflow experiment (default: source-extraction)")
    sweep.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                              "sqlite:///<--output-dir>/mlflow.db)")
    _add_nwb_options(sweep)
    _add_dask_option(sweep)

    serve = commands.add_parser(
        "serve", help="serve the deployments (source-extraction, source-extraction-2p, watch-folder) to the "
                      "Prefect server in PREFECT_API_URL")
    serve.add_argument("--watch", type=Path, metavar="FOLDER", help="also serve watch-folder on this folder")
    serve.add_argument("--output-root", type=Path, help="where watch-folder writes results (required with --watch)")
    serve.add_argument("--interval", type=float, default=60.0, help="seconds between scans of --watch (default 60)")
    serve.add_argument("--pattern", help="file patterns watch-folder picks up (default: every supported movie)")
    serve.add_argument("--preset", choices=("1p", "2p"), default="1p", help="preset of the watched recordings")
    _add_dask_option(serve)

    add_tracking_commands(commands)
    add_nwb_command(commands)
    add_motion_command(commands)
    add_suggest_command(commands)

    server = commands.add_parser(
        "server", help="keep a Prefect server (with its UI) running for later runs and sweeps, or stop it")
    server.add_argument("action", choices=("start", "stop", "status"))
    server.add_argument("--port", type=int, default=KEPT_PORT, help=f"port of the server started (default {KEPT_PORT})")

    demo = commands.add_parser("demo", help="simulate a 1P movie with known neurons and run it end to end")
    demo.add_argument("--output-dir", type=Path, default=Path("demo-output"))
    return parser


def main(argv: Sequence[str] | None = None, *, early_server: StartedServer | None = None) -> int:
    """The ``cnmflow`` command; ``argv`` None (the console script) means this process is the command and
    ends with it: its imported modules are then set aside from the garbage collector (see ``_settle``).
    ``early_server``: a ``run``'s temporary server, started already (:func:`cnmflow.cli.main`)."""
    args = build_parser().parse_args(argv)
    args.settle = argv is None
    args.early_server = early_server
    try:
        return _command(args)
    finally:
        _settle(args.settle)


def _settle(enabled: bool) -> None:
    """In the command's own process, move every object alive now out of the garbage collector's reach,
    and let the collector run again if :func:`_pause_collector` had stopped it.

    Prefect, pydantic, FastAPI and the writers bring ~300 000 long-lived objects (modules, classes,
    schemas); each full collection walks them all, and the interpreter's last collection at exit took
    1.5-8 s (2-core machine). Frozen, they are kept until the process ends (``gc.freeze``), as they would be
    anyway. Not in a caller's process (tests call ``main(argv)``), whose objects must stay collectable."""
    if enabled:
        import gc

        gc.freeze()
        gc.enable()


def _pause_collector(enabled: bool) -> None:
    """In the command's own process, no garbage collection while it imports and checks (until ``_settle``):
    the collections an import of Prefect, the writers and the engine triggers walk the objects it has just
    made, all of them kept for good (~20 % of the import time, ~0.5 s of CPU)."""
    if enabled:
        import gc

        gc.disable()


def _command(args: argparse.Namespace) -> int:
    try:
        # `serve` keeps Prefect's own SIGTERM handling; every other command unwinds like Ctrl-C.
        with nullcontext() if args.command == "serve" else sigterm_as_interrupt():
            if args.command == "validate":
                return _validate(args)
            if args.command == "run":
                return _run(args)
            if args.command == "lineage":
                return _lineage(args)
            if args.command == "serve":
                return _serve(args)
            if args.command == "sweep":
                return _sweep(args)
            if args.command == "server":
                return _server(args)
            if args.command in TRACKING_COMMANDS:
                from cnmflow.cli.tracking import run_command

                return run_command(args)
            if args.command == MOTION_COMMAND:
                from cnmflow.cli.motion import run_command as run_motion_command

                return run_motion_command(args)
            if args.command == SUGGEST_COMMAND:
                from cnmflow.cli.suggest import run_command as run_suggest_command

                return run_suggest_command(args)
            if args.command == NWB_COMMAND:
                from cnmflow.cli.nwb import run_command as run_nwb_command

                return run_nwb_command(args)
            return _demo(args)
    except (InputError, FileExistsError) as err:
        print(f"cnmflow: error: {_one_line(err) if isinstance(err, ParameterError) else err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunFailed as err:
        print(f"cnmflow: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (Interrupted); the finally blocks have run
        return _interrupted(err)


def _one_line(err: Exception) -> str:
    """A parameter error is one line (a value's repr or a library message may carry newlines)."""
    return " ".join(str(err).split())


def _interrupted(err: KeyboardInterrupt) -> int:
    """One line for an interrupted command; the shell's status for the signal (130 / 143)."""
    signum = getattr(err, "signum", signal.SIGINT)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    log_path = getattr(err, "log_path", None)
    where = f"; log: {log_path}" if log_path else ""
    print(f"cnmflow: interrupted ({name}): stopped, temporary files removed{where}", file=sys.stderr)
    return EXIT_STATUS.get(signum, 128 + signum)


def _validate(args: argparse.Namespace) -> int:
    from cnmflow.validate import describe_inputs, validate_inputs

    with checks_shown(True):
        inputs = validate_inputs(args.movies, request_from_args(args))
    print(describe_inputs(inputs))
    return 0


#: Seconds a check runs before its progress is shown: a small movie's checks show nothing.
CHECKS_SHOWN_AFTER_S = 2.0


@contextmanager
def checks_shown(enabled: bool) -> Iterator[None]:
    """Progress bars for the checks before a run where they take long (an AVI's frames counted, the motion check's
    blocks decoded): a long recording's checks took minutes without a word."""
    from cnmflow.progress import after_seconds, progress_bar, reporting_to

    with progress_bar(enabled=enabled) as bar, reporting_to(after_seconds(bar, CHECKS_SHOWN_AFTER_S)):
        yield


def _run(args: argparse.Namespace) -> int:
    """Check the inputs here (exit 2), then run the ``source-extraction`` flow once."""
    from cnmflow.prefect_server import StartedServer, settled_server, start_server_early

    # The temporary server starts first: it gets ready while the parameters, the movies and the flow's
    # modules load and are checked; a kept server (`cnmflow server start`) is used as it is instead.
    _pause_collector(args.settle)  # until the flow begins (_run_flow's _settle)
    server_output = sys.stderr if args.verbose else None
    server = args.early_server if args.early_server is not None else start_server_early(output=server_output)
    try:
        request = request_from_args(args)
        if args.work_dir is not None:
            from cnmflow.outputs.location import check_output_location

            check_output_location(args.work_dir, label="--work-dir")
        form = request.form()  # what the flow receives; a bad value or a preset mismatch stops here
        server = settled_server(server, output=server_output)
        folder, inputs = _check_before_run(args.movies, args.output_dir, request, overwrite=args.overwrite,
                                           evaluate=args.evaluate, nwb=args.nwb, nwb_metadata=args.nwb_metadata,
                                           show_progress=not args.no_progress)
        checked_at = time.time()
        shown = _print_notes([inputs.size_note] if inputs.size_note else [])  # before the compute and its bar
        with folder:  # held from the checks to the end of the flow, which nests its own hold inside
            report = _run_flow(args.movies, args.output_dir, request, form, overwrite=args.overwrite,
                               evaluate=args.evaluate, work_dir=args.work_dir, show_progress=not args.no_progress,
                               verbose=args.verbose, checked_at=checked_at, server=server, settle=args.settle,
                               flow_options=dict(experiment=args.experiment, tracking_uri=args.tracking_uri,
                                                 track_run=not args.no_track, dask_address=args.dask,
                                                 save_motion_corrected=args.save_motion_corrected,
                                                 **_nwb_flow_options(args)))
    finally:
        if isinstance(server, StartedServer):
            server.close()
    _print_report(report, shown=shown)
    return 0


def _server(args: argparse.Namespace) -> int:
    """``cnmflow server start|stop|status``: the Prefect server later runs use instead of a temporary one."""
    from cnmflow.prefect_server import (KEPT_SERVER_LOG, kept_server, server_folder, start_kept_server,
                                        stop_kept_server)

    folder = server_folder()
    if args.action == "start":
        server = start_kept_server(folder, port=args.port)
        print(f"Prefect server running (pid {server.pid}); runs and sweeps use it until `cnmflow server stop`. "
              f"UI: {server.ui_url}  log: {folder / KEPT_SERVER_LOG}")
    elif args.action == "stop":
        stopped = stop_kept_server(folder)
        print(f"stopped the Prefect server (pid {stopped.pid})" if stopped else "no kept Prefect server")
    else:
        server = kept_server(folder)
        print(f"Prefect server running (pid {server.pid}), UI: {server.ui_url}" if server
              else "no kept Prefect server: each run starts a temporary one")
    return 0


def _nwb_flow_options(args: argparse.Namespace) -> dict[str, Any]:
    """The flows' ``nwb`` / ``nwb_metadata`` parameters from ``--no-nwb`` / ``--nwb-metadata``."""
    metadata = args.nwb_metadata
    return {"nwb": args.nwb, "nwb_metadata": None if metadata is None else str(metadata.absolute())}


def _check_before_run(movies, output_dir: Path, request: RunRequest, *, overwrite: bool, evaluate: bool,
                      nwb: bool = True, nwb_metadata: Path | None = None, show_progress: bool = True):
    """Every check the flow's validate step makes, without hashing the movies unless outputs exist.

    Returns the hold on the output folder (one writer per folder), to keep until the flow is done, and the
    validated inputs (their size note is printed before the run starts).
    """
    from cnmflow.outputs.export import check_output_dir, planned_names
    from cnmflow.outputs.folder import open_output_dir
    from cnmflow.plan import check_nwb_options, plan_checked
    from cnmflow.validate import validate_inputs

    with checks_shown(show_progress):
        inputs = validate_inputs(movies, request)
    n_movies = len(inputs.series.movies)
    facts = check_nwb_options(nwb, nwb_metadata, n_movies=n_movies)
    folder = open_output_dir(output_dir)
    try:
        if overwrite or not any((Path(output_dir) / name).exists() for name in planned_names(n_movies)):
            check_output_dir(output_dir, n_movies, overwrite=overwrite)
        else:
            plan_checked(inputs, output_dir, overwrite=overwrite, evaluate=evaluate, nwb=nwb,
                         nwb_facts=facts).release()
    except BaseException:
        folder.release()
        raise
    return folder, inputs


class RunFailed(Exception):
    """The flow run failed after its inputs were accepted; names the stage that failed."""


def _run_flow(movies, output_dir: Path, request: RunRequest, form, *, overwrite: bool, evaluate: bool, work_dir,
              show_progress: bool, verbose: bool, flow_options: dict | None = None, checked_at: float | None = None,
              server: StartedServer | KeptServer | None = None, settle: bool = False):
    """Run the flow with ``request`` (``form``: its analysis table as the flow's form) on a temporary
    Prefect server that dies with this process (unless one is configured), with everything logged to a
    file in the output folder; a failure becomes one :class:`RunFailed` line naming the stage and that file.

    ``server``: the temporary server the command started already (else one is started here); ``settle``:
    this process is the command (see ``_settle``). The log
    also gets the command's milestones (``checked_at``: when the inputs were checked) and the server's
    messages."""
    from cnmflow.prefect_server import StartedServer, temporary_server
    from cnmflow.progress import progress_bar
    from cnmflow.run_log import run_log
    from cnmflow.flows.source_extraction import source_extraction
    from cnmflow.tasks.progress import add_listener, remove_listener


    stages: list[str] = []

    with run_log(output_dir, verbose=verbose) as log, progress_bar(enabled=show_progress) as bar:
        def listen(stage: str, fraction: float) -> None:
            if not stages or stages[-1] != stage:
                stages.append(stage)
            bar(stage, fraction)

        add_listener(listen)
        if checked_at is not None:
            log.note("inputs checked", at=checked_at)
        log.note("run log opened")
        try:
            with temporary_server(output=None if verbose else log.stream, started=server, meanwhile=_flow_imports()):
                log.note("Prefect server ready")
                _settle(settle)  # the flow's modules are loaded (some while waiting): collections skip them
                report = source_extraction(
                    movies=[str(Path(m).absolute()) for m in movies], output_dir=str(Path(output_dir).absolute()),
                    params_file=None if request.params_file is None else str(Path(request.params_file).absolute()),
                    overwrite_params=request.overwrite_params, preset=request.preset, params=form,
                    overwrite=overwrite, evaluate=evaluate,
                    work_dir=None if work_dir is None else str(Path(work_dir).absolute()), **(flow_options or {}))
                log.note(f"flow returned; stage seconds: {json.dumps(getattr(report, 'timings_s', {}))}")
            log.note("Prefect server stopped")
            return report
        except (InputError, FileExistsError) as err:
            log.exception("the run refused its input", err)
            raise
        except KeyboardInterrupt as err:
            log.exception("the run was interrupted", err)
            err.log_path = log.path  # type: ignore[attr-defined]  - named by main's one line
            raise
        except Exception as err:  # noqa: BLE001 - reported with the stage, exit status 1
            stage = stages[-1] if stages else "start"
            log.exception(f"the run failed during '{stage}'", err)
            raise RunFailed(f"the run failed during '{stage}': {type(err).__name__}: {_first_line(err)} "
                            f"(full log: {log.path})") from err
        finally:
            remove_listener(listen)
            server_text = server.output_text() if isinstance(server, StartedServer) else ""
            if server_text.strip():
                log.note(f"Prefect server output:\n{server_text.rstrip()}")


#: Modules the flow imports only when it gets to them (its writers, Prefect's run engines); loaded while
#: the temporary server is not ready yet, that wait then costs nothing. Absent ones are skipped.
FLOW_IMPORTS = ("cnmflow.engine.fitting", "prefect.flow_engine", "prefect.task_engine",
                "fastapi.encoders",  # Prefect's serialisation of the flow's parameters
                "cnmflow.outputs.nwb", "pynwb", "matplotlib.backends.backend_svg")


def _flow_imports() -> Iterator[Callable[[], object]]:
    """One step per module of :data:`FLOW_IMPORTS`, for :func:`~cnmflow.prefect_server.temporary_server`."""
    for name in FLOW_IMPORTS:
        yield partial(_import_if_present, name)


def _import_if_present(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        pass


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines() or [""]
    return lines[0] + (" …" if len(lines) > 1 else "")


def _print_notes(notes: Sequence[str]) -> tuple[str, ...]:
    """``note: …`` lines the user should read before the compute (a gSig far below the cells' size), flushed: a
    progress bar follows. Returns them, so the summary at the end does not repeat them."""
    for note in notes:
        print(f"note: {note}", flush=True)
    return tuple(notes)


def _print_report(report, *, shown: Sequence[str] = ()) -> None:
    """The run's summary; notes already printed before the run (``shown``) are not printed again."""
    from cnmflow.report import components_line

    for note in report.notes:
        if note not in shown:
            print(f"note: {note}")
    how = (" (already up to date: nothing recomputed)" if report.up_to_date
           else " (components reused from an identical earlier run)" if report.reused_extraction else "")
    print(f"{components_line(report)}{how}")
    run_id = report.run_ids.get("prefect_flow_run_id")
    if run_id:
        print(f"Prefect flow run: {run_id}")
    print(f"Results are in {report.output_dir}:")
    for name in report.files:
        print(f"  {name}")
    if report.mlflow_run_id:
        uri = report.run_ids.get("mlflow_tracking_uri") or ""
        print(f"MLflow run {report.mlflow_run_id} in experiment {report.run_ids.get('mlflow_experiment')!r} at {uri}")
        if uri.startswith("sqlite:///"):
            print(f"  open it with: mlflow ui --backend-store-uri '{uri}' --workers 1   (then http://127.0.0.1:5000)")
        if report.run_ids.get("mlflow_runs_url"):
            print(f"  runs page: {report.run_ids['mlflow_runs_url']}")
    elif report.tracking_error:
        print(f"warning: {report.tracking_error}", file=sys.stderr)


def _sweep(args: argparse.Namespace) -> int:
    """Check the movies and every combination here (exit 2), then run the ``parameter-sweep`` flow.

    A combination that fails while running makes the sweep exit 1 naming it and why, after the
    table of the combinations that finished.
    """
    import os

    from cnmflow.sweep_grid import SweepFailed, check_sweep

    grid = _grid(args.grid)
    request = request_from_args(args)
    form = request.form()  # the base form every combination starts from
    combos = check_sweep(args.movies, grid, request)
    from cnmflow.plan import check_nwb_options

    check_nwb_options(args.nwb, args.nwb_metadata, n_movies=len(args.movies))
    if args.max_concurrent < 1:
        raise InputError(f"--max-concurrent {args.max_concurrent}: give 1 or more")
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from cnmflow.flows.parameter_sweep import parameter_sweep

    print(f"Sweeping {len(combos)} combinations of {', '.join(grid)} ({args.max_concurrent} at a time)", flush=True)
    try:
        from cnmflow.prefect_server import kept_server, server_folder, temporary_server

        # the kept server (`cnmflow server start`), else one started here that dies with this process
        with temporary_server(started=kept_server(server_folder())):
            rows = parameter_sweep(
                movies=[str(m.absolute()) for m in args.movies], output_dir=str(args.output_dir.absolute()),
                grid=grid, params_file=None if args.params_file is None else str(args.params_file.absolute()),
                overwrite_params=args.overwrite_params, preset=args.preset, params=form,
                max_concurrent=args.max_concurrent, evaluate=args.evaluate, overwrite=args.overwrite,
                experiment=args.experiment, tracking_uri=args.tracking_uri, dask_address=args.dask,
                **_nwb_flow_options(args))
    except (InputError, FileExistsError):
        raise
    except SweepFailed as err:
        if err.rows:
            _print_sweep(args, err.rows)
        raise RunFailed(f"the sweep failed: {err}") from err
    except Exception as err:  # noqa: BLE001
        raise RunFailed(f"the sweep failed: {type(err).__name__}: {err}") from err
    _print_sweep(args, rows)
    return 0


def _grid(options: Sequence[str]) -> dict[str, list[Any]]:
    """``--grid`` options as one grid; a parameter given twice is refused (the second would win silently)."""
    from cnmflow.sweep_grid import parse_grid_option

    grid: dict[str, list[Any]] = {}
    for text in options:
        name, values = parse_grid_option(text)
        if name in grid:
            raise InputError(f"--grid {name} is given twice; put all its values in one option "
                             f"(--grid {name}=V1,V2,...)")
        grid[name] = values
    return grid


def _print_sweep(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from cnmflow.tracking.compare import format_table
    from cnmflow.tracking.uri import tracking_uri

    print(format_table([{k: v for k, v in row.items() if k != "output_dir"} for row in rows]), end="")
    uri = args.tracking_uri or tracking_uri(args.output_dir.absolute())
    print(f"Each combination's results are in a sub-folder of {args.output_dir.absolute()}; "
          "comparison.csv and footprints_contact_sheet.png compare them.")
    print(f"MLflow: {uri} (experiment {args.experiment!r}); `cnmflow compare {args.experiment!r} --tracking-uri "
          f"'{uri}'` prints this table again")


def _serve(args: argparse.Namespace) -> int:
    """Serve the deployments until interrupted; the server must be a real one the UI can reach."""
    import os

    from cnmflow.deployments.definitions import WatchSettings, build_deployments

    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise InputError("no Prefect server configured: start one with `prefect server start` and set "
                             "PREFECT_API_URL=http://127.0.0.1:4200/api (schedules and UI-triggered runs need a "
                             "running server)")
    watch = None
    if args.watch is not None:
        if args.output_root is None:
            raise InputError("--watch needs --output-root: the folder where results of watched recordings go")
        if not args.watch.is_dir():
            raise InputError(f"--watch {args.watch}: no such folder; give the folder where recordings arrive")
        if args.interval <= 0:
            raise InputError(f"--interval {args.interval:g}: give a positive number of seconds between scans")
        watch = WatchSettings(folder=str(args.watch.absolute()), output_root=str(args.output_root.absolute()),
                              interval_s=args.interval, pattern=args.pattern, preset=args.preset)
    from prefect import serve

    if args.dask:  # flow runs started by this process (the watcher's children too) send patch jobs there
        os.environ["CNMFLOW_DASK_ADDRESS"] = args.dask
    deployments = build_deployments(watch, dask_address=args.dask)
    print("Serving " + ", ".join(deployment.name for deployment in deployments) + " (Ctrl-C stops)", flush=True)
    serve(*deployments, print_starting_message=False)
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from cnmflow.lineage import lineage_of

    print(lineage_of(args.path))
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Simulate a 1P movie with known neurons, run the flow on it and score the result."""
    from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5
    from cnmflow.scoring import score
    from cnmflow.synthetic import simulate_1p, write_tiff
    from cnmflow.request import RunRequest
    from cnmflow.validate import describe_inputs, validate_inputs

    output_dir = args.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    simulated = simulate_1p(shape=(128, 128), n_frames=1000, n_neurons=25, gsig=3.0, fr=10.0, rng=0)
    movie_path = output_dir / "demo_movie.tif"
    if not movie_path.exists():
        write_tiff(movie_path, simulated.movie, fr=simulated.truth.fr)
    print(f"Simulated a 1P movie with {simulated.truth.footprints.shape[0]} known neurons: {movie_path}")
    request = RunRequest(table={"gSig": 3, "gSiz": 13, "min_corr": 0.8, "min_pnr": 5})
    print(describe_inputs(validate_inputs([movie_path], request)))
    report = _run_flow([movie_path], output_dir / "results", request, request.form(), overwrite=True, evaluate=False,
                       work_dir=None, show_progress=True, verbose=False, flow_options=dict(experiment="demo"))
    estimates = read_caiman_hdf5(report.output_dir / HDF5_NAME)
    cells = estimates.accepted   # as a user reads the run: the engine's rejected components left out
    accuracy = score(simulated.truth.footprints, estimates.footprints()[cells], truth_traces=simulated.truth.calcium,
                     estimated_traces=estimates.C[cells])
    if report.mlflow_run_id:
        from cnmflow.tracking import log_scores

        log_scores(report.mlflow_run_id, accuracy.summary(), tracking_uri=report.run_ids["mlflow_tracking_uri"])
    _print_report(report)
    print(f"Against the simulation's ground truth: precision {accuracy.precision:.2f}, recall {accuracy.recall:.2f}, "
          f"F1 {accuracy.f1:.2f}, median trace correlation {accuracy.median_trace_corr:.2f}")
    print(f"Look at the previews (footprints_*.png, traces_*.png, lineage.png) in {report.output_dir}")
    return 0

