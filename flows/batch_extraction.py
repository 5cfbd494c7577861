"""The ``batch-extraction`` flow: many recordings at once, each its own ``source-extraction`` run.

A cohort is many independent recordings; they fan out as tasks on the flow's task runner —
threads on one machine, or a Dask cluster (``with_dask``) so each recording runs on a worker
node that reads it from shared storage.  One recording failing does not stop the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from cnmflow.params_form import ExtractionParams, OptionalText
from cnmflow.plan import check_nwb_options
from cnmflow.request import Preset, RunRequest
from cnmflow.report import RunReport
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT


def recording_name(movies: list[str]) -> str:
    """Output sub-folder of a recording: its single movie's stem, or a series' folder name."""
    paths = [Path(movie) for movie in movies]
    return paths[0].stem if len(paths) == 1 else paths[0].parent.name


@task(name="recording", cache_policy=NO_CACHE, persist_result=False)
def extract_recording(movies: list[str], output_dir: str, options: dict[str, Any]) -> RunReport:
    """One recording as a child ``source-extraction`` run."""
    from cnmflow.flows.source_extraction import source_extraction

    return source_extraction(movies=movies, output_dir=output_dir, **options)


@flow(name="batch-extraction", task_runner=ThreadPoolTaskRunner(max_workers=2),
      description="Extract neurons from many recordings, each into its own folder under output_root.")
def batch_extraction(
    recordings: list[list[str]],
    output_root: str,
    params_file: OptionalText = None,
    overwrite_params: bool = False,
    preset: Preset = "1p",
    params: ExtractionParams = ExtractionParams(),  # type: ignore[valid-type]
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: OptionalText = None,
    dask_address: OptionalText = None,
    nwb: bool = True,
    nwb_metadata: OptionalText = None,
) -> list[dict[str, Any]]:
    """Run every recording (a list of movie files: one movie, or a series) into ``output_root/<name>``.

    Args:
        recordings: One entry per recording, each a list of its movie files.
        output_root: Folder holding one sub-folder of results per recording.
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
        preset: The seed's 1P or 2P preset.
        params: The analysis table, the same for every recording.
        experiment: MLflow experiment of the runs.
        tracking_uri: MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<output_root>/mlflow.db).
        dask_address: Dask scheduler for the patch jobs (default: $CNMFLOW_DASK_ADDRESS).
        nwb: Write ophys.{k}.nwb per movie of every recording.
        nwb_metadata: YAML/JSON file with the NWB subject/session/device/imaging_plane facts.
    """
    RunRequest.from_form(params, preset=preset)  # a bad form (or preset/method_init mismatch) fails here, not per recording
    check_nwb_options(nwb, nwb_metadata, n_movies=None)  # so does a bad NWB metadata file
    names = [recording_name(movies) for movies in recordings]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"recordings would share output folders ({', '.join(clashes)}); give each recording "
                         "a distinct file or folder name")
    root = Path(output_root).expanduser().absolute()
    options = dict(params_file=params_file, overwrite_params=overwrite_params, preset=preset,
                   params=params.model_dump(),
                   experiment=experiment, tracking_uri=tracking_uri, dask_address=dask_address, nwb=nwb,
                   nwb_metadata=nwb_metadata)
    futures = [extract_recording.submit(movies, str(root / name), options) for movies, name in zip(recordings, names)]
    rows = []
    for name, future in zip(names, futures):
        try:
            report = future.result()
            rows.append({"recording": name, "state": "done", "n_components": report.n_components,
                         "output_dir": str(report.output_dir), "error": ""})
        except Exception as err:  # noqa: BLE001 - one recording failing must not hide the others
            get_run_logger().error("recording %s failed: %s", name, err)
            rows.append({"recording": name, "state": "failed", "n_components": None, "output_dir": "",
                         "error": f"{type(err).__name__}: {err}"})
    create_table_artifact(rows, key="batch-extraction", description=f"{len(rows)} recordings under {root}")
    if all(row["state"] == "failed" for row in rows):
        raise RuntimeError(f"every one of the {len(rows)} recordings failed; see the child runs")
    return rows


def with_dask(flow_object, address: str):
    """The flow with its tasks on the Dask scheduler at ``address`` (prefect-dask's task runner)."""
    from prefect_dask import DaskTaskRunner

    return flow_object.with_options(task_runner=DaskTaskRunner(address=address))
