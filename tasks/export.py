"""The export step: every output file, declared to Prefect as assets made from the input movies.

The open-source Prefect server records a materialization event per output with the input
movies as upstream assets; the manifest written with the files holds the same lineage with
hashes, for people and tools without a server.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect.assets import Asset, AssetProperties, materialize
from prefect.cache_policies import NO_CACHE
from prefect.tasks import Task

from cnmflow.movies import ConcatenatedMovie
from cnmflow.outputs.export import ExportResult, export, planned_names
from cnmflow.pipeline import ExtractionResult
from cnmflow.plan import RunPlan
from cnmflow.tasks.extract import with_current_inputs
from cnmflow.tasks.progress import Progress
from cnmflow.tasks.retries import RETRY_OPTIONS

#: Characters Prefect refuses in an asset key (prefect.types.names), replaced by "_".
_RESTRICTED = set(' \n\r\t\0#?&%"\'<>[]{}|\\^`')
MAX_KEY_LENGTH = 512


def file_asset(path: str | Path) -> Asset:
    """A ``file://`` asset for a path, sanitised to what Prefect accepts (long paths end in a hash)."""
    posix = Path(path).absolute().as_posix()
    key = "file://" + "".join("_" if char in _RESTRICTED else char for char in posix)
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(posix.encode()).hexdigest()[:16]
        key = key[: MAX_KEY_LENGTH - 17] + "-" + digest
    return Asset(key=key, properties=AssetProperties(name=Path(path).name))


def _write_outputs(plan: RunPlan, extraction: ExtractionResult, run_ids: dict[str, str | None],
                   progress: Progress, stage_timings: dict[str, float],
                   corrected_movie: ConcatenatedMovie | None = None) -> ExportResult:
    progress("export", 0.0)
    written = export(with_current_inputs(extraction, plan), plan.output_dir, overwrite=plan.overwrite,
                     evaluate=plan.evaluate, run_ids=run_ids, hashes=plan.hashes, fingerprint=plan.fingerprint,
                     stage_timings=stage_timings, nwb=plan.nwb, nwb_metadata=plan.nwb_metadata,
                     corrected_movie=corrected_movie)
    progress("export", 1.0)
    return written


def export_task(plan: RunPlan, n_components: int) -> Task[..., ExportResult]:
    """The export task of this run, materializing its data files from its input movies."""
    names = planned_names(len(plan.inputs.series.movies), nwb=plan.nwb, events=n_components > 0)
    outputs = [file_asset(plan.output_dir / name) for name in names]
    inputs = [file_asset(movie.path) for movie in plan.inputs.series.movies]
    options: dict[str, Any] = dict(name="export", asset_deps=inputs, cache_policy=NO_CACHE, persist_result=False,
                                   **RETRY_OPTIONS)
    return materialize(*outputs, **options)(_write_outputs)
