"""Parameter sweeps in MLflow: a parent run holding the grid, one child run per combination.

The orchestration (which combinations run where) belongs to the Prefect flow; this module
only opens the parent (:func:`start_sweep_run`), and closes it with the comparison of the
children's output folders (:func:`finish_sweep`).  Children are logged with
``log_output_folder(folder, parent_run_id=...)``, which tags them ``mlflow.parentRunId``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping, Sequence

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from cnmflow.errors import ParameterError
from cnmflow.params import PARAM_NAMES
from cnmflow.tracking.compare import (GRID_PREFIX, KIND_TAG, MISSING, SWEEP_KIND, VARIED_TAG, columns_of, folder_row,
                                      format_table, markdown_table)
from cnmflow.tracking.figures import contact_sheet, table_figure
from cnmflow.outputs.names import FOOTPRINTS_PREVIEW
from cnmflow.tracking.folder import read_folder
from cnmflow.tracking.params import param_key, param_text, values_label
from cnmflow.tracking.store import connect, experiment_id, log_image_file, reported, show_params_in_runs_view
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT

COMPARISON_CSV = "sweep/comparison.csv"
COMPARISON_PNG = "sweep/comparison.png"
CONTACT_SHEET_PNG = "sweep/footprints_contact_sheet.png"
SWEEP_ARTIFACT_DIR = "sweep"
GRID_JSON = "sweep/grid.json"
#: The comparison images also logged as MLflow images (the parent's page and the compare view show those).
IMAGE_KEYS = {PurePosixPath(COMPARISON_PNG).name: "comparison",
              PurePosixPath(CONTACT_SHEET_PNG).name: "footprints_contact_sheet"}
END_STATUSES = tuple(RunStatus.to_string(status) for status in (RunStatus.FINISHED, RunStatus.FAILED,
                                                                RunStatus.KILLED))


@dataclass(frozen=True)
class Comparison:
    """One row per combination: the varied parameters, K, accepted count, median SNR, runtime."""

    parent_run_id: str
    varied: list[str]
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> list[str]:
        return columns_of(self.rows)

    def csv(self) -> str:
        """The rows as CSV (empty cells for missing values)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def table(self) -> str:
        """The rows as a fixed-width text table."""
        return format_table(self.rows)


def start_sweep_run(
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str,
    grid: Mapping[str, Sequence[Any]],
    base_params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    run_name: str | None = None,
) -> str:
    """Open the parent run of a sweep over ``grid`` (parameter name → values); returns its id.

    The grid is logged as ``grid.<name>`` params and ``sweep/grid.json``, the values every
    combination shares as ``base.<name>``.  The run stays open until :func:`finish_sweep`.
    ParameterError for an unknown parameter or an empty list of values; TrackingError when
    MLflow cannot be reached.
    """
    grid = _checked_grid(grid)
    base = dict(base_params or {})
    n_combinations = math.prod(len(values) for values in grid.values())
    params = {f"{GRID_PREFIX}{name}": values for name, values in grid.items()}
    params.update({f"base.{name}": value for name, value in base.items()})
    params["sweep.n_combinations"] = n_combinations
    run_tags = {KIND_TAG: SWEEP_KIND, VARIED_TAG: ",".join(grid), **{str(key): str(value) for key, value in (tags or {}).items()}}
    with reported(tracking_uri):
        client = connect(tracking_uri)
        experiment_key = experiment_id(client, experiment, tracking_uri)
        show_params_in_runs_view(client, experiment_key, [param_key(name) for name in grid])
        run = client.create_run(experiment_key, run_name=run_name or "sweep " + " × ".join(grid), tags=run_tags)
        client.log_batch(run.info.run_id, params=[Param(key, param_text(value)) for key, value in params.items()])
        client.log_dict(run.info.run_id, {"grid": grid, "base_params": base}, GRID_JSON)
    return run.info.run_id


def finish_sweep(
    parent_run_id: str,
    *,
    tracking_uri: str,
    children: Sequence[tuple[Mapping[str, Any], str | os.PathLike]],
    status: str = "FINISHED",
) -> Comparison:
    """Compare the children's output folders and close the parent run.

    ``children`` are (combination, output folder) pairs of the combinations that finished.
    The comparison is logged to the parent as CSV and as a table image, with a contact sheet
    of the footprint previews labelled by the varied values, and as the parent's description;
    the rows are returned (e.g. for a Prefect table artifact).  ``status`` closes the parent
    ("FAILED" when combinations failed and are missing from ``children``).  TrackingError when
    MLflow cannot be reached.
    """
    _check_status(status)
    comparison, sheet = compare_children(children, parent_run_id=parent_run_id)
    with tempfile.TemporaryDirectory(prefix="cnmflow-sweep-") as scratch:
        files = write_comparison(comparison, sheet, scratch)
        log_comparison(parent_run_id, files, tracking_uri=tracking_uri, n_children=len(children), status=status,
                       comparison=comparison)
    return comparison


def log_comparison(parent_run_id: str, files: Sequence[Path], *, tracking_uri: str, n_children: int,
                   status: str = "FINISHED", comparison: Comparison | None = None, n_failed: int = 0) -> None:
    """Log the files of :func:`write_comparison` under ``sweep/`` in the parent run, and close it.

    The images are also logged as MLflow images, and ``comparison`` (when given) becomes the
    parent's description (``mlflow.note.content``), which its overview shows.
    """
    _check_status(status)
    with reported(tracking_uri):
        client = connect(tracking_uri)
        for path in files:
            client.log_artifact(parent_run_id, str(path), SWEEP_ARTIFACT_DIR)
        now = int(time.time() * 1000)
        _log_images(client, parent_run_id, files, logged_at=now)
        if comparison is not None:
            client.set_tag(parent_run_id, MLFLOW_RUN_NOTE, sweep_description(
                comparison, experiment_id=client.get_run(parent_run_id).info.experiment_id, n_failed=n_failed))
        client.log_batch(parent_run_id, metrics=[Metric("n_children", float(n_children), now, 0)])
        client.set_terminated(parent_run_id, status)


def _log_images(client: MlflowClient, run_id: str, files: Sequence[Path], *, logged_at: int) -> None:
    for path in files:
        key = IMAGE_KEYS.get(Path(path).name)
        if key is not None:
            log_image_file(client, run_id, path, key=key, logged_at=logged_at)


def sweep_description(comparison: Comparison, *, experiment_id: str, n_failed: int = 0) -> str:
    """The parent run's description: what was varied, the comparison table (child runs linked), the files."""
    varied = " × ".join(comparison.varied) or "nothing"
    failed = f", {n_failed} failed" if n_failed else ""
    links = {row["run_id"]: f"#/experiments/{experiment_id}/runs/{row['run_id']}"
             for row in comparison.rows if row.get("run_id")}
    lines = [markdown_table(comparison.rows, links=links),
             f"**Sweep over {varied}**: {len(comparison.rows)} combinations compared{failed}.",
             f"{MISSING}: not measured (n_accepted needs `evaluate`).  Full precision in the runs' metrics and "
             f"`{COMPARISON_CSV}`; footprints side by side in `{CONTACT_SHEET_PNG}`."]
    return "\n".join(lines)


def end_sweep_run(parent_run_id: str, *, tracking_uri: str, status: str = "FAILED") -> None:
    """Close the parent run without a comparison (every combination failed: nothing to compare)."""
    _check_status(status)
    with reported(tracking_uri):
        client = connect(tracking_uri)
        client.log_batch(parent_run_id, metrics=[Metric("n_children", 0.0, int(time.time() * 1000), 0)])
        client.set_terminated(parent_run_id, status)


def _check_status(status: str) -> None:
    if status not in END_STATUSES:
        raise ValueError(f"status={status!r}: a sweep ends as one of {', '.join(END_STATUSES)}")


def compare_children(children: Sequence[tuple[Mapping[str, Any], str | os.PathLike]], *,
                     parent_run_id: str = "") -> tuple[Comparison, list[tuple[str, Path]]]:
    """The comparison of finished combinations' folders, and their (label, footprint preview) pairs."""
    varied = [name for name in columns_of(combination for combination, _ in children) if name in PARAM_NAMES]
    records = [(combination, read_folder(folder)) for combination, folder in children]
    comparison = Comparison(parent_run_id=parent_run_id, varied=varied,
                            rows=[folder_row(record, varied) for _, record in records])
    sheet = [(panel_title(combination, varied, record.metrics.get("n_components")), record.output_dir / FOOTPRINTS_PREVIEW)
             for combination, record in records]
    return comparison, sheet


def write_comparison(comparison: Comparison, sheet: Sequence[tuple[str, Path]], folder: str | os.PathLike) -> list[Path]:
    """``comparison.csv``, ``comparison.png`` and ``footprints_contact_sheet.png`` in ``folder``.

    The sweep's own folder holds the comparison too, for users who never open MLflow; the
    same files are what the parent run gets.
    """
    folder = Path(folder)
    run = f" {comparison.parent_run_id[:8]}" if comparison.parent_run_id else ""
    title = f"sweep{run}: " + ", ".join(comparison.varied)
    csv_path, table_path, sheet_path = (folder / PurePosixPath(name).name
                                        for name in (COMPARISON_CSV, COMPARISON_PNG, CONTACT_SHEET_PNG))
    csv_path.write_text(comparison.csv(), encoding="utf-8")
    table_figure(comparison.rows, title=title).savefig(table_path, dpi=110)
    contact_sheet(sheet, title=title).savefig(sheet_path, dpi=110)
    return [csv_path, table_path, sheet_path]


def _checked_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    unknown = sorted(set(grid) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError(f"sweep grid: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAM_NAMES)}")
    checked = {}
    for name, values in grid.items():
        values = [values] if isinstance(values, (str, bytes)) else list(values)
        if not values:
            raise ParameterError(f"sweep grid: {name} has no values; give at least one")
        checked[name] = values
    return checked


def panel_title(combination: Mapping[str, Any], varied: Sequence[str], n_components: float | None) -> str:
    """A contact-sheet panel's title: the varied values, then K (the counts inside a preview are too small to read)."""
    label = values_label({name: combination.get(name) for name in varied})
    count = MISSING if n_components is None else f"{int(n_components)}"
    return f"{label}\nK = {count} components"
