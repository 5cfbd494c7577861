"""What a patch job returns, and the way back from the patch's ``ssub`` grid to its pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from cnmflow.engine.init.result import InitResult
from cnmflow.engine.patches import PatchBox


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
                       correlation=to_patch_grid(images.correlation, box.shape),
                       pnr=to_patch_grid(images.pnr / noise_reduction, box.shape), **extra)


def upsample_footprints(A: np.ndarray, small: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """Footprints found on the ssub grid → the patch's full-resolution grid (bilinear)."""
    if small == full:
        return A
    out = np.zeros((full[0] * full[1], A.shape[1]), dtype=np.float32)
    for k in range(A.shape[1]):
        image = A[:, k].reshape(small, order="F")
        zoomed = ndi.zoom(image, (full[0] / small[0], full[1] / small[1]), order=1, grid_mode=True,
                          mode="nearest")
        out[:, k] = np.maximum(zoomed[:full[0], :full[1]], 0).ravel(order="F")
    return out


def to_patch_grid(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image on the ssub grid repeated back onto the patch's pixels."""
    factor = -(-shape[0] // image.shape[0]), -(-shape[1] // image.shape[1])
    return np.repeat(np.repeat(image, factor[0], axis=0), factor[1], axis=1)[:shape[0], :shape[1]]


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
    mask = (inside_rows[:, None] & inside_cols[None, :]).ravel(order="F")
    return A * mask[:, None]
