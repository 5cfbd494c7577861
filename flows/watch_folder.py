"""The ``watch-folder`` flow: one scan of a folder, one ``source-extraction`` run per new movie or series.

Run it on a schedule (a deployment with an interval); each call is one scan.  The decisions
(what is new, finished, claimed, done, failed) live in :mod:`cnmflow.watch` and its ledger;
this module only starts the extractions as child runs and reports.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BeforeValidator

from cnmflow.params_form import ExtractionParams, OptionalText
from cnmflow.plan import check_nwb_options
from cnmflow.request import Preset, RunRequest
from cnmflow.watch import DEFAULT_PATTERNS, Ledger, Scan, ScanSummary, SeriesRule, parse_patterns, summary_markdown
from cnmflow.watch.claims import Job
from cnmflow.watch.summary import FAILED, GAVE_UP, UNREADABLE, Outcome
from cnmflow.flows.source_extraction import source_extraction


def _patterns(value: object) -> object:
    return list(parse_patterns(value)) if isinstance(value, str) else value


#: A list input in the UI form; a comma-separated string is accepted too when called from code.
Patterns = Annotated[list[str], BeforeValidator(_patterns)]


def _record_run_id(ledger_path: str, job: Job):
    """A hook that writes the child run's id into the ledger as soon as it is running."""
    def hook(flow, flow_run, state) -> None:  # noqa: ANN001 - Prefect's hook signature
        with Ledger(ledger_path) as ledger:
            ledger.set_run_id(job, str(flow_run.id))
    return hook


def _extract(scan: Scan, ledger: Ledger, job: Job, *, preset: str, params, params_file: str | None,
             overwrite_params: bool, nwb: bool = True, nwb_metadata: str | None = None) -> Outcome:
    """Run the extraction of a claimed job as a child flow run and record how it ended."""
    extraction = source_extraction.with_options(on_running=[_record_run_id(str(ledger.path), job)])
    run_id: str | None = None
    error: BaseException | None = None
    try:
        state = extraction(movies=scan.movies(job, ledger), output_dir=scan.output_dir(job), params_file=params_file,
                           overwrite_params=overwrite_params, preset=preset, params=params, nwb=nwb,
                           nwb_metadata=nwb_metadata, return_state=True)
        run_id = str(state.state_details.flow_run_id)
        if not state.is_completed():
            result = state.result(raise_on_failure=False)
            error = result if isinstance(result, BaseException) else RuntimeError(f"extraction ended {state.name}")
    except Exception as raised:  # noqa: BLE001 - recorded as a failed attempt, reported below
        error = raised
    except BaseException as raised:  # interrupted: free the claim as a failed attempt, then stop
        scan.finish(ledger, job, run_id=run_id, error=raised)
        raise
    return scan.finish(ledger, job, run_id=run_id, error=error)


def _log(outcome: Outcome) -> None:
    logger = get_run_logger()
    line = f"{outcome.item}: {outcome.status} — {outcome.detail}"
    if outcome.status == FAILED:
        logger.error(line)
    elif outcome.status in (GAVE_UP, UNREADABLE):
        logger.warning(line)
    else:
        logger.info(line)


@flow(name="watch-folder",
      description="One scan of a watched folder: starts a source-extraction run for each new, finished movie "
                  "or movie series, once; retries failures up to max_attempts.")
def watch_folder(
    folder: str,
    output_root: str,
    pattern: Patterns = list(DEFAULT_PATTERNS),  # noqa: B006 - never mutated; a list renders as a list input
    preset: Preset = "1p",
    params: ExtractionParams = ExtractionParams(),  # type: ignore[valid-type]
    params_file: OptionalText = None,
    overwrite_params: bool = False,
    max_attempts: int = 3,
    series_rule: SeriesRule = "subfolder",
    max_claim_age_hours: float = 24.0,
    min_unchanged_minutes: float = 0.0,
    nwb: bool = True,
    nwb_metadata: OptionalText = None,
) -> ScanSummary:
    """Scan ``folder`` once and extract each new movie or series into ``output_root``.

    A file is taken only when two scans in a row saw the same size and modification time (a movie
    still being written is left for later).  Which files make one run is the series rule:

    - ``"subfolder"``: a file directly in ``folder`` is one run (the files of one multi-file
      OME-TIFF, ``name.ome.tif``, ``name_1.ome.tif``, …, one run together); the files in one sub-folder
      form one series, run together in name order (the extraction orders .isxd movies by start
      time), started only once every one of them, and the folder's listing, is unchanged.
    - ``"file"``: every file is its own run.

    Results go to ``output_root/<sub-folder>`` for a series and ``output_root/<path without
    extension>`` for a single movie.  If a movie or series is replaced by different content
    (another sha256) after it was processed, it is a new recording: it is processed again into
    ``<that folder>.rev2`` (then ``.rev3``…), so earlier results are never overwritten.

    The ledger ``output_root/.cnmflow-watch.sqlite`` records what was seen, each run's content
    hash, state, attempts and child flow run id.  Two watchers on one folder never start the
    same run twice; a run left "running" by a watcher process that died (or, across hosts, a
    claim older than ``max_claim_age_hours``) is picked up again by the next scan.

    Args:
        folder: Folder to watch (searched recursively; hidden files and folders are skipped).
        output_root: Folder for the results and the ledger (inside ``folder`` or not, never ``folder`` itself).
        pattern: File name patterns to pick up (case-insensitive), e.g. ``*.isxd`` (from code, also
            a comma-separated string).
        preset: The seed's 1P or 2P preset for every run.
        params: The analysis table for every run.
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
        max_attempts: Attempts per movie or series in all (bad input counts too) before giving up on it.
        series_rule: "subfolder" (a sub-folder's files are one series) or "file" (every file on its own).
        max_claim_age_hours: Age after which another watcher's unfinished claim is taken over.
        min_unchanged_minutes: Minutes a file must also have stayed unchanged before it is taken: raise it where
            copies stall longer than the scan interval (a half-copied AVI reads as a shorter movie).
        nwb: Write ophys.{k}.nwb per movie of every run.
        nwb_metadata: YAML/JSON file with the NWB subject/session/device/imaging_plane facts.
    """
    RunRequest.from_form(params, preset=preset)  # a bad form (or preset/method_init mismatch) fails here, not once per movie
    check_nwb_options(nwb, nwb_metadata, n_movies=None)  # so does a bad NWB metadata file
    logger = get_run_logger()
    scan = Scan(folder, output_root, patterns=parse_patterns(pattern), series_rule=series_rule,
                max_attempts=max_attempts, max_claim_age_s=max_claim_age_hours * 3600.0,
                min_stable_s=min_unchanged_minutes * 60.0)
    outcomes: list[Outcome] = []
    with Ledger.in_folder(scan.output_root) as ledger:
        candidates, growing = scan.survey(ledger)
        outcomes.extend(growing)
        for candidate in candidates:
            claimed = scan.claim(ledger, candidate)
            if claimed.decision != "claim":
                outcomes.append(scan.not_started(claimed))
                continue
            logger.info("%s: starting extraction (attempt %d of %d; %s) into %s", candidate.group.key,
                        claimed.job.attempts, max_attempts, claimed.reason, scan.output_dir(claimed.job))
            outcomes.append(_extract(scan, ledger, claimed.job, preset=preset, params=params,
                                     params_file=params_file, overwrite_params=overwrite_params, nwb=nwb,
                                     nwb_metadata=nwb_metadata))
    for outcome in outcomes:
        _log(outcome)
    summary = ScanSummary.of(str(scan.folder), str(scan.output_root), outcomes)
    create_markdown_artifact(summary_markdown(summary), description=f"watch-folder scan of {scan.folder}")
    logger.info("scan of %s: %s", scan.folder,
                ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n) or "nothing new")
    return summary


__all__ = ["watch_folder"]
