"""Images a sweep logs: the comparison table, and the footprint previews side by side.

Drawn on :class:`matplotlib.figure.Figure` directly (no pyplot): no global backend or figure
registry, so it is safe in Prefect's worker threads and on machines without a display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.image
from matplotlib.figure import Figure

from cnmflow.tracking.compare import cell_text, columns_of

#: Columns left out of the table image (long, and in the CSV anyway).
_IMAGE_SKIP = ("output_dir",)
_RUN_ID_CHARS = 8
_SHEET_COLUMNS = 4


def table_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """The comparison rows as a table image (run ids shortened)."""
    columns = [column for column in columns_of(rows) if column not in _IMAGE_SKIP]
    cells = [[_short(column, row.get(column)) for column in columns] for row in rows] or [["-"] * len(columns)]
    figure = Figure(figsize=(min(2.0 + 1.3 * len(columns), 24.0), 0.6 + 0.28 * (len(cells) + 1)))
    axes = figure.add_subplot()
    axes.axis("off")
    table = axes.table(cellText=cells, colLabels=columns, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    if title:
        axes.set_title(title, fontsize=9)
    return figure


def contact_sheet(images: Sequence[tuple[str, Path | None]], *, title: str = "") -> Figure:
    """Images side by side (``_SHEET_COLUMNS`` a row), each labelled; a missing one says so."""
    n = max(len(images), 1)
    n_cols = min(n, _SHEET_COLUMNS)
    n_rows = math.ceil(n / n_cols)
    figure = Figure(figsize=(3.2 * n_cols, 3.4 * n_rows + (0.4 if title else 0.0)))
    for index, (label, path) in enumerate(images):
        axes = figure.add_subplot(n_rows, n_cols, index + 1)
        axes.axis("off")
        axes.set_title(label, fontsize=8)
        if path is not None and Path(path).is_file():
            axes.imshow(matplotlib.image.imread(str(path)))
        else:
            axes.text(0.5, 0.5, "no preview", ha="center", va="center", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _short(column: str, value: Any) -> str:
    text = cell_text(value)
    return text[:_RUN_ID_CHARS] if column == "run_id" else text
