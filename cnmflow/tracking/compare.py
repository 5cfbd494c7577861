"""Comparison rows -- varied parameters, K, accepted count, median SNR, runtime -- and their table.

The same row comes from an output folder (:func:`folder_row`, used when a sweep finishes) or
from a logged run (:func:`run_row`, used by ``cnmflow compare``), so the table a sweep logs
and the one read back from MLflow agree.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from cnmflow.errors import InputError
from cnmflow.params import PARAM_NAMES
from cnmflow.tracking.errors import TrackingError
from cnmflow.tracking.folder import FolderRecord
from cnmflow.tracking.params import param_key, parse_param_value
from cnmflow.tracking.store import connect, reported
from cnmflow.tracking.uri import sqlite_path

#: Result columns of a comparison row, after the varied parameters.
RESULT_COLUMNS = ("n_components", "n_accepted", "n_rejected", "snr_median", "runtime_s")
#: Columns that are counts (MLflow stores every metric as a float).
_COUNTS = frozenset({"n_components", "n_accepted", "n_rejected"})
#: Tag marking a sweep's parent run (it has no outputs of its own).
KIND_TAG = "cnmflow.kind"
SWEEP_KIND = "sweep"
GRID_PREFIX = "grid."
#: Tag of a sweep's parent run: the grid's parameter names, comma-separated, in the grid's order.
VARIED_TAG = "cnmflow.sweep.varied"

_RUN_ID = re.compile(r"[0-9a-f]{32}")


def folder_row(record: FolderRecord, varied: Sequence[str]) -> dict[str, Any]:
    """The comparison row of an output folder; the run id is the one recorded in its manifest."""
    values = record.params.model_dump()
    return _row(run_id=record.manifest.get("run_ids", {}).get("mlflow_run_id"),
                varied={name: values[name] for name in varied},
                metrics=record.metrics, output_dir=str(record.output_dir))


def run_row(run: Run, varied: Sequence[str]) -> dict[str, Any]:
    """The comparison row of a logged run."""
    params = run.data.params
    return _row(run_id=run.info.run_id,
                varied={name: parse_param_value(params.get(param_key(name))) for name in varied},
                metrics=run.data.metrics, output_dir=run.data.tags.get("cnmflow.output_dir"))


def _row(*, run_id, varied: Mapping[str, Any], metrics: Mapping[str, float], output_dir) -> dict[str, Any]:
    row: dict[str, Any] = dict(varied)
    for column in RESULT_COLUMNS:
        value = metrics.get(column)
        row[column] = int(value) if value is not None and column in _COUNTS else value
    row["run_id"] = run_id
    row["output_dir"] = output_dir
    return row


def comparison_rows(run_id_or_experiment: str, *, tracking_uri: str) -> list[dict[str, Any]]:
    """The comparison read back from MLflow, oldest run first.

    A run id gives the rows of its children (a sweep's combinations, varied = the grid's
    parameters), or the run's own row when it has none; an experiment name gives every run of
    the experiment that describes an output folder (varied = parameters that differ).
    TrackingError when neither exists or the store cannot be read; InputError when a sqlite store's file does not
    exist (opening it would create an empty store in whatever folder the command ran from).
    """
    store = sqlite_path(tracking_uri)
    if store is not None and not store.is_file():
        raise InputError(f"no MLflow store at {store}: no run was tracked there; give the store `cnmflow track` "
                         "printed with --tracking-uri, or run from the folder that holds mlflow.db")
    with reported(tracking_uri):
        client = connect(tracking_uri)
        parent = _find_run(client, run_id_or_experiment)
        if parent is not None:
            children = _search(client, [parent.info.experiment_id],
                               f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'")
            runs = children or [parent]
            varied = _grid_names(parent) if children else []
        else:
            experiment = client.get_experiment_by_name(run_id_or_experiment)
            if experiment is None:
                raise TrackingError(
                    f"{run_id_or_experiment!r} is neither a run id nor an experiment name at {tracking_uri}; "
                    "give a run id printed by `cnmflow track` / a sweep, or an experiment name (check "
                    "--tracking-uri)")
            runs = [run for run in _search(client, [experiment.experiment_id], "")
                    if run.data.tags.get(KIND_TAG) != SWEEP_KIND]
            varied = differing_params(runs)
    return [run_row(run, varied) for run in runs]


def differing_params(runs: Iterable[Run]) -> list[str]:
    """Parameters (by name, table order) whose logged values are not the same in every run."""
    runs = list(runs)
    return [name for name in PARAM_NAMES
            if len({run.data.params.get(param_key(name)) for run in runs}) > 1]


def _grid_names(parent: Run) -> list[str]:
    """The sweep's parameters in the grid's order (tag), else in table order (``grid.*`` params)."""
    tagged = [name for name in parent.data.tags.get(VARIED_TAG, "").split(",") if name in PARAM_NAMES]
    grid = {key[len(GRID_PREFIX):] for key in parent.data.params if key.startswith(GRID_PREFIX)}
    return tagged or [name for name in PARAM_NAMES if name in grid]


def _find_run(client: MlflowClient, text: str) -> Run | None:
    if not _RUN_ID.fullmatch(text):
        return None
    try:
        return client.get_run(text)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _search(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


# ---------------------------------------------------------------------------------------- text

def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every column of ``rows``, in the order first seen."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


#: How a table shows a value that was not measured (e.g. ``n_accepted`` when nothing was evaluated).
MISSING = "—"


def cell_text(value: Any) -> str:
    """A value as a table shows it: floats to 4 significant digits (the metrics keep every digit),
    None as MISSING."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def display_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``rows`` as text cells (:func:`cell_text`), for tables a person reads (Prefect's table artifact)."""
    return [{column: cell_text(value) for column, value in row.items()} for row in rows]


def markdown_table(rows: Sequence[Mapping[str, Any]], *, links: Mapping[str, str] | None = None) -> str:
    """``rows`` as a Markdown table (e.g. a sweep parent's MLflow description); ``run_id`` cells are
    shortened and, when ``links`` has the id, link to the run's page."""
    columns = [column for column in columns_of(rows) if column != "output_dir"]
    if not columns:
        return "(no runs to compare)\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_markdown_cell(column, row.get(column), links or {}) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown_cell(column: str, value: Any, links: Mapping[str, str]) -> str:
    if column == "run_id" and value:
        short = str(value)[:8]
        return f"[{short}]({links[value]})" if value in links else short
    return cell_text(value).replace("|", "\\|")


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as a fixed-width text table (for ``cnmflow compare``)."""
    if not rows:
        return "(no runs to compare)\n"
    columns = columns_of(rows)
    cells = [[cell_text(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths)),
             "  ".join("-" * width for width in widths)]
    lines += ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in cells]
    return "\n".join(lines) + "\n"
