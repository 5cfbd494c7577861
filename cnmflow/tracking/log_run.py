"""One MLflow run per finished output folder, and the run id written back into its manifest.

Logged through an explicit :class:`~mlflow.tracking.MlflowClient` and never the fluent API: the
active run of the fluent API is per thread, and Prefect runs tasks in other threads, so a
child that relied on it would silently lose its parent.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID

from cnmflow.lineage import record_run_ids
from cnmflow.tracking.errors import TrackingError
from cnmflow.outputs.names import MANIFEST_NAME, METADATA_NAME
from cnmflow.tracking.folder import FolderRecord, finite_metrics, read_folder
from cnmflow.tracking.params import caiman_params_document
from cnmflow.tracking.store import connect, experiment_id, reported
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT
from cnmflow.tracking.uri import tracking_uri as default_tracking_uri

log = logging.getLogger(__name__)

#: MLflow stores at most 36 characters of a dataset digest: the sha256 is cut to that, and the
#: whole hash is kept as the dataset input's ``sha256`` tag.
DIGEST_LENGTH = 36
#: Attempts at logging the input datasets (see :func:`_log_inputs`).
INPUT_ATTEMPTS = 4
PARAMS_ARTIFACT = "parameters/caiman_params.json"
PREVIEWS_ARTIFACT_DIR = "previews"
NWB_ARTIFACT_DIR = "nwb"


def log_output_folder(
    output_dir: str | os.PathLike,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    extra_metrics: Mapping[str, Any] | None = None,
) -> str:
    """Log a finished output folder as one MLflow run; returns the run id.

    The run holds the effective parameters (``group.name``) with their sources, the inputs
    (as params and as datasets with their sha256), the metrics of :func:`folder_metrics` plus
    ``extra_metrics`` (e.g. ground-truth scores), tags, the previews, the NWB files (``nwb/``),
    a CaImAn parameters file and the folder's metadata and manifest.  ``tracking_uri`` defaults to
    :func:`~cnmflow.tracking.store.tracking_uri` of the folder's parent; ``parent_run_id``
    nests the run under a sweep.  The run id, URI and experiment are then recorded in the
    manifest.  On failure the manifest gets a "tracking missing: ..." note, the outputs stay
    as they are, and :class:`TrackingError` is raised.  No manifest: InputError.
    """
    record = read_folder(output_dir)
    uri = tracking_uri or default_tracking_uri(record.output_dir.parent)
    client: MlflowClient | None = None
    run_id: str | None = None
    try:
        with reported(uri):
            client = connect(uri)
            run_tags = {**record.tags, **{str(key): str(value) for key, value in (tags or {}).items()}}
            if parent_run_id:
                run_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
            run = client.create_run(experiment_id(client, experiment, uri),
                                    run_name=run_name or record.output_dir.name, tags=run_tags)
            run_id = run.info.run_id
            _log_contents(client, run_id, record, finite_metrics(extra_metrics or {}))
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    except TrackingError as error:
        _record_missing(record.output_dir, client, run_id, error)
        raise
    record_run_ids(record.output_dir, {"mlflow_run_id": run_id, "mlflow_tracking_uri": uri,
                                       "mlflow_experiment": experiment})
    return run_id


def log_scores(run_id: str, scores: Mapping[str, Any], *, tracking_uri: str) -> None:
    """Add metrics to a logged run afterwards (e.g. ground-truth scores of a simulated movie)."""
    metrics = finite_metrics(scores)
    with reported(tracking_uri):
        now = int(time.time() * 1000)
        connect(tracking_uri).log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in metrics.items()])


def _log_contents(client: MlflowClient, run_id: str, record: FolderRecord, extra: dict[str, float]) -> None:
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, now, 0) for key, value in {**record.metrics, **extra}.items()],
        params=[Param(key, value) for key, value in record.logged_params.items()])
    _log_inputs(client, run_id, [movie_dataset(entry) for entry in record.inputs])
    for preview in record.previews:
        client.log_artifact(run_id, str(preview), PREVIEWS_ARTIFACT_DIR)
    for nwb_file in record.nwb_files:  # the files a DANDI upload is made of, kept with the run
        client.log_artifact(run_id, str(nwb_file), NWB_ARTIFACT_DIR)
    client.log_dict(run_id, caiman_params_document(record.params), PARAMS_ARTIFACT)
    for name in (METADATA_NAME, MANIFEST_NAME):
        if (record.output_dir / name).is_file():
            client.log_artifact(run_id, str(record.output_dir / name))


def _log_inputs(client: MlflowClient, run_id: str, datasets: list[DatasetInput]) -> None:
    """Log the datasets, again after a pause when it fails.

    The sqlite store checks for an existing dataset and then inserts it: sweep children on the
    same movie, logged at once from several threads, can both insert and one then fails on the
    unique key.  On the next attempt the dataset exists and is only linked to the run.
    """
    for attempt in range(INPUT_ATTEMPTS):
        try:
            client.log_inputs(run_id, datasets=datasets)
            return
        except MlflowException:
            if attempt + 1 == INPUT_ATTEMPTS:
                raise
            time.sleep(0.1 * (attempt + 1))


def movie_dataset(entry: Mapping[str, Any]) -> DatasetInput:
    """An input movie as an MLflow dataset: source = its path, name = its file name, digest = its sha256.

    Two runs on the same recording therefore show the same dataset in the MLflow UI.
    """
    source = get_dataset_source_from_json(json.dumps({"uri": str(entry["path"])}), source_type="local")
    dataset = MetaDataset(source=source, name=Path(entry["path"]).name, digest=entry["sha256"][:DIGEST_LENGTH])
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "movie"), InputTag("sha256", entry["sha256"]),
            InputTag("frames", str(entry.get("n_frames")))]
    return DatasetInput(Dataset(**dataset.to_dict()), tags=tags)


def _record_missing(output_dir: Path, client: MlflowClient | None, run_id: str | None,
                    error: TrackingError) -> None:
    """Note the gap in the manifest, and mark a half-logged run as failed (both best effort)."""
    if client is not None and run_id is not None:
        try:
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        except Exception:  # noqa: BLE001 -- the store is already failing
            log.debug("could not mark MLflow run %s as failed", run_id, exc_info=True)
    try:
        record_run_ids(output_dir, {"mlflow_run_id": None}, notes=[f"tracking missing: {error}"])
    except OSError as err:
        log.warning("could not note the missing tracking in %s: %s", output_dir / MANIFEST_NAME, err)
