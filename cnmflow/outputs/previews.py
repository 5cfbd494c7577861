"""Preview figures of a run: initialization images, footprints, traces and events.

Every function takes a *stem* (``out / "traces_cellset_raw.000"``) and writes the same figure
twice, ``<stem>.svg`` (the file name users of the reference tool expect) and ``<stem>.png``
(for quick viewing, MLflow artifacts and reports), and returns ``[svg, png]``. A stem that
already ends in ``.svg`` or ``.png`` has that suffix dropped; other dots are kept
(``.000`` is part of the name, not a suffix).

Implementation notes

* Figures are made and saved by :mod:`cnmflow.outputs.figures` (no pyplot; SVG and PNG
  written atomically: a preview is either complete or absent).
* An empty result is drawn explicitly: ``footprints_preview``, ``traces_preview`` and
  ``events_preview`` with K = 0 (or no frames) write :func:`no_cells_image` at their own stem,
  so callers never need a special case. Callers may also call :func:`no_cells_image` directly.
* Large K: footprints are read column by column from the sparse matrix (never densified),
  their outlines traced with ``contourpy`` and drawn as one ``LineCollection``; long traces are
  reduced to a min/max envelope of at most ``_MAX_POINTS`` points; rasters with many events
  are rasterized inside the SVG.
* :func:`safe_preview` wraps any of these so a failing preview never fails a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import contourpy
import numpy as np
import scipy.sparse as sp
from matplotlib import patheffects
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from cnmflow.outputs.figures import display_limits, new_figure, remove_preview, save_figure
from cnmflow.pixel_order import column_to_image, pixel_position

__all__ = [
    "initialization_images",
    "footprints_preview",
    "traces_preview",
    "events_preview",
    "no_cells_image",
    "safe_preview",
    "STATUS_COLORS",
    "MAX_TRACE_CELLS",
]

log = logging.getLogger(__name__)

#: default number of cells in a traces preview
MAX_TRACE_CELLS = 20
#: at most this many points are drawn per trace (min/max envelope beyond)
_MAX_POINTS = 4000
#: rasters with more events than this are rasterized inside the SVG
_RASTERIZE_EVENTS = 2000

#: contour colours by isxd cell status
STATUS_COLORS = {
    "accepted": "#2ecc40",   # green
    "rejected": "#ff4136",   # red
    "undecided": "#ffdc00",  # yellow
}
_PALETTE = ("#ffdc00", "#39cccc", "#ff851b", "#f012be", "#2ecc40", "#7fdbff",
            "#ff4136", "#b10dc9", "#01ff70", "#ffffff")
_TRACE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                 "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


# --------------------------------------------------------------------------------------------
# checks and shared drawing
# --------------------------------------------------------------------------------------------

def _check_image(name: str, image, dims: tuple[int, int] | None = None) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"{name} must be a non-empty (rows, cols) image, got shape {image.shape}")
    if dims is not None and image.shape != tuple(dims):
        raise ValueError(f"{name} has shape {image.shape}, but the footprints have dims {tuple(dims)}")
    return image


def _check_fr(fr: float) -> float:
    fr = float(fr)
    if not np.isfinite(fr) or fr <= 0:
        raise ValueError(f"fr must be a positive frame rate in Hz, got {fr}")
    return fr


def _cells_by_frames(name: str, values) -> np.ndarray:
    """A (cells, frames) array; one trace may come as a 1-D array."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2:
        raise ValueError(f"{name} must be (cells, frames), got shape {values.shape}")
    return values


def _check_names(names: Sequence[str], k: int) -> list[str]:
    names = [str(n) for n in names]
    if len(names) != k:
        raise ValueError(f"got {len(names)} cell names for {k} cells")
    return names


def _boundary_labels(boundaries: Sequence[float], t0: float) -> list[str]:
    """'movie 000', 'movie 001' … ; when the first boundary is after the start, it starts movie 001."""
    first = 0 if boundaries and boundaries[0] <= t0 + 1e-9 else 1
    return [f"movie {first + i:03d}" for i in range(len(boundaries))]


def _draw_boundaries(ax, boundaries: Sequence[float], *, labels: bool, t0: float = 0.0) -> None:
    texts = _boundary_labels(boundaries, t0)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for b, text in zip(boundaries, texts):
        ax.axvline(b, linestyle="--", color="0.35", linewidth=0.9, zorder=0.5)
        if labels:
            ax.text(b, 1.0, f" {text}", transform=trans, ha="left", va="bottom",
                    fontsize=7, color="0.25", clip_on=False)


# --------------------------------------------------------------------------------------------
# no cells
# --------------------------------------------------------------------------------------------

def no_cells_image(stem: Path, *, message: str = "No cells found") -> list[Path]:
    """An explicit figure for an empty result (a message in a framed box); returns ``[svg, png]``."""
    fig = new_figure(6.0, 3.0)
    ax = fig.add_subplot()
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=18, color="0.2",
            transform=ax.transAxes, wrap=True)
    return save_figure(fig, stem)


# --------------------------------------------------------------------------------------------
# initialization images
# --------------------------------------------------------------------------------------------

def initialization_images(stem: Path, *, pnr: np.ndarray, correlation: np.ndarray,
                          title_suffix: str = "") -> list[Path]:
    """PNR image, correlation image and search image (correlation × PNR), side by side.

    ``title_suffix`` is appended to the figure title (e.g. ``"(gSig = 3)"``). The colour
    range of each panel runs from its minimum (0 for PNR and the search image) to its 99.8th
    percentile.
    """
    pnr = _check_image("pnr", pnr)
    correlation = _check_image("correlation", correlation, pnr.shape)
    search = correlation * pnr
    rows, cols = pnr.shape
    panel_w = 4.0
    panel_h = float(np.clip(panel_w * rows / cols, 1.5, 8.0))
    fig = new_figure(3 * panel_w + 0.6, panel_h + 0.9)
    try:
        axes = fig.subplots(1, 3)
        panels = (
            (pnr, "Peak-to-noise ratio (PNR)", "PNR", 0.0),
            (correlation, "Local correlation", "correlation", None),
            (search, "Search image (correlation × PNR)", "correlation × PNR", 0.0),
        )
        for ax, (image, title, label, low) in zip(axes, panels):
            vmin, vmax = display_limits(image, low=low)
            im = ax.imshow(image, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.85, label=label)
        fig.suptitle(f"Initialization images {title_suffix}".strip(), fontsize=12)
    except BaseException:
        fig.clear()
        raise
    return save_figure(fig, stem)


# --------------------------------------------------------------------------------------------
# footprints
# --------------------------------------------------------------------------------------------

def _outline(indices: np.ndarray, values: np.ndarray, dims: tuple[int, int], energy: float):
    """Outline (list of (N, 2) x/y arrays in image coordinates) and centre of one footprint.

    The outline encloses the largest pixels that hold ``energy`` of the footprint's squared
    sum (CaImAn's "nrg" contour); it runs halfway between included and excluded values.
    """
    keep = values > 0
    indices, values = indices[keep], values[keep]
    if values.size == 0:
        return [], None
    r, c = pixel_position(indices, dims)
    centre = (float(np.average(c, weights=values)), float(np.average(r, weights=values)))
    ordered = np.sort(values)[::-1]
    cum = np.cumsum(ordered ** 2)
    n = int(np.searchsorted(cum, energy * cum[-1]))
    n = min(n, ordered.size - 1)
    below = ordered[n + 1] if n + 1 < ordered.size else 0.0
    level = 0.5 * (ordered[n] + below)
    r0, c0 = r.min(), c.min()
    patch = np.zeros((r.max() - r0 + 3, c.max() - c0 + 3))
    np.maximum.at(patch, (r - r0 + 1, c - c0 + 1), values)  # duplicates: keep the larger
    lines = contourpy.contour_generator(z=patch, line_type="Separate").lines(level)
    offset = np.array([c0 - 1, r0 - 1], dtype=np.float64)
    return [np.asarray(line) + offset for line in lines if len(line) > 1], centre


def _check_statuses(statuses: Sequence[str] | None, k: int) -> list[str] | None:
    if statuses is None:
        return None
    statuses = [str(s).lower() for s in statuses]
    if len(statuses) != k:
        raise ValueError(f"got {len(statuses)} statuses for {k} cells")
    return statuses


def _footprints_background(estimates, A: sp.csc_matrix, background, dims: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The image under the outlines and its colour-bar label: ``background``, else ``Cn``, else max of footprints."""
    if background is None:
        background = getattr(estimates, "Cn", None)
    if background is None:
        maxproj = A.max(axis=1)  # sparse (pixels, 1)
        background = column_to_image(np.asarray(maxproj.todense()), dims)
        bg_label = "max of footprints"
    else:
        bg_label = "local correlation"
    return _check_image("background", background, dims), bg_label


def _footprint_outlines(A: sp.csc_matrix, dims: tuple[int, int], energy: float, statuses: list[str] | None,
                        names: list[str]) -> tuple[list[np.ndarray], list[str], list[tuple[float, float, str, str]]]:
    """Outline segments with their colours, and one (x, y, name, colour) label per drawn footprint."""
    segments: list[np.ndarray] = []
    colours: list[str] = []
    labels: list[tuple[float, float, str, str]] = []
    for i in range(A.shape[1]):
        start, end = A.indptr[i], A.indptr[i + 1]
        lines, centre = _outline(A.indices[start:end], np.asarray(A.data[start:end], np.float64), dims, energy)
        if statuses is not None:
            colour = STATUS_COLORS.get(statuses[i], "#ffffff")
        else:
            colour = _PALETTE[i % len(_PALETTE)]
        segments.extend(lines)
        colours.extend([colour] * len(lines))
        if centre is not None:
            labels.append((centre[0], centre[1], names[i], colour))
    return segments, colours, labels


def _status_legend(fig, statuses: list[str], k: int) -> None:
    """Counts per status (and of any other status) in a legend below the image."""
    handles = []
    for status, colour in STATUS_COLORS.items():
        count = statuses.count(status)
        if count:
            handles.append(Line2D([], [], color=colour, linewidth=2, label=f"{status} ({count})"))
    others = k - sum(statuses.count(s) for s in STATUS_COLORS)
    if others:
        handles.append(Line2D([], [], color="#ffffff", linewidth=2, label=f"other ({others})"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)


def footprints_preview(stem: Path, estimates, *, statuses: Sequence[str] | None = None,
                       background: np.ndarray | None = None, names: Sequence[str] | None = None,
                       title: str = "", energy: float = 0.9) -> list[Path]:
    """Outline of every footprint over the correlation image, each labelled with its cell name.

    * ``background``: the image under the outlines; default ``estimates.Cn``, and when that is
      missing, the maximum projection of the footprints (computed on the sparse matrix).
    * ``statuses``: one of ``accepted``/``rejected``/``undecided`` per cell; outlines are then
      coloured green/red/yellow and a legend gives the counts. Without statuses, colours cycle
      through a palette so that neighbouring cells can be told apart.
    * ``names``: cell names, default ``C000``, ``C001``, …
    * outlines enclose the pixels holding ``energy`` (0.9) of each footprint's squared sum.

    K = 0 writes :func:`no_cells_image`. Footprints are read one column at a time from the
    sparse ``A``; 500 components take well under a few seconds.
    """
    A = estimates.A
    if not sp.issparse(A):
        A = sp.csc_matrix(np.asarray(A))
    A = sp.csc_matrix(A)  # a CSC view/copy; the caller's matrix is not modified
    rows, cols = (int(d) for d in estimates.dims)
    k = int(A.shape[1])
    if k == 0:
        return no_cells_image(stem, message="No cells found")
    if A.shape[0] != rows * cols:
        raise ValueError(f"A has {A.shape[0]} rows but dims {rows}x{cols} give {rows * cols} pixels")
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    names = [f"C{i:03d}" for i in range(k)] if names is None else _check_names(names, k)
    statuses = _check_statuses(statuses, k)
    background, bg_label = _footprints_background(estimates, A, background, (rows, cols))
    segments, colours, labels = _footprint_outlines(A, (rows, cols), energy, statuses, names)

    width = 8.0
    img_h = float(np.clip(width * rows / cols, 2.5, 12.0))
    fig = new_figure(width + 1.2, img_h + 1.2)
    try:
        ax = fig.add_subplot()
        vmin, vmax = display_limits(background)
        im = ax.imshow(background, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8, label=bg_label)
        linewidth = 1.0 if k <= 100 else 0.6
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=linewidth))
        fontsize = 7.0 if k <= 50 else 5.0 if k <= 200 else 3.5
        # a dark halo keeps names readable over bright cells (costly to draw: small K only)
        halo = [patheffects.withStroke(linewidth=1.5, foreground="black")] if k <= 100 else None
        for x, y, name, colour in labels:
            ax.text(x, y, name, color=colour, fontsize=fontsize, ha="center", va="center",
                    clip_on=True, path_effects=halo)
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
        heading = title or "Footprints"
        ax.set_title(f"{heading}: {k} cells (outlines hold {energy:.0%} of each footprint's energy)",
                     fontsize=10)
        if statuses is not None:
            _status_legend(fig, statuses, k)
    except BaseException:
        fig.clear()
        raise
    return save_figure(fig, stem)


# --------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------

def _envelope(t: np.ndarray, y: np.ndarray, max_points: int = _MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep every peak and trough: min and max per bin."""
    n = y.size
    if n <= max_points:
        return t, y
    n_bins = max_points // 2
    edges = np.linspace(0, n, n_bins + 1).astype(np.int64)
    starts = edges[:-1]
    lows = np.minimum.reduceat(y, starts)
    highs = np.maximum.reduceat(y, starts)
    mids = (starts + edges[1:] - 1) // 2
    tt = np.column_stack([t[starts], t[mids]]).ravel()
    yy = np.column_stack([lows, highs]).ravel()
    return tt, yy


def traces_preview(stem: Path, traces: np.ndarray, *, fr: float, names: Sequence[str],
                   max_cells: int = MAX_TRACE_CELLS, boundaries: Sequence[float] = (),
                   title: str = "") -> list[Path]:
    """The first ``max_cells`` (20) traces stacked top to bottom, each scaled to its own range.

    ``traces`` is ``(K, T)`` at frame rate ``fr`` (Hz); the time axis is in seconds from the
    first frame. ``boundaries`` are movie start times (s) in a series, drawn as dashed vertical
    lines labelled ``movie 000``, ``movie 001`` … (numbering starts at 001 when the first
    boundary is after time 0, i.e. the start of the first movie was left out). K = 0 or
    T = 0 writes :func:`no_cells_image`.
    """
    fr = _check_fr(fr)
    traces = _cells_by_frames("traces", traces)
    k, n_frames = traces.shape
    names = _check_names(names, k)
    if max_cells < 1:
        raise ValueError(f"max_cells must be at least 1, got {max_cells}")
    if k == 0:
        return no_cells_image(stem, message="No cells found")
    if n_frames == 0:
        return no_cells_image(stem, message="No frames to plot")
    boundaries = [float(b) for b in boundaries]
    n_show = min(k, int(max_cells))
    t = np.arange(n_frames, dtype=np.float64) / fr

    fig = new_figure(11.0, float(np.clip(1.3 + 0.42 * n_show, 3.0, 12.0)))
    try:
        ax = fig.add_subplot()
        offsets = np.arange(n_show, dtype=np.float64)[::-1]
        for i in range(n_show):
            y = np.nan_to_num(np.asarray(traces[i], dtype=np.float64))
            lo, hi = float(y.min()), float(y.max())
            y = (y - lo) / (hi - lo) if hi > lo else np.zeros_like(y)
            tt, yy = _envelope(t, y)
            ax.plot(tt, 0.85 * yy + offsets[i], color=_TRACE_COLORS[i % len(_TRACE_COLORS)],
                    linewidth=0.7)
        _draw_boundaries(ax, boundaries, labels=True, t0=0.0)
        ax.set_yticks(offsets, names[:n_show], fontsize=7 if n_show > 10 else 8)
        ax.set_ylim(-0.3, n_show)
        ax.set_xlim(0.0, n_frames / fr)
        ax.set_xlabel("time (s)")
        ax.spines[["top", "right"]].set_visible(False)
        shown = f"{n_show} of {k} cells" if n_show < k else f"{k} cells"
        heading = f"{title}: {shown}" if title else f"Traces: {shown}"
        ax.set_title(f"{heading} (each trace scaled to its own min–max)", fontsize=10,
                     pad=14 if boundaries else 6)
    except BaseException:
        fig.clear()
        raise
    return save_figure(fig, stem)


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------

def _draw_raster(ax, cell: np.ndarray, times: np.ndarray, amplitude: np.ndarray, *, k: int, duration: float,
                 names: list[str], boundaries: list[float]) -> None:
    """One row per cell, marker area proportional to the event's amplitude relative to the cell's largest."""
    n_events = int(cell.size)
    if n_events:
        largest = np.zeros(k)
        np.maximum.at(largest, cell, amplitude)
        max_area = 30.0 if k <= 20 else max(1.5, 30.0 * 20 / k)
        sizes = 0.5 + max_area * amplitude / largest[cell]
        ax.scatter(times, cell, s=sizes, c="k", marker="o", linewidths=0,
                   rasterized=n_events > _RASTERIZE_EVENTS)
    else:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes, color="0.4")
    _draw_boundaries(ax, boundaries, labels=True)
    ax.set_xlim(0.0, duration)
    ax.set_ylim(k - 0.5, -0.5)
    if k <= 20:
        ax.set_yticks(np.arange(k), names, fontsize=7)
    else:
        ax.set_ylabel("cell index")
    ax.set_xlabel("time (s)")
    ax.set_title(f"Events: {n_events} in {k} cells (marker area ~ amplitude)",
                 fontsize=10, pad=14 if boundaries else 6)


def _draw_population_rate(ax, frame: np.ndarray, *, n_frames: int, fr: float, boundaries: list[float]) -> None:
    """Events/s summed over cells, in up to 200 bins."""
    duration = n_frames / fr
    n_bins = int(max(1, min(200, n_frames, np.ceil(duration))))
    edges = np.linspace(0, n_frames, n_bins + 1)
    counts, _ = np.histogram(frame, bins=edges)
    widths = np.diff(edges) / fr
    ax.stairs(counts / widths, edges / fr, color="#1f77b4", fill=True, alpha=0.8)
    _draw_boundaries(ax, boundaries, labels=False)
    ax.set_xlim(0.0, duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("events/s (all cells)")
    ax.set_title(f"Population event rate (bins of {widths[0]:.3g} s)", fontsize=10)


def _draw_rate_histogram(ax, rates: np.ndarray, k: int) -> None:
    """Histogram of the per-cell event rates (Hz)."""
    bins = int(np.clip(np.sqrt(k) * 2, 5, 40))
    ax.hist(rates, bins=bins, color="#2ca02c", edgecolor="white", linewidth=0.5)
    ax.set_xlabel("event rate (Hz)")
    ax.set_ylabel("cells")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Event rate per cell (median {np.median(rates):.3g} Hz)", fontsize=10)


def _draw_intervals(ax, iei: np.ndarray, fr: float) -> None:
    """Histogram of inter-event intervals (s), in logarithmic bins when they span more than a factor 100."""
    if iei.size:
        lo, hi = float(iei.min()), float(iei.max())
        if hi > 100 * lo:
            # edges halfway between whole frames, so discrete intervals do not leave empty bins
            in_frames = np.unique(np.round(np.logspace(np.log10(lo * fr), np.log10(hi * fr), 41)))
            edges = np.concatenate([in_frames - 0.5, [in_frames[-1] + 0.5]]) / fr
            ax.hist(iei, bins=edges,
                    color="#9467bd", edgecolor="white", linewidth=0.5)
            ax.set_xscale("log")
        else:
            ax.hist(iei, bins=30, color="#9467bd", edgecolor="white", linewidth=0.5)
        ax.set_title(f"Inter-event intervals (median {np.median(iei):.3g} s)", fontsize=10)
    else:
        ax.text(0.5, 0.5, "no cell has two events", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        ax.set_title("Inter-event intervals", fontsize=10)
    ax.set_xlabel("interval (s)")
    ax.set_ylabel("intervals")


def events_preview(stem: Path, spikes: np.ndarray, *, fr: float, names: Sequence[str],
                   boundaries: Sequence[float] = (), title: str = "") -> list[Path]:
    """Events (every frame with ``S > 0``, amplitude ``S``) in four panels.

    Top left: raster, one row per cell, marker area proportional to the amplitude relative
    to that cell's largest event. Top right: population event rate (events/s summed over
    cells, in up to 200 bins). Bottom left: histogram of per-cell event rates (Hz). Bottom
    right: histogram of inter-event intervals (s; logarithmic bins when they span more than
    a factor 100). ``boundaries`` as in :func:`traces_preview`. K = 0 or T = 0 writes
    :func:`no_cells_image`.
    """
    fr = _check_fr(fr)
    spikes = _cells_by_frames("spikes", spikes)
    k, n_frames = spikes.shape
    names = _check_names(names, k)
    if k == 0:
        return no_cells_image(stem, message="No cells found")
    if n_frames == 0:
        return no_cells_image(stem, message="No frames to plot")
    boundaries = [float(b) for b in boundaries]
    duration = n_frames / fr

    cell, frame = np.nonzero(spikes > 0)  # row-major: sorted by cell, then frame
    amplitude = spikes[cell, frame].astype(np.float64)
    times = frame / fr
    rates = np.bincount(cell, minlength=k) / duration
    iei = np.diff(times)[np.diff(cell) == 0]  # intervals between events of the same cell

    fig = new_figure(12.0, 7.5)
    try:
        (ax_raster, ax_rate), (ax_hist, ax_iei) = fig.subplots(2, 2)
        _draw_raster(ax_raster, cell, times, amplitude, k=k, duration=duration, names=names, boundaries=boundaries)
        _draw_population_rate(ax_rate, frame, n_frames=n_frames, fr=fr, boundaries=boundaries)
        _draw_rate_histogram(ax_hist, rates, k)
        _draw_intervals(ax_iei, iei, fr)
        for ax in (ax_rate, ax_hist, ax_iei):
            ax.spines[["top", "right"]].set_visible(False)
        if title:
            fig.suptitle(title, fontsize=12)
    except BaseException:
        fig.clear()
        raise
    return save_figure(fig, stem)


# --------------------------------------------------------------------------------------------
# never fail a run
# --------------------------------------------------------------------------------------------

def safe_preview(function: Callable[..., list[Path]], *args, **kwargs) -> tuple[list[Path], str | None]:
    """Run a preview function; never raise (except KeyboardInterrupt/SystemExit).

    Returns ``(paths, None)`` on success, or ``([], "<name> preview failed: <Type>: <error>")``
    where ``<name>`` is the function name without ``_preview`` (``traces preview failed: …``),
    after removing that preview's files (``<stem>.svg``, ``<stem>.png`` and temporaries).
    The stem is the first positional argument or the ``stem`` keyword.
    """
    stem = kwargs.get("stem", args[0] if args else None)
    name = getattr(function, "__name__", "preview").replace("_", " ")
    label = name if name.endswith("preview") else f"{name} preview"
    try:
        return list(function(*args, **kwargs)), None
    except Exception as exc:  # noqa: BLE001 - a preview must never fail the run
        if stem is not None:
            try:
                remove_preview(Path(stem))
            except OSError:
                pass
        message = f"{label} failed: {type(exc).__name__}: {exc}"
        log.warning(message)
        return [], message
