"""A run checked and named before any compute: inputs, parameters, fingerprint, output folder state.

Everything that can make a run fail or make it unnecessary is decided here, in seconds: bad
movies or parameters raise :class:`~cnmflow.errors.InputError`; an output folder holding another
run's results is refused unless overwriting; an output folder already holding exactly this run's
results (same fingerprint, files intact) makes the run up to date.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cnmflow.errors import InputError
from cnmflow.fingerprint import input_hashes, run_fingerprint
from cnmflow.lineage import MANIFEST_NAME, read_manifest, verify_manifest
from cnmflow.outputs.export import check_output_dir
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

    @property
    def series_key(self) -> str:
        """Names the concatenated movie: the ordered input bytes only, whatever the parameters."""
        from hashlib import sha256

        return sha256("".join(self.hashes[k] for k in sorted(self.hashes)).encode()).hexdigest()


def plan_run(
    movies: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    preset: str = "1p",
    table: dict[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    overwrite_params: bool = False,
    overwrite: bool = False,
    evaluate: bool = False,
) -> RunPlan:
    """Validate everything, hash the inputs and decide what the output folder needs."""
    inputs = validate_inputs(movies, preset=preset, table=table, params_file=params_file,
                             overwrite_params=overwrite_params)
    output_dir = Path(output_dir).expanduser().absolute()
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"output_dir {output_dir} is a file; give a folder for the results")
    hashes = input_hashes(inputs.series)
    fingerprint = run_fingerprint(hashes, inputs.resolved.params)
    up_to_date = outputs_match(output_dir, fingerprint, evaluate=evaluate)
    if not up_to_date:
        check_output_dir(output_dir, len(inputs.series.movies), overwrite=overwrite)
    return RunPlan(inputs=inputs, hashes=hashes, fingerprint=fingerprint, output_dir=output_dir,
                   evaluate=evaluate, overwrite=overwrite, up_to_date=up_to_date)


def outputs_match(output_dir: Path, fingerprint: str, *, evaluate: bool) -> bool:
    """True when ``output_dir`` holds a finished run with this fingerprint whose files are intact."""
    if not (output_dir / MANIFEST_NAME).is_file():
        return False
    try:
        manifest = read_manifest(output_dir)
    except InputError:
        return False
    run = manifest.get("run") or {}
    if run.get("fingerprint") != fingerprint or run.get("evaluated") != evaluate:
        return False
    return verify_manifest(output_dir) == []
