"""One MLflow run per finished output folder, and the run id written back into its manifest.

Logged through an explicit :class:`~mlflow.tracking.MlflowClient` and never the fluent API: the
active run of the fluent API is per thread, and Prefect runs tasks in other threads, so a
child that relied on it would silently lose its parent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from datetime import datetime
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
from cnmflow.tracking.compare import VARIED_TAG
from cnmflow.tracking.folder import FolderRecord, finite_metrics, read_folder, work_span
from cnmflow.tracking.params import caiman_params_document, values_label
from cnmflow.tracking.store import connect, experiment_id, log_image_file, reported
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT, runs_page_url
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
#: Key previews, by the name they are logged under: at the artifact root (``footprints.png``: the
#: compare view lists only files at the root that every compared run has) and as MLflow images
#: (``images/``, tag ``mlflow.loggedImages``: the experiment's chart view compares those in an image grid).
#: All previews stay under ``previews/`` as well.
IMAGE_KEYS = {"footprints_cellset_denoised.000.png": "footprints",
              "traces_cellset_denoised.000.png": "traces",
              "initialization_images.png": "initialization"}


def log_output_folder(
    output_dir: str | os.PathLike,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    extra_metrics: Mapping[str, Any] | None = None,
    started_at: datetime | None = None,
) -> str:
    """Log a finished output folder as one MLflow run; returns the run id.

    The run holds the effective parameters (``group.name``) with their sources, the inputs
    (as params and as datasets with their sha256), the metrics of :func:`folder_metrics` plus
    ``extra_metrics`` (e.g. ground-truth scores), tags, the previews (also as MLflow images), the
    NWB files (``nwb/``), a CaImAn parameters file and the folder's metadata and manifest.
    Its start and end times are those of the work (:func:`~cnmflow.tracking.folder.work_span`;
    ``started_at``, e.g. the orchestration run's start, when it is known and not after the end),
    not the time of logging.  ``tracking_uri`` defaults to
    :func:`~cnmflow.tracking.store.tracking_uri` of the folder's parent; ``parent_run_id``
    nests the run under a sweep and names it by the sweep's varied values.  The run id, URI,
    experiment and the runs page are then recorded in the manifest.  On failure the manifest gets
    a "tracking missing: ..." note, the outputs stay as they are, and :class:`TrackingError` is
    raised.  No manifest: InputError.
    """
    record = read_folder(output_dir)
    uri = tracking_uri or default_tracking_uri(record.output_dir.parent)
    start_ms, end_ms = _work_times(record, started_at)
    client: MlflowClient | None = None
    run_id: str | None = None
    try:
        with reported(uri):
            client = connect(uri)
            run_tags = {**record.tags, **{str(key): str(value) for key, value in (tags or {}).items()}}
            if parent_run_id:
                run_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
            experiment_key = experiment_id(client, experiment, uri)
            name = run_name or child_name(client, parent_run_id, record) or record.output_dir.name
            run = client.create_run(experiment_key, start_time=start_ms, run_name=name, tags=run_tags)
            run_id = run.info.run_id
            _log_contents(client, run_id, record, finite_metrics(extra_metrics or {}), logged_at=end_ms)
            client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=end_ms)
    except TrackingError as error:
        _record_missing(record.output_dir, client, run_id, error)
        raise
    record_run_ids(record.output_dir, {"mlflow_run_id": run_id, "mlflow_tracking_uri": uri,
                                       "mlflow_experiment": experiment,
                                       "mlflow_runs_url": runs_page_url(uri, experiment_key)})
    return run_id


def _work_times(record: FolderRecord, started_at: datetime | None) -> tuple[int | None, int | None]:
    """MLflow start and end times (ms since the epoch) of the folder's work; None lets MLflow take now."""
    span = work_span(record.manifest)
    if span is None:
        return None, None
    start, end = span
    if started_at is not None and started_at.tzinfo is not None and started_at <= end:
        start = started_at
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def child_name(client: MlflowClient, parent_run_id: str | None, record: FolderRecord) -> str | None:
    """A sweep child's name: the sweep's varied values as this folder has them ("min_corr 0.6 · min_pnr 5")."""
    if not parent_run_id:
        return None
    varied = [name for name in client.get_run(parent_run_id).data.tags.get(VARIED_TAG, "").split(",") if name]
    values = record.params.model_dump()
    return values_label({name: values[name] for name in varied if name in values}) or None


def log_scores(run_id: str, scores: Mapping[str, Any], *, tracking_uri: str) -> None:
    """Add metrics to a logged run afterwards (e.g. ground-truth scores of a simulated movie)."""
    metrics = finite_metrics(scores)
    with reported(tracking_uri):
        now = int(time.time() * 1000)
        connect(tracking_uri).log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in metrics.items()])


def _log_contents(client: MlflowClient, run_id: str, record: FolderRecord, extra: dict[str, float], *,
                  logged_at: int | None) -> None:
    when = logged_at or int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, when, 0) for key, value in {**record.metrics, **extra}.items()],
        params=[Param(key, value) for key, value in record.logged_params.items()])
    _log_inputs(client, run_id, [movie_dataset(entry) for entry in record.inputs])
    for preview in record.previews:
        client.log_artifact(run_id, str(preview), PREVIEWS_ARTIFACT_DIR)
    log_preview_images(client, run_id, record.previews, logged_at=when)
    for nwb_file in record.nwb_files:  # the files a DANDI upload is made of, kept with the run
        client.log_artifact(run_id, str(nwb_file), NWB_ARTIFACT_DIR)
    client.log_dict(run_id, caiman_params_document(record.params), PARAMS_ARTIFACT)
    for name in (METADATA_NAME, MANIFEST_NAME):
        if (record.output_dir / name).is_file():
            client.log_artifact(run_id, str(record.output_dir / name))


def log_preview_images(client: MlflowClient, run_id: str, previews: list[Path], *, logged_at: int) -> None:
    """The key previews (:data:`IMAGE_KEYS`) at the artifact root and as MLflow images, where the compare
    view and the chart view find them."""
    keyed = [(IMAGE_KEYS[preview.name], preview) for preview in previews if preview.name in IMAGE_KEYS]
    with tempfile.TemporaryDirectory(prefix="cnmflow-images-") as scratch:
        for key, preview in keyed:
            root_copy = Path(scratch) / f"{key}.png"
            shutil.copyfile(preview, root_copy)
            client.log_artifact(run_id, str(root_copy))
            log_image_file(client, run_id, preview, key=key, logged_at=logged_at)


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
