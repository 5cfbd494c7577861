"""The figure of ``cnmflow suggest``: what each "auto" value was read from, to check at a glance.

Top: the correlation and PNR images with the candidate seeds above both suggested cuts (the distinct ones
marked by shape: round at the cells' scale, ridges, broader), and the
max − mean projection with the blobs whose half-max radius was measured (circles of the
suggested gSig). Bottom: each image's histogram against its null's with the cut marked (and the cut used where
the fallback relaxed it or min_pnr's ceiling bound), and the
radius estimate (the blobs' median scale-normalised LoG response per scale, the measured radii).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnmflow.atomic_write import atomic_path
from cnmflow.auto_params import CELL_SCALE_BAND, AutoEstimate


def _mark_seed_classes(axes, est: AutoEstimate) -> None:
    """Mark each distinct seed by its shape (:meth:`AutoEstimate.seed_classes`): the cells' (round, their scale),
    ridges (vessels, dendrites), broader (out-of-focus cells, neuropil), smaller, unmeasured: what lies above
    the noise cuts, which the cuts cannot sort."""
    if not est.seed_distinct.any():
        return
    classes = est.seed_classes()
    low, high = CELL_SCALE_BAND
    for name, style, colour, label in (("cell", "o", "white", f"round, {low:g}–{high:g}× r"),
                                       ("ridge", "x", "orange", "ridge (vessel? touching cells?)"),
                                       ("broader", "s", "cyan", f"round, broader than {high:g}× r"),
                                       ("smaller", "+", "magenta", f"round, smaller than {low:g}× r"),
                                       ("unmeasured", "d", "gray", "round, no half-max radius")):
        at = est.seeds[classes[name]]
        axes.plot(at[:, 1], at[:, 0], style, mfc="none", mec=colour, ms=7, label=f"{len(at)} {label}")
    axes.legend(fontsize=7, loc="lower right")


def write_suggestion_figure(estimate: AutoEstimate, path: str | os.PathLike, *, title: str = "") -> Path:
    """Write the figure (png/svg/pdf by the suffix) to ``path``; return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    est, path = estimate, Path(path)
    fig = Figure(figsize=(15, 9.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots(2, 3)
    seeds = est.seeds
    for a, image, name, cut in ((ax[0, 0], est.correlation_image, "correlation", est.min_corr),
                                (ax[0, 1], est.pnr_image, "PNR", est.min_pnr)):
        shown = a.imshow(image, cmap="viridis")
        fig.colorbar(shown, ax=a, fraction=0.046)
        if len(seeds):
            a.plot(seeds[:, 1], seeds[:, 0], "r.", ms=3)
            _mark_seed_classes(a, est)
        scaled = f" (×{est.pnr_reduction:.3g} here)" if est.pnr_reduction != 1 else ""
        a.set_title(f"{name} image; {len(seeds)} seeds above min_corr {est.min_corr:g} & min_pnr {est.min_pnr:g}{scaled}",
                    fontsize=9)
    a = ax[0, 2]
    a.imshow(est.radius.image, cmap="gray")
    radius = est.gSig / max(est.radius.image.shape[0] / est.correlation_image.shape[0], 1)
    for r, c in est.radius.blobs:
        a.add_patch(Circle((c, r), radius, fill=False, color="orange", lw=0.8))
    choice = est.gsig_choice
    chosen = f" from {choice.factor:g} × radius {est.radius.radius * est.ssub:.2f}" if choice is not None else ""
    a.set_title(f"max − mean projection; blobs measured (circles: gSig {est.gSig:g} px{chosen})", fontsize=9)
    shown_cuts = (est.min_corr, est.min_pnr * est.pnr_reduction)  # on the images (the PNR one downsampled)
    for a, image, th, used in ((ax[1, 0], est.correlation_image, est.corr, shown_cuts[0]),
                               (ax[1, 1], est.pnr_image, est.pnr, shown_cuts[1])):
        values = image[np.isfinite(image)].ravel()
        a.hist(values, bins=100, color="tab:blue", alpha=0.7, label="image")
        a.axvline(th.floor, color="gray", ls=":", label=f"null median {th.floor:.3g}")
        a.axvline(th.cut, color="red", label=th.rule())
        if est.relaxed:
            a.axvline(used, color="orange", ls="--", label=f"relaxed to {used:.3g} ({est.relaxed} strongest candidates)")
        elif th is est.pnr and est.pnr_ceiled:  # the null's cut (red) lies above the ceiling: mark the cut used
            a.axvline(used, color="orange", ls="--", label=f"used: {used:.3g}, the ceiling min_pnr {est.min_pnr:g} "
                      f"(the null's cut {est.null_min_pnr:g} above it)")
        if th is est.pnr and est.pnr_reduction != 1:
            a.set_title(f"min_pnr {est.min_pnr:g} = the cut on this downsampled image / {est.pnr_reduction:.3g}",
                        fontsize=9)
        a.set_yscale("log")
        a.set_xlabel(f"{th.name} ({th.null} gives the floor and sd)")
        a.legend(fontsize=8, loc="upper right")   # "best" searches every bar of the histogram: slow, and warned
    a = ax[1, 2]
    a.semilogx(np.sqrt(2) * est.radius.scales, est.radius.response, "k.-", label="median LoG response (disk radius √2σ)")
    a.axvline(est.radius.radius, color="red", label=f"median half-max radius {est.radius.radius:.2f} px")
    for r in est.radius.blob_radii:
        a.axvline(r, color="orange", alpha=0.25, lw=0.8)
    a.set_xlabel("radius (px, downsampled by ssub)")
    a.legend(fontsize=8, loc="upper left")   # small radii: the LoG response is low there
    a.set_title("radius: scale response and the blobs' measured half-max radii (orange)", fontsize=9)
    where = est.sample_place()
    title = "; ".join(part for part in (title, f"images of {where}" if where else "") if part)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=path.suffix) as tmp:  # an earlier figure is never left half overwritten
        fig.savefig(tmp, dpi=110)
    return path
