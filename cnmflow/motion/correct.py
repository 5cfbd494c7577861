"""Motion-correct a movie into a float32 output, streamed in chunks of frames.

The plan (NoRMCorre, Pnevmatikakis & Giovannucci 2017):

1. a template from the first ``template_frames`` frames (:mod:`cnmflow.motion.template`);
2. ``niter_rig - 1`` rigid passes over the movie, each replacing the template by the mean of
   the registered frames;
3. a final pass that estimates each frame's rigid shift (and, for ``piecewise_rigid``, its
   patch shifts around it), applies them and writes the corrected frames.

Shifts are estimated on high-passed frames when ``gSig_filt`` is set (1P data); the output
keeps raw intensities, the input's size and pixel frame. Every pass reads ``chunk_frames``
frames at a time, so memory does not grow with the number of frames (only the shift arrays,
2 floats per frame and patch, do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
from threadpoolctl import threadpool_limits

from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.movie_source import MovieSource
from cnmflow.errors import MovieError, ParameterError
from cnmflow.motion.apply import CropBox
from cnmflow.motion.chunk_job import ChunkPlan, ChunkResult, OutputFile
from cnmflow.motion.chunk_runner import STAGE, chunk_runner
from cnmflow.motion.highpass import highpass
from cnmflow.motion.params import MotionParams, check_against_frame
from cnmflow.motion.piecewise import PatchGrid, patch_grid
from cnmflow.motion.template import TemplateSum, initial_template

Progress = Callable[[str, float], None]


@dataclass(frozen=True, eq=False)
class MotionResult:
    """What a correction found; shifts follow CaImAn's convention (applied to the frame, (row, col) px).

    Attributes
    ----------
    method : 'none' | 'rigid' | 'piecewise_rigid'
    shifts_rig : (T, 2) float32
        Rigid shift per frame, px, (row, col): ``corrected = shift(frame, shifts_rig[t])``.
    shifts_els : (T, n_patches, 2) float32 or None
        Piecewise: shift per patch (row-major over ``grid``), px, (row, col).
    grid : PatchGrid or None
        The patches of ``shifts_els``.
    template : (rows, cols) float32
        The template of the final pass, in the estimation domain (high-passed when gSig_filt).
    mean_image : (rows, cols) float32
        Mean of the corrected frames (raw intensities), for before/after previews.
    crop : CropBox
        Pixels at each edge left without data by the largest shift.
    exclude_border : bool
        ``border_nan=True``: CaImAn would have put NaN in ``crop``; exclude it downstream
        (e.g. ``border_pix >= crop.max``).
    """

    method: str
    shifts_rig: np.ndarray
    shifts_els: np.ndarray | None
    grid: PatchGrid | None
    template: np.ndarray
    mean_image: np.ndarray
    crop: CropBox
    exclude_border: bool

    def caiman_shifts(self) -> np.ndarray | list[np.ndarray]:
        """``estimates.shifts`` as CaImAn stores it: rigid (T, 2); piecewise ``[x_shifts_els, y_shifts_els]``,
        each (T, n_patches), where CaImAn's "x" is the row axis (axis 0) and "y" the column axis."""
        if self.shifts_els is None:
            return self.shifts_rig
        return [self.shifts_els[:, :, 0], self.shifts_els[:, :, 1]]

    def max_shift(self) -> float:
        """Largest shift magnitude of any frame (or patch), px."""
        shifts = self.shifts_els if self.shifts_els is not None else self.shifts_rig
        return float(np.abs(shifts).max()) if shifts.size else 0.0


def correct_motion(movie: Any, out: np.ndarray | None = None, *, params: MotionParams, chunk_frames: int = 256,
                   template_frames: int = 200, n_processes: int = 1, dask_scheduler: str | None = None,
                   progress: Progress | None = None) -> MotionResult:
    """Register every frame of ``movie`` to a common template and write the corrected frames to ``out``.

    Parameters
    ----------
    movie : (T, rows, cols) array-like
        Any dtype (uint8/uint16/float32…); an ``np.memmap`` of a file can be read by worker processes.
    out : (T, rows, cols) float32 array or np.memmap, optional
        Receives the corrected frames (the work copy). A file-backed memmap is written by the
        workers directly; None estimates shifts only.
    params : MotionParams
        CaImAn's motion parameters; ``motion_correction='none'`` copies the frames unchanged.
    chunk_frames : int
        Frames read, registered and written at a time (memory ~ a few chunks per process).
    template_frames : int
        Frames at the movie's start the first template is made from.
    n_processes : int
        Local worker processes (chunks are independent given the template).
    dask_scheduler : str, optional
        Address of a Dask scheduler whose workers can read the movie file and write ``out``.
    progress : callable(stage, fraction), optional
        Called with ``"motion_correction"`` and the fraction done.

    Returns
    -------
    MotionResult
    """
    shape = _check_movie(movie)
    _check_out(out, shape)
    if not isinstance(params, MotionParams):
        raise ParameterError(f"params must be MotionParams (see cnmflow.motion.motion_params), got {type(params).__name__}")
    chunk_frames = _check_positive("chunk_frames", chunk_frames)
    template_frames = _check_positive("template_frames", template_frames)
    n_processes = _check_positive("n_processes", n_processes)
    T, rows, cols = shape
    source = _source_of(movie)
    if params.motion_correction == "none":
        return _copy_unchanged(source, out, shape, chunk_frames, params, progress)
    check_against_frame(params, (rows, cols))
    # Small matrix products per frame: BLAS threads only contend (workers are the parallelism).
    with threadpool_limits(limits=1, user_api="blas"):
        return _correct(source, out, shape, params=params, chunk_frames=chunk_frames,
                        template_frames=template_frames, n_processes=n_processes, dask_scheduler=dask_scheduler,
                        progress=progress)


def _correct(source: MovieSource, out, shape: tuple[int, int, int], *, params: MotionParams, chunk_frames: int,
             template_frames: int, n_processes: int, dask_scheduler: str | None,
             progress: Progress | None) -> MotionResult:
    T, rows, cols = shape
    first = np.asarray(source.streaming()[0:min(T, template_frames)], dtype=np.float32)
    template = initial_template(highpass(first, gsig_filt=params.gSig_filt), max_shifts=params.max_shifts,
                                upsample_factor=params.upsample_factor)
    del first
    ranges = [(chunk.start, chunk.stop) for chunk in chunk_slices(T, chunk_frames)]
    output = _output_file(out)
    parallel_ok = source.shareable and (out is None or output is not None)
    passes = params.niter_rig
    with chunk_runner(source, n_processes=n_processes, parallel_ok=parallel_ok, dask_scheduler=dask_scheduler,
                      out=out, progress=progress) as runner:
        for done in range(passes - 1):
            total = TemplateSum((rows, cols))
            for result in runner.run(ranges, ChunkPlan(params, template, apply=False),
                                     done_before=done / passes, share=1 / passes):
                total.add(result.registered_sum, result.shifts_rig.shape[0])
            template = total.mean()
        return _collect(runner.run(ranges, ChunkPlan(params, template, apply=True, output=output),
                                   done_before=(passes - 1) / passes, share=1 / passes),
                        params, template, (rows, cols), T)


def _collect(results: Iterable[ChunkResult], params: MotionParams, template: np.ndarray,
             frame_shape: tuple[int, int], n_frames: int) -> MotionResult:
    """Gather the final pass's chunks as they arrive (their frame-sized sums are added, then dropped)."""
    rigid, els = [], []
    crop = CropBox()
    mean = np.zeros(frame_shape, dtype=np.float64)
    for result in results:
        rigid.append(result.shifts_rig.astype(np.float32))
        if result.shifts_els is not None:
            els.append(result.shifts_els.astype(np.float32))
        crop = crop.union(result.crop)
        mean += result.corrected_sum
    grid = patch_grid(frame_shape, strides=params.strides, overlaps=params.overlaps) if params.piecewise else None
    return MotionResult(method=params.motion_correction, shifts_rig=np.concatenate(rigid),
                        shifts_els=np.concatenate(els) if params.piecewise else None, grid=grid,
                        template=template, mean_image=(mean / max(n_frames, 1)).astype(np.float32), crop=crop,
                        exclude_border=params.border_nan is True)


def _copy_unchanged(source: MovieSource, out, shape, chunk_frames: int, params: MotionParams,
                    progress: Progress | None) -> MotionResult:
    T, rows, cols = shape
    reader = source.streaming()
    output = _output_file(out)        # a file is written with file I/O: no mapped pages pile up
    mean = np.zeros((rows, cols), dtype=np.float64)
    for chunk in chunk_slices(T, chunk_frames):
        block = np.asarray(reader[chunk], dtype=np.float32)
        mean += block.sum(axis=0, dtype=np.float64)
        if output is not None:
            output.write(chunk.start, block)
        elif out is not None:
            out[chunk] = block
        if progress is not None:
            progress(STAGE, chunk.stop / T)
    mean_image = (mean / max(T, 1)).astype(np.float32)
    return MotionResult(method="none", shifts_rig=np.zeros((T, 2), np.float32), shifts_els=None, grid=None,
                        template=mean_image, mean_image=mean_image, crop=CropBox(), exclude_border=False)


def _source_of(movie: Any) -> MovieSource:
    if isinstance(movie, np.ndarray):
        return MovieSource.of(movie)
    return MovieSource(path=None, shape=tuple(int(n) for n in movie.shape), dtype=str(np.dtype(movie.dtype)),
                       array=movie)


def _output_file(out) -> OutputFile | None:
    """The file behind a float32 C-order memmap that owns its mapping (workers write it by path)."""
    if out is None:
        return None
    source = MovieSource.of(out) if isinstance(out, np.ndarray) else None
    if source is None or not source.shareable or not out.flags.c_contiguous:
        return None
    return OutputFile(path=source.path, shape=tuple(out.shape), offset=source.offset)


def _check_movie(movie: Any) -> tuple[int, int, int]:
    shape = getattr(movie, "shape", None)
    if shape is None or len(shape) != 3:
        raise MovieError(f"movie must be a (frames, rows, cols) array, got shape {shape}")
    if min(shape) < 1:
        raise MovieError(f"movie has an empty axis: shape {tuple(shape)}")
    return tuple(int(n) for n in shape)  # type: ignore[return-value]


def _check_out(out, shape: tuple[int, int, int]) -> None:
    if out is None:
        return
    if tuple(getattr(out, "shape", ())) != shape or getattr(out, "dtype", None) != np.float32:
        raise ParameterError(f"out must be a float32 array of the movie's shape {shape}, got "
                             f"{getattr(out, 'dtype', None)} {tuple(getattr(out, 'shape', ()))}")


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"{name}={value!r} must be a positive integer")
    return int(value)
