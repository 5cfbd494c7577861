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

from cnmflow.errors import ParameterError
from cnmflow.params import PARAM_NAMES
from cnmflow.tracking.compare import GRID_PREFIX, KIND_TAG, SWEEP_KIND, VARIED_TAG, columns_of, folder_row, format_table
from cnmflow.tracking.figures import contact_sheet, table_figure
from cnmflow.outputs.names import FOOTPRINTS_PREVIEW
from cnmflow.tracking.folder import read_folder
from cnmflow.tracking.params import param_text
from cnmflow.tracking.store import connect, experiment_id, reported
from cnmflow.tracking.uri import DEFAULT_EXPERIMENT

COMPARISON_CSV = "sweep/comparison.csv"
COMPARISON_PNG = "sweep/comparison.png"
CONTACT_SHEET_PNG = "sweep/footprints_contact_sheet.png"
SWEEP_ARTIFACT_DIR = "sweep"
GRID_JSON = "sweep/grid.json"
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
        run = client.create_run(experiment_id(client, experiment, tracking_uri),
                                run_name=run_name or "sweep " + " × ".join(grid), tags=run_tags)
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
    of the footprint previews labelled by the varied values; the rows are returned (e.g. for
    a Prefect table artifact).  ``status`` closes the parent ("FAILED" when combinations
    failed and are missing from ``children``).  TrackingError when MLflow cannot be reached.
    """
    _check_status(status)
    comparison, sheet = compare_children(children, parent_run_id=parent_run_id)
    with tempfile.TemporaryDirectory(prefix="cnmflow-sweep-") as scratch:
        files = write_comparison(comparison, sheet, scratch)
        log_comparison(parent_run_id, files, tracking_uri=tracking_uri, n_children=len(children), status=status)
    return comparison


def log_comparison(parent_run_id: str, files: Sequence[Path], *, tracking_uri: str, n_children: int,
                   status: str = "FINISHED") -> None:
    """Log the files of :func:`write_comparison` under ``sweep/`` in the parent run, and close it."""
    _check_status(status)
    with reported(tracking_uri):
        client = connect(tracking_uri)
        for path in files:
            client.log_artifact(parent_run_id, str(path), SWEEP_ARTIFACT_DIR)
        client.log_batch(parent_run_id, metrics=[Metric("n_children", float(n_children), int(time.time() * 1000), 0)])
        client.set_terminated(parent_run_id, status)


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
    sheet = [(_label(combination, varied), record.output_dir / FOOTPRINTS_PREVIEW) for combination, record in records]
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


def _label(combination: Mapping[str, Any], varied: Sequence[str]) -> str:
    return ", ".join(f"{name}={combination.get(name)}" for name in varied)
