"""What a patch job returns, and the way back from the patch's ``ssub`` grid to its pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cnmflow.engine.init.result import InitResult
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.resample import repeat_to_shape, upsample_footprints
from cnmflow.pixel_order import image_to_column


@dataclass(frozen=True)
class PatchResult:
    """Footprints (patch pixels at full resolution, Fortran order) and traces at the tsub rate."""

    box: PatchBox
    A: np.ndarray          # (h*w, K) float32
    C: np.ndarray          # (K, T // tsub) float32
    noise: np.ndarray      # (h, w) per-pixel noise sd of the full-rate movie
    correlation: np.ndarray  # (h, w) correlation image used for seeding (upsampled when ssub > 1)
    pnr: np.ndarray          # (h, w) PNR image used for seeding (upsampled when ssub > 1)
    b: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (h*w, nb_patch) 2P background
    f: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (nb_patch, T // tsub)


def patch_result(box: PatchBox, A: np.ndarray, C: np.ndarray, *, grid: tuple[int, int], images: InitResult,
                 noise: np.ndarray, noise_reduction: float, fov_dims: tuple[int, int], border_pix: int,
                 background: tuple[np.ndarray, np.ndarray] | None = None) -> PatchResult:
    """The components ``A`` (on the patch's ``grid``), ``C`` of ``box`` as a :class:`PatchResult`.

    The footprints are upsampled to the box, zeroed within ``border_pix`` of the field of view's
    edge, and those left empty dropped; the seed images come back onto the box's pixels (the PNR
    in full-rate noise units); a low-rank ``background`` ``(b, f)`` is upsampled like ``A``.
    """
    A = upsample_footprints(A, grid, box.shape)
    A = drop_border_components(A, box, fov_dims, border_pix=border_pix)
    keep = A.any(axis=0)
    extra = {} if background is None else dict(b=upsample_footprints(background[0], grid, box.shape),
                                               f=background[1])
    return PatchResult(box=box, A=A[:, keep], C=C[keep], noise=noise,
                       correlation=repeat_to_shape(images.correlation, box.shape),
                       pnr=repeat_to_shape(images.pnr / noise_reduction, box.shape), **extra)


def drop_border_components(A: np.ndarray, box: PatchBox, fov_dims: tuple[int, int], *,
                           border_pix: int) -> np.ndarray:
    """border_pix: zero footprint pixels within ``border_pix`` of the field of view's edge."""
    if border_pix <= 0:
        return A
    h, w = box.shape
    local_rows = box.row0 + np.arange(h)
    local_cols = box.col0 + np.arange(w)
    inside_rows = (local_rows >= border_pix) & (local_rows < fov_dims[0] - border_pix)
    inside_cols = (local_cols >= border_pix) & (local_cols < fov_dims[1] - border_pix)
    mask = image_to_column(inside_rows[:, None] & inside_cols[None, :])
    return A * mask[:, None]
