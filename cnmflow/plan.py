"""A run checked and named before any compute: inputs, parameters, fingerprint, output folder state.

Everything that can make a run fail or make it unnecessary is decided here, in seconds: bad
movies or parameters raise :class:`~cnmflow.errors.InputError`; an output folder holding another
run's results is refused unless overwriting; an output folder already holding exactly this run's
results (same fingerprint, files intact) makes the run up to date.  The output folder is locked
here, before the inputs are hashed, and the plan carries the lock: one folder has one writer
until :meth:`RunPlan.release` (after export and tracking).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cnmflow.errors import InputError, ParameterError
from cnmflow.fingerprint import input_hashes, run_fingerprint, series_key
from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.movies.work_copy import WORK_DIR_NAME
from cnmflow.outputs.export import check_output_dir
from cnmflow.outputs.folder import open_output_dir
from cnmflow.outputs.folder_lock import FolderBusyError, OutputLock, lock_output_dir
from cnmflow.outputs.location import check_output_location
from cnmflow.outputs.names import MANIFEST_NAME
from cnmflow.outputs.nwb_metadata import NwbMetadata, nwb_settings, read_nwb_metadata
from cnmflow.outputs.result_swap import finish_interrupted_swap, pending
from cnmflow.request import RunRequest, request_of
from cnmflow.validate import ValidatedInputs, validate_inputs


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, decided before it starts."""

    inputs: ValidatedInputs
    hashes: dict[int, str]        # movie index (user order) → sha256 of the file
    fingerprint: str              # inputs + effective parameters + code
    output_dir: Path
    evaluate: bool
    overwrite: bool               # the user allowed replacing an earlier run's outputs
    up_to_date: bool              # the output folder already holds this run's intact results
    nwb: bool = True              # write ophys.{k}.nwb (not in the fingerprint: see nwb_settings)
    nwb_metadata: NwbMetadata | None = field(default=None, compare=False)  # the user's facts, checked
    lock: OutputLock | None = field(default=None, compare=False, repr=False)  # this run's hold on output_dir

    def release(self) -> None:
        """Give up the output folder (once export and tracking are done, or the run failed)."""
        if self.lock is not None:
            self.lock.release()

    @property
    def series_key(self) -> str:
        """Names the concatenated movie (:func:`cnmflow.fingerprint.series_key`)."""
        return series_key(self.hashes, self.inputs.series)

    def work_root(self, work_dir: str | os.PathLike | None = None) -> Path:
        """Where the run's work copies of the series go (its work copy when it is not read in place, the
        motion-corrected copy): ``work_dir`` when given (a faster or larger disk),
        else a hidden folder in the output folder (see :mod:`cnmflow.movies.work_copy`)."""
        return Path(work_dir).expanduser().absolute() if work_dir else self.output_dir / WORK_DIR_NAME

    @property
    def corrects_motion(self) -> bool:
        """The run registers the frames before the fit (motion_correction is not 'none')."""
        return self.inputs.resolved.params.motion_correction != "none"


@dataclass(frozen=True)
class WorkSteps:
    """Which work copies a run that is not up to date makes before its fit."""

    concatenate: bool       # read the series in place, or write (or adopt) its work copy
    correct_motion: bool    # ... and register it into a corrected copy
    reused: bool            # the components come from the cache (same fingerprint)


def work_steps(plan: RunPlan, *, cached: bool, save_motion_corrected: bool = False) -> WorkSteps:
    """The copies the fit needs: none when the components are cached, unless the corrected movie is to be
    written (``save_motion_corrected``), which needs the corrected copy all the same."""
    concatenate = not cached or (plan.corrects_motion and save_motion_corrected)
    return WorkSteps(concatenate=concatenate, correct_motion=concatenate and plan.corrects_motion, reused=cached)


def check_run_options(plan: RunPlan, *, work_dir: str | os.PathLike | None = None,
                      save_motion_corrected: bool = False) -> None:
    """The options outside the parameters, refused before compute (InputError / ParameterError, one line)."""
    if work_dir is not None:
        check_output_location(work_dir, label="work_dir")
    if save_motion_corrected and not plan.corrects_motion:
        raise ParameterError("save_motion_corrected needs motion correction: set motion_correction to rigid or "
                             "piecewise_rigid, or leave save_motion_corrected off")


def needs_tracking(output_dir: Path, *, track_run: bool) -> bool:
    """A fresh export has no MLflow run yet; an up-to-date folder may have been tracked already."""
    return track_run and not read_manifest(output_dir)["run_ids"].get("mlflow_run_id")


def plan_run(
    movies: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    request: RunRequest | None = None,
    *,
    preset: str = "1p",
    table: dict[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    overwrite_params: bool = False,
    overwrite: bool = False,
    evaluate: bool = False,
    nwb: bool = True,
    nwb_metadata: str | os.PathLike | None = None,
) -> RunPlan:
    """Validate everything, lock the output folder, hash the inputs and decide what the folder needs.

    ``request`` holds the parameters as the user gave them (or give its fields as keywords).
    The returned plan holds the folder (re-entrantly, if this process holds it already); call
    ``plan.release()`` when the run is over. InputError (FolderBusyError when another run
    writes the folder) before any compute. ``nwb_metadata`` (YAML/JSON) is read and checked
    against the number of movies here too; the NWB settings are not part of the fingerprint
    (they change no component) but decide whether the folder is up to date.
    """
    inputs = validate_inputs(movies, request_of(request, preset=preset, table=table, params_file=params_file,
                                                overwrite_params=overwrite_params))
    facts = check_nwb_options(nwb, nwb_metadata, n_movies=len(inputs.series.movies))
    return plan_checked(inputs, output_dir, overwrite=overwrite, evaluate=evaluate, nwb=nwb, nwb_facts=facts)


def plan_checked(inputs: ValidatedInputs, output_dir: str | os.PathLike, *, overwrite: bool = False,
                 evaluate: bool = False, nwb: bool = True, nwb_facts: NwbMetadata | None = None) -> RunPlan:
    """:func:`plan_run` for inputs and NWB facts already checked: lock, hash, compare with the folder."""
    output_dir = Path(output_dir).expanduser().absolute()
    lock = open_output_dir(output_dir)
    try:
        hashes = input_hashes(inputs.series, remembered_in=inputs.machine.hash_cache())
        fingerprint = run_fingerprint(hashes, inputs.resolved.params)
        up_to_date = outputs_match(output_dir, fingerprint, evaluate=evaluate, nwb=nwb_settings(nwb, nwb_facts))
        if not up_to_date:
            check_output_dir(output_dir, len(inputs.series.movies), overwrite=overwrite)
    except BaseException:
        lock.release()
        raise
    return RunPlan(inputs=inputs, hashes=hashes, fingerprint=fingerprint, output_dir=output_dir,
                   evaluate=evaluate, overwrite=overwrite, up_to_date=up_to_date, nwb=nwb, nwb_metadata=nwb_facts,
                   lock=lock)


def check_nwb_options(nwb: bool, metadata: str | os.PathLike | None, *,
                      n_movies: int | None) -> NwbMetadata | None:
    """The checked NWB metadata file (None without one); InputError, one line, before any compute.

    ``n_movies`` None (a batch or a watched folder, before its recordings are known) skips the
    check of ``session_start_time`` against the number of movies.
    """
    if metadata is None:
        return None
    if not nwb:
        raise InputError(f"an NWB metadata file ({metadata}) is given but NWB output is off (--no-nwb / nwb=false); "
                         "drop one of the two")
    facts = read_nwb_metadata(metadata)
    if n_movies is not None:
        facts.check_movie_count(n_movies)
    return facts


def outputs_match(output_dir: Path, fingerprint: str, *, evaluate: bool, nwb: dict | None = None) -> bool:
    """True when ``output_dir`` holds a finished run with this fingerprint whose files are intact.

    ``nwb`` (:func:`~cnmflow.outputs.nwb_metadata.nwb_settings`), when given, must match the
    settings the folder's run recorded: NWB on/off and the metadata's content.

    An interrupted result swap is finished first when the folder is free (a swap in progress in
    another run means the folder holds no finished set yet).
    """
    output_dir = Path(output_dir)
    if pending(output_dir):
        try:
            with lock_output_dir(output_dir):
                finish_interrupted_swap(output_dir)
        except FolderBusyError:
            return False
    if not (output_dir / MANIFEST_NAME).is_file():
        return False
    try:
        manifest = read_manifest(output_dir)
    except InputError:
        return False
    run = manifest.get("run") or {}
    if run.get("fingerprint") != fingerprint or run.get("evaluated") != evaluate:
        return False
    if nwb is not None and run.get("nwb") != nwb:
        return False
    return verify_manifest(output_dir) == []
