"""What every preview figure shares: a pyplot-free figure, SVG + PNG saving, display limits.

Matplotlib's object-oriented API only (``Figure`` + ``FigureCanvasAgg``), never pyplot: no
global figure registry, nothing left open, safe in worker threads. Each figure is cleared
after saving. Files are written under a temporary name and renamed into place
(:func:`cnmflow.atomic_write.atomic_path`); if the PNG fails after the SVG was written, the
SVG is removed again, so a preview is either complete or absent.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnmflow.atomic_write import atomic_path, temporary_glob

__all__ = ["PNG_DPI", "preview_paths", "new_figure", "save_figure", "copy_preview", "remove_preview",
           "display_limits"]

#: resolution of the PNG copies
PNG_DPI = 120


def _unheld_render_lock() -> None:
    """In a forked child: a new ``Figure._render_lock``. Matplotlib draws every figure of a process under this one
    class-wide lock; a thread drawing when another forks (two exports of a sweep at once, one forking its
    previews' process) leaves the child a copy held by a thread the child does not have, and the child's first
    draw would wait for it forever (the export killed it after 30 s and drew its previews itself)."""
    Figure._render_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_unheld_render_lock)


def preview_paths(stem: Path) -> tuple[Path, Path]:
    """``(<stem>.svg, <stem>.png)`` for a stem (a trailing ``.svg``/``.png`` is dropped)."""
    stem = Path(stem)
    if stem.suffix.lower() in (".svg", ".png"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".svg"), stem.with_name(stem.name + ".png")


def new_figure(width: float, height: float) -> Figure:
    """A ``width`` x ``height`` inch figure with constrained layout, drawn by Agg (no pyplot)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``fig`` as SVG then PNG (each atomically); remove both if either fails; clear fig."""
    svg, png = preview_paths(stem)
    try:
        with atomic_path(svg, suffix=".svg") as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None})
        # the layout is now fixed (in figure fractions): do not compute it a second time
        fig.set_layout_engine("none")
        with atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=PNG_DPI)
    except BaseException:
        svg.unlink(missing_ok=True)
        png.unlink(missing_ok=True)
        raise
    finally:
        fig.clear()
    return [svg, png]


def copy_preview(stem: Path, source: Path) -> list[Path]:
    """Write ``source``'s SVG and PNG again under ``stem`` (each atomically), for a figure that would be
    drawn the same: drawing costs ~0.2-0.5 s of CPU per file, copying a few milliseconds."""
    written: list[Path] = []
    try:
        for original, path in zip(preview_paths(source), preview_paths(stem)):
            with atomic_path(path, suffix=path.suffix) as tmp:
                shutil.copyfile(original, tmp)
            written.append(path)
    except BaseException:
        for path in preview_paths(stem):
            path.unlink(missing_ok=True)
        raise
    return written


def remove_preview(stem: Path) -> None:
    """Delete a preview's SVG and PNG and any temporary file a killed writer left of them."""
    for path in preview_paths(stem):
        path.unlink(missing_ok=True)
        for leftover in path.parent.glob(temporary_glob(path, suffix=path.suffix)):
            leftover.unlink(missing_ok=True)


def display_limits(image: np.ndarray, *, low: float | None = None, upper_pct: float = 99.8) -> tuple[float, float]:
    """Display range: min (or ``low``) to a high percentile, so one hot pixel does not wash out the rest."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin = float(finite.min()) if low is None else float(low)
    vmax = float(np.percentile(finite, upper_pct))
    if not vmax > vmin:
        vmax = float(finite.max())
    if not vmax > vmin:
        vmax = vmin + 1.0
    return vmin, vmax
