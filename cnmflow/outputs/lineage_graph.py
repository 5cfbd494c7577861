"""``lineage.svg`` / ``lineage.png``: input files → run → outputs, drawn for people.

Prefect's open-source UI records asset events but draws no asset graph, so each output folder
carries its own picture of where its files came from (the manifest holds the same facts as data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from cnmflow.outputs.figures import new_figure, save_figure

MAX_LISTED = 14
_BOX = dict(boxstyle="round,pad=0.02", linewidth=1.0)


def _short(text: str, width: int = 52) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _column(ax, x: float, title: str, lines: Sequence[str], color: str) -> tuple[float, float]:
    """A titled box of text lines centred at ``x``; returns its left and right edges."""
    shown = list(lines[:MAX_LISTED])
    if len(lines) > MAX_LISTED:
        shown.append(f"… and {len(lines) - MAX_LISTED} more")
    height = 0.1 + 0.055 * (len(shown) + 1)
    width = 0.25
    bottom = 0.5 - height / 2
    ax.add_patch(FancyBboxPatch((x - width / 2, bottom), width, height, facecolor=color, edgecolor="0.3", **_BOX))
    ax.text(x, bottom + height - 0.045, title, ha="center", va="top", fontsize=9, weight="bold")
    for row, line in enumerate(shown):
        ax.text(x - width / 2 + 0.012, bottom + height - 0.11 - 0.055 * row, line, ha="left", va="top",
                fontsize=7, family="monospace")
    return x - width / 2, x + width / 2


def lineage_graph(stem: Path, *, inputs: Sequence[Mapping], run: Mapping[str, str | None],
                  outputs: Sequence[str]) -> list[Path]:
    """Draw the lineage of one output folder; ``inputs`` are manifest input records.

    ``run`` holds the lines shown in the middle box (fingerprint, code version, run ids).
    """
    fig = new_figure(13.0, 4.2)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    input_lines = [f"{_short(Path(rec['path']).name, 34)}  {rec['sha256'][:10]}  {rec['n_frames']} fr"
                   for rec in inputs]
    run_lines = [f"{name}: {_short(str(value), 38)}" for name, value in run.items() if value]
    _, in_right = _column(ax, 0.17, f"inputs ({len(inputs)})", input_lines, "#dbe9f6")
    run_left, run_right = _column(ax, 0.5, "run", run_lines, "#fdebd0")
    out_left, _ = _column(ax, 0.83, f"outputs ({len(outputs)})", sorted(outputs), "#dff0d8")
    for start, end in ((in_right, run_left), (run_right, out_left)):
        ax.add_patch(FancyArrowPatch((start + 0.005, 0.5), (end - 0.005, 0.5), arrowstyle="-|>",
                                     mutation_scale=14, color="0.25"))
    return save_figure(fig, stem)
