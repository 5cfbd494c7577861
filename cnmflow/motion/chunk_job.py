"""One chunk of frames: read, estimate its shifts against the template, apply them, write.

A chunk job is a pure function of (movie source, frame range, plan) — like a patch job of the
engine it receives a path, never the movie — so chunks can run in any process or on a Dask
worker and the result does not depend on how the movie was split. Memory per job is a few
copies of one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnmflow.engine.movie_source import MovieSource
from cnmflow.motion.apply import CropBox, border_mode, exposed, shift_frames, warp_frame
from cnmflow.motion.highpass import highpass
from cnmflow.motion.params import MotionParams
from cnmflow.motion.piecewise import FieldInterpolator, estimate_patch_shifts, patch_grid, template_patch_spectra
from cnmflow.motion.rigid import RigidTemplate, estimate_rigid


@dataclass(frozen=True)
class OutputFile:
    """Where corrected frames go: a raw C-order float32 (frames, rows, cols) file at ``offset`` bytes."""

    path: Path
    shape: tuple[int, int, int]
    offset: int = 0

    def write(self, first: int, block: np.ndarray) -> None:
        """Write frames ``first..first+len(block)`` with plain file I/O (no pages kept mapped)."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        frame_bytes = 4 * self.shape[1] * self.shape[2]
        with open(self.path, "r+b") as handle:
            handle.seek(self.offset + first * frame_bytes)
            handle.write(memoryview(block).cast("B"))


@dataclass(frozen=True, eq=False)
class ChunkPlan:
    """What every chunk of one pass shares (small enough to send to each job)."""

    params: MotionParams
    template: np.ndarray            # (rows, cols) float32, in the estimation domain (high-passed for 1P)
    apply: bool                     # piecewise + write corrected frames (final pass) or rigid only
    output: OutputFile | None = None


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """Shifts of a chunk and the sums that make the next template and the mean image."""

    start: int
    shifts_rig: np.ndarray               # (n, 2) float64 px (row, col), applied to the frame
    shifts_els: np.ndarray | None        # (n, n_patches, 2) float64 px, piecewise only
    registered_sum: np.ndarray | None    # (rows, cols) float64, registered estimation-domain frames (refinement)
    corrected_sum: np.ndarray | None     # (rows, cols) float64, corrected raw frames (final pass)
    crop: CropBox


def correct_chunk(source: MovieSource, start: int, stop: int, plan: ChunkPlan,
                  out: np.ndarray | None = None) -> ChunkResult:
    """Register frames ``start:stop`` of the movie to ``plan.template``.

    With ``plan.apply`` the corrected frames are written to ``plan.output`` (a file) or, in
    this process only, into ``out[start:stop]``; otherwise only the rigid shifts and the
    template sum are computed (a template-refinement pass).
    """
    params = plan.params
    raw = np.asarray(source.streaming()[start:stop], dtype=np.float32)
    estimation = highpass(raw, gsig_filt=params.gSig_filt)
    rigid = estimate_rigid(estimation, RigidTemplate.of(plan.template, max_shifts=params.max_shifts),
                           upsample_factor=params.upsample_factor)
    border = border_mode(params.border_nan)
    if not plan.apply:
        registered = shift_frames(estimation, rigid, border="replicate", interpolation="linear")
        return ChunkResult(start, rigid, None, registered.sum(axis=0, dtype=np.float64), None,
                           _rigid_crop(rigid))
    frame_shape = raw.shape[1:]
    if params.piecewise:
        grid = patch_grid(frame_shape, strides=params.strides, overlaps=params.overlaps)
        template_patches = template_patch_spectra(plan.template, grid,
                                                  max_deviation_rigid=params.max_deviation_rigid)
        els = estimate_patch_shifts(shift_frames(estimation, rigid, interpolation="linear"), template_patches, rigid,
                                    grid=grid, max_deviation_rigid=params.max_deviation_rigid,
                                    upsample_factor=params.upsample_factor)
        to_field = FieldInterpolator.for_grid(grid, frame_shape)
        corrected = np.empty_like(raw)
        crop = CropBox()
        for i in range(raw.shape[0]):
            field = to_field(els[i])
            corrected[i] = warp_frame(raw[i], field, border=border)
            crop = crop.union(exposed(field[0, 0], field[0, -1], field[1, :, 0], field[1, :, -1]))
    else:
        els = None
        corrected = shift_frames(raw, rigid, border=border)
        crop = _rigid_crop(rigid)
    if plan.output is not None:
        plan.output.write(start, corrected)
    elif out is not None:
        out[start:stop] = corrected
    return ChunkResult(start, rigid, els, None, corrected.sum(axis=0, dtype=np.float64), crop)


def _rigid_crop(shifts: np.ndarray) -> CropBox:
    return exposed(shifts[:, 0], shifts[:, 0], shifts[:, 1], shifts[:, 1])


def use_one_thread() -> None:
    """Worker initializer: one BLAS, FFT and OpenCV thread, since the workers are the parallelism."""
    import cv2

    from cnmflow.engine.threads import use_single_thread

    use_single_thread()
    cv2.setNumThreads(1)


def correct_chunk_single_threaded(source: MovieSource, start: int, stop: int, plan: ChunkPlan) -> ChunkResult:
    """A chunk job for a Dask worker: one thread each, since the workers are the parallelism."""
    use_one_thread()
    return correct_chunk(source, start, stop, plan)
