"""The deployments ``cnmflow serve`` offers: what each pre-fills and when it runs.

``prefect.yaml`` declares the same deployments for ``prefect deploy --all`` with a work pool;
a test keeps the two in step (names, entrypoints, pre-filled parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnmflow.params_form import form_values

SOURCE_EXTRACTION = "source-extraction"
SOURCE_EXTRACTION_2P = "source-extraction-2p"
WATCH_FOLDER = "watch-folder"
PARAMETER_SWEEP = "parameter-sweep"
BATCH_EXTRACTION = "batch-extraction"
MOTION_CORRECTION = "motion-correction"
SUGGEST_PARAMETERS = "suggest-parameters"
#: Nobody reads PNR images overnight: the 1P watcher reads gSig, min_corr and min_pnr from each movie.
WATCH_AUTO: dict[str, dict[str, Any]] = {"1p": {"gSig": "auto", "min_corr": "auto", "min_pnr": "auto"}, "2p": {}}
#: The watcher is fed raw recordings: its form corrects motion (rigid; 1P: the gSig_filt high-pass).
WATCH_MOTION: dict[str, dict[str, Any]] = {"1p": {"motion_correction": "rigid", "gSig_filt": [3, 3]},
                                           "2p": {"motion_correction": "rigid"}}
DEFAULT_SCAN_INTERVAL_S = 60


@dataclass(frozen=True)
class WatchSettings:
    """Which folder the ``watch-folder`` deployment scans, into where, and how often."""

    folder: str
    output_root: str
    interval_s: float = DEFAULT_SCAN_INTERVAL_S
    pattern: str | None = None
    preset: str = "1p"


def extraction_parameters(preset: str, dask_address: str | None = None) -> dict[str, Any]:
    """Pre-filled form of an extraction deployment: the preset, its analysis table, the Dask scheduler."""
    parameters: dict[str, Any] = {"preset": preset, "params": form_values(preset)}
    if dask_address:
        parameters["dask_address"] = dask_address
    return parameters


def motion_parameters(dask_address: str | None = None) -> dict[str, Any]:
    """Pre-filled form of the motion-correction deployment: the motion section, rigid, 1P high-pass."""
    from cnmflow.params_form import MotionForm

    parameters: dict[str, Any] = {"preset": "1p",
                                  "params": {**MotionForm().model_dump(mode="json", exclude={"n_processes"}),
                                             "gSig_filt": [3, 3]}}
    if dask_address:
        parameters["dask_address"] = dask_address
    return parameters


def watch_parameters(preset: str) -> dict[str, Any]:
    """The watcher's pre-filled extraction form: the preset's table with motion correction on."""
    parameters = extraction_parameters(preset)
    parameters["params"] = {**parameters["params"], **WATCH_MOTION[preset], **WATCH_AUTO[preset]}
    return parameters


def build_deployments(watch: WatchSettings | None = None, *, dask_address: str | None = None) -> list[Any]:
    """Runner deployments for ``prefect.serve``: both extraction presets, the sweep, the batch, and
    the watcher when configured.  With ``dask_address`` patch jobs go to that Dask cluster and the
    batch's recordings run on its workers."""
    from cnmflow.flows.batch_extraction import batch_extraction, with_dask
    from cnmflow.flows.motion_correction import motion_correction
    from cnmflow.flows.parameter_sweep import parameter_sweep
    from cnmflow.flows.source_extraction import source_extraction
    from cnmflow.flows.suggest_parameters import suggest_parameters

    batch = with_dask(batch_extraction, dask_address) if dask_address else batch_extraction

    deployments = [
        source_extraction.to_deployment(
            name=SOURCE_EXTRACTION, parameters=extraction_parameters("1p", dask_address), tags=["cnmflow", "1p"],
            description="Extract neurons from a 1P (miniscope) movie or series: fill in movies and output_dir. "
                        "The form runs as shown; preset must match method_init."),
        source_extraction.to_deployment(
            name=SOURCE_EXTRACTION_2P, parameters=extraction_parameters("2p", dask_address), tags=["cnmflow", "2p"],
            description="Extract neurons from a 2P movie or series with the seed's 2P preset. "
                        "The form runs as shown; preset must match method_init. K 4 is the seed's; where a "
                        "patch may hold more cells set K to auto (README, Engine)."),
        parameter_sweep.to_deployment(
            name=PARAMETER_SWEEP, parameters=extraction_parameters("1p", dask_address), tags=["cnmflow", "sweep"],
            description="Run every combination of a parameter grid (e.g. min_corr, min_pnr) on one recording and "
                        "compare them: fill in movies, output_dir and grid."),
        batch.to_deployment(
            name=BATCH_EXTRACTION, parameters=extraction_parameters("1p", dask_address), tags=["cnmflow", "batch"],
            description="Extract many recordings (a cohort), each into its own folder under output_root."),
        motion_correction.to_deployment(
            name=MOTION_CORRECTION, parameters=motion_parameters(dask_address), tags=["cnmflow", "motion"],
            description="Motion-correct a movie or series on its own (rigid or piecewise_rigid): corrected movies, "
                        "shifts and previews. Fill in movies and output_dir."),
        suggest_parameters.to_deployment(
            name=SUGGEST_PARAMETERS, parameters={"preset": "1p"}, tags=["cnmflow", "suggest"],
            description="Suggest gSig, min_corr and min_pnr from a movie (what 'auto' chooses), with reasons and a "
                        "figure: fill in movies and figure."),
    ]
    if watch is not None:
        from cnmflow.flows.watch_folder import watch_folder

        parameters: dict[str, Any] = {"folder": watch.folder, "output_root": watch.output_root,
                                      **watch_parameters(watch.preset)}
        if watch.pattern:
            from cnmflow.watch import parse_patterns

            parameters["pattern"] = list(parse_patterns(watch.pattern))
        deployments.append(watch_folder.to_deployment(
            name=WATCH_FOLDER, interval=watch.interval_s, parameters=parameters, tags=["cnmflow", "watch"],
            description=f"Every {watch.interval_s:g} s: extract new recordings in {watch.folder}."))
    return deployments
