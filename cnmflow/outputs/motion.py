"""What a run's motion correction leaves in the output folder: summary, previews, corrected movies.

Footprints stay in the input's pixel frame (the correction keeps the frame size and moves no
origin), so the summary records the crop box — the edge pixels the largest shift left without
data — for whoever wants to ignore them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnmflow.motion.work_copy import MotionOutcome
from cnmflow.outputs.figures import display_limits, new_figure, save_figure


def motion_summary(outcome: MotionOutcome) -> dict[str, Any]:
    """Method, largest shift and crop box, as output_metadata.json and the manifest's run summary hold them."""
    result = outcome.result
    crop = result.crop
    return {
        "method": result.method,
        "max_shift_px": round(result.max_shift(), 3),
        "rms_rigid_shift_px": round(float(np.sqrt((result.shifts_rig.astype(np.float64) ** 2).sum(1).mean())), 3)
        if result.shifts_rig.size else 0.0,
        "crop_px": {side: int(getattr(crop, side)) for side in ("top", "bottom", "left", "right")},
        "exclude_border": bool(result.exclude_border),
        "n_frames": int(result.shifts_rig.shape[0]),
        "n_patches": None if result.shifts_els is None else int(result.shifts_els.shape[1]),
    }


def shifts_preview(stem: Path, outcome: MotionOutcome, *, fr: float, boundaries: list[float] | None = None) -> list[Path]:
    """Rigid shifts (rows, cols) over time; piecewise: the spread of patch shifts around them."""
    result = outcome.result
    t = np.arange(result.shifts_rig.shape[0]) / fr
    fig = new_figure(8.0, 3.6)
    axes = fig.subplots(2, 1, sharex=True)
    for axis, (ax, label) in enumerate(zip(axes, ("rows (y)", "cols (x)"))):
        if result.shifts_els is not None:
            patches = result.shifts_els[:, :, axis]
            ax.fill_between(t, patches.min(axis=1), patches.max(axis=1), color="0.8", lw=0, label="patch range")
        ax.plot(t, result.shifts_rig[:, axis], lw=0.8, color="C0", label="rigid")
        for start in boundaries or []:
            ax.axvline(start, color="0.4", lw=0.6, ls="--")
        ax.set_ylabel(f"shift {label}, px")
    axes[0].set_title(f"motion correction ({result.method}): largest shift {result.max_shift():.2f} px")
    axes[0].legend(loc="upper right", fontsize="small")
    axes[1].set_xlabel("time, s")
    return save_figure(fig, stem)


def motion_images_preview(stem: Path, outcome: MotionOutcome) -> list[Path]:
    """Mean and correlation images before and after the correction, side by side (same display range)."""
    result = outcome.result
    fig = new_figure(8.0, 7.6)
    axes = fig.subplots(2, 2)
    pairs = (("mean", outcome.mean_before, result.mean_image),
             ("correlation", outcome.correlation_before, outcome.correlation_after))
    for row, (name, before, after) in zip(axes, pairs):
        low, high = display_limits(np.concatenate([before.ravel(), after.ravel()]))
        for ax, image, when in zip(row, (before, after), ("before", "after")):
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            ax.set_title(f"{name} image, {when}")
            ax.set_axis_off()
    return save_figure(fig, stem)
