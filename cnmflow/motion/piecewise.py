"""Piecewise-rigid registration: a shift per patch, smoothed into a dense shift field.

NoRMCorre (Pnevmatikakis & Giovannucci 2017, section 2.2) splits the field of view into
overlapping patches (``strides + overlaps`` pixels, one every ``strides``; the last patch of a row
or column ends at the frame's edge), registers each patch to the same patch of the template
with its shift confined to ``max_deviation_rigid`` pixels around the frame's rigid shift, and
interpolates the patch shifts into a shift for every pixel. Here the interpolation is a natural
cubic spline through the patch centres along each axis (constant beyond the outer centres),
which gives a smooth field without the seams of blending separately shifted patches — the
role CaImAn's ``upsample_factor_grid`` plays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnmflow.motion.crosscorr import BATCH_FRAMES, register_spectra, spectra


def _starts(side: int, size: int, stride: int) -> tuple[int, ...]:
    if size >= side:
        return (0,)
    starts = list(range(0, side - size + 1, stride))
    if starts[-1] != side - size:
        starts.append(side - size)
    return tuple(starts)


@dataclass(frozen=True)
class PatchGrid:
    """Patches of a frame: starts per axis (pixels) and the patch size (rows, cols).

    Patches are numbered row-major over the grid (patch ``i * n_cols + j`` starts at
    ``(row_starts[i], col_starts[j])``), as CaImAn orders ``x_shifts_els`` / ``y_shifts_els``.
    """

    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]
    size: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_starts), len(self.col_starts)

    @property
    def n_patches(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def centers(self) -> np.ndarray:
        """(n_patches, 2) float64 centre of each patch, pixels (row, col)."""
        rows = np.asarray(self.row_starts) + (self.size[0] - 1) / 2.0
        cols = np.asarray(self.col_starts) + (self.size[1] - 1) / 2.0
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        return np.stack([rr.ravel(), cc.ravel()], axis=1)

    def cut(self, frames: np.ndarray) -> np.ndarray:
        """Patches of frames (n, rows, cols) → (n, n_patches, size_r, size_c)."""
        sr, sc = self.size
        return np.stack([frames[:, r:r + sr, c:c + sc] for r in self.row_starts for c in self.col_starts], axis=1)


def patch_grid(frame_shape: tuple[int, int], *, strides: tuple[int, int], overlaps: tuple[int, int]) -> PatchGrid:
    """The patch layout for frames (rows, cols); patches larger than the frame shrink to it."""
    size = tuple(min(s + o, side) for s, o, side in zip(strides, overlaps, frame_shape))
    return PatchGrid(row_starts=_starts(frame_shape[0], size[0], strides[0]),
                     col_starts=_starts(frame_shape[1], size[1], strides[1]), size=size)  # type: ignore[arg-type]


def template_patch_spectra(template: np.ndarray, grid: PatchGrid, *, max_deviation_rigid: int) -> np.ndarray:
    """Windowed spectra of the template's patches: (n_patches, size_r, size_c//2+1) complex64."""
    margin = (max_deviation_rigid + 1, max_deviation_rigid + 1)
    return spectra(grid.cut(np.asarray(template, dtype=np.float32)[None])[0], margin=margin)


def estimate_patch_shifts(registered: np.ndarray, template_patches: np.ndarray, rigid: np.ndarray, *,
                          grid: PatchGrid, max_deviation_rigid: int, upsample_factor: int) -> np.ndarray:
    """Shift of every patch of every frame, within ``max_deviation_rigid`` px of the rigid shift.

    Parameters
    ----------
    registered : (n, rows, cols) float32
        Frames as used for estimation (high-passed for 1P data) *after* their rigid shift, so a
        patch's remaining shift is small and its search never reaches across the patch edge.
    template_patches : (n_patches, size_r, size_c//2+1) complex64
        :func:`template_patch_spectra` of the template.
    rigid : (n, 2)
        Each frame's rigid shift (row, col), px.

    Returns
    -------
    (n, n_patches, 2) float64
        Shifts (row, col) in px to apply to each patch of each *original* frame: the rigid shift
        plus the patch's own, which is at most ``max_deviation_rigid`` per axis.
    """
    registered = np.asarray(registered, dtype=np.float32)
    shifts = np.zeros((registered.shape[0], grid.n_patches, 2))
    for a in range(0, registered.shape[0], BATCH_FRAMES):
        patches = grid.cut(registered[a:a + BATCH_FRAMES])          # (n, n_patches, size_r, size_c)
        shifts[a:a + patches.shape[0]] = register_spectra(
            template_patches, spectra(patches), width=grid.size[1], centers=np.zeros(patches.shape[:2] + (2,)),
            max_shift=(max_deviation_rigid, max_deviation_rigid), upsample_factor=upsample_factor)
    return shifts + np.asarray(rigid, dtype=np.float64)[:, None, :]


def _axis_weights(centers: np.ndarray, side: int) -> np.ndarray:
    """Spline weights (side, n) mapping values at patch centres to every pixel along one axis."""
    from scipy.interpolate import CubicSpline  # ~1 s to import: only when piecewise is used

    n = centers.size
    if n == 1:
        return np.ones((side, 1))
    spline = CubicSpline(centers, np.eye(n), bc_type="natural", axis=0)
    return spline(np.clip(np.arange(side, dtype=np.float64), centers[0], centers[-1]))


@dataclass(frozen=True)
class FieldInterpolator:
    """Turns one frame's patch shifts into a dense (2, rows, cols) shift field."""

    row_weights: np.ndarray  # (rows, n_row_patches)
    col_weights: np.ndarray  # (cols, n_col_patches)

    @classmethod
    def for_grid(cls, grid: PatchGrid, frame_shape: tuple[int, int]) -> "FieldInterpolator":
        rows = np.asarray(grid.row_starts) + (grid.size[0] - 1) / 2.0
        cols = np.asarray(grid.col_starts) + (grid.size[1] - 1) / 2.0
        return cls(_axis_weights(rows, frame_shape[0]), _axis_weights(cols, frame_shape[1]))

    def __call__(self, patch_shifts: np.ndarray) -> np.ndarray:
        """patch_shifts (n_patches, 2) px → field (2, rows, cols) float32 px."""
        n_r, n_c = self.row_weights.shape[1], self.col_weights.shape[1]
        grids = np.asarray(patch_shifts, dtype=np.float64).reshape(n_r, n_c, 2)
        field = np.einsum("ri,ijk,cj->krc", self.row_weights, grids, self.col_weights, optimize=True)
        return field.astype(np.float32)
