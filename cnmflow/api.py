"""``cnmflow.extract``: the whole job — validate, concatenate, fit, export — without Prefect."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from cnmflow.fingerprint import input_hashes
from cnmflow.outputs.export import ExportResult, check_output_dir, export
from cnmflow.outputs.folder import open_output_dir
from cnmflow.pipeline import ExtractionResult, extract as extract_components
from cnmflow.plan import check_nwb_options
from cnmflow.request import RunRequest
from cnmflow.validate import validate_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """Components of a run and the files written for it."""

    extraction: ExtractionResult
    outputs: ExportResult

    @property
    def output_dir(self) -> Path:
        return self.outputs.output_dir


def extract(
    movies: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    preset: str = "1p",
    params: dict[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    overwrite_params: bool = False,
    overwrite: bool = False,
    evaluate: bool = False,
    run_ids: dict[str, str | None] | None = None,
    progress: Callable[[str, float], None] | None = None,
    nwb: bool = True,
    nwb_metadata: str | os.PathLike | None = None,
) -> Result:
    """Extract neurons from a movie or series and write every output into ``output_dir``.

    ``params`` holds analysis-table values by their seed names (e.g. ``{"min_pnr": 8}``). All
    checks — inputs, parameters, the NWB metadata file, existing outputs — run before any
    computation. ``nwb`` writes ``ophys.{k}.nwb`` per movie with ``nwb_metadata``'s facts.
    """
    request = RunRequest(preset=preset, table=dict(params or {}), params_file=params_file,
                         overwrite_params=overwrite_params)
    inputs = validate_inputs(movies, request)  # the one check of the parameters; the fit trusts it
    if inputs.size_note:  # a gSig far below the cells' size: said before the fit, not only in its notes after it
        log.warning(inputs.size_note)
    facts = check_nwb_options(nwb, nwb_metadata, n_movies=len(inputs.series.movies))
    with open_output_dir(output_dir):  # one writer per folder, from the check to the last file
        check_output_dir(output_dir, len(inputs.series.movies), overwrite=overwrite)
        # before the fit: hashing refuses a copy listed with its original, and the manifest needs the hashes anyway
        hashes = input_hashes(inputs.series, remembered_in=inputs.machine.hash_cache())
        extraction = extract_components(inputs, output_dir, progress=progress)
        outputs = export(extraction, output_dir, overwrite=overwrite, evaluate=evaluate, run_ids=run_ids, nwb=nwb,
                         nwb_metadata=facts, hashes=hashes)
    return Result(extraction=extraction, outputs=outputs)
