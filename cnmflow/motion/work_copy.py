"""The motion-corrected work copy: a float32 movie beside the concatenated one, shared and resumable.

Named by the series key *and* the motion parameters, so identical settings (a sweep's other
combinations, a retried task) adopt the finished copy while other settings get their own. It is
written by :func:`cnmflow.movies.work_copy.ensure_copy`: into a held staging folder renamed into
place only once the last frame and the shifts (``motion.pkl``) are written, so a correction
killed mid-write is never adopted; it is held and removed like the concatenated copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cnmflow.engine.movie_source import MovieSource
from cnmflow.motion.correct import MotionResult, correct_motion
from cnmflow.motion.params import MotionParams
from cnmflow.movies.concat import ConcatenatedMovie
from cnmflow.movies.work_copy import ensure_copy

STAGE = "motion_correction"
MOVIE_NAME = "corrected.f32"
RESULT_NAME = "motion.pkl"
#: Frames (evenly spaced) the before/after correlation images are computed from.
CORRELATION_FRAMES = 500
#: Memory of one chunk of frames when no chunk size is given (as the engine's CNMFLOW_CHUNK_MB default).
CHUNK_MB = 128.0


@dataclass(frozen=True, eq=False)
class MotionOutcome:
    """A correction and the before/after images its previews show.

    Attributes
    ----------
    result : MotionResult
        Shifts, crop box, the corrected movie's mean image.
    mean_before : (rows, cols) float32
        Mean of the uncorrected frames.
    correlation_before, correlation_after : (rows, cols) float32
        Correlation of each pixel with its 4 neighbours over up to ``CORRELATION_FRAMES`` frames
        (motion blurs it; a good correction sharpens it).
    """

    result: MotionResult
    mean_before: np.ndarray
    correlation_before: np.ndarray
    correlation_after: np.ndarray


def neighbour_correlation(frames: np.ndarray) -> np.ndarray:
    """Mean temporal correlation of every pixel with its 4 neighbours; frames (n, rows, cols) → (rows, cols)."""
    z = np.asarray(frames, dtype=np.float32)
    z = z - z.mean(axis=0)
    z /= np.sqrt((z ** 2).mean(axis=0)) + np.float32(1e-12)
    total = np.zeros(z.shape[1:], dtype=np.float32)
    count = np.zeros(z.shape[1:], dtype=np.float32)
    down = (z[:, 1:] * z[:, :-1]).mean(axis=0)        # pixel (r, c) with (r + 1, c)
    right = (z[:, :, 1:] * z[:, :, :-1]).mean(axis=0)  # pixel (r, c) with (r, c + 1)
    for product, first, second in ((down, np.s_[1:, :], np.s_[:-1, :]), (right, np.s_[:, 1:], np.s_[:, :-1])):
        for side in (first, second):
            total[side] += product
            count[side] += 1
    return total / count


def _mean_image(movie: np.ndarray, chunk: int) -> np.ndarray:
    total = np.zeros(movie.shape[1:], dtype=np.float64)
    for start in range(0, movie.shape[0], chunk):
        total += np.asarray(movie[start:start + chunk], dtype=np.float64).sum(axis=0)
    return (total / movie.shape[0]).astype(np.float32)


def _sampled(movie: np.ndarray) -> np.ndarray:
    picks = np.unique(np.linspace(0, movie.shape[0] - 1, min(movie.shape[0], CORRELATION_FRAMES)).astype(int))
    return np.asarray(movie[picks], dtype=np.float32)


def motion_key(series_key: str, params: MotionParams) -> str:
    """Names the corrected copy: the series' bytes and every motion parameter."""
    payload = json.dumps({"series": series_key, "motion": params.model_dump(mode="json")}, sort_keys=True)
    return "mc" + hashlib.sha256(payload.encode()).hexdigest()


def chunk_frames_for(frame_shape: tuple[int, int], chunk_mb: float = CHUNK_MB) -> int:
    """Frames per chunk so that one float32 chunk holds about ``chunk_mb`` MiB."""
    return max(1, int(chunk_mb * 2**20 // (4 * frame_shape[0] * frame_shape[1])))


def ensure_corrected_copy(
    movie: ConcatenatedMovie, root: str | os.PathLike, series_key: str, params: MotionParams, *,
    n_processes: int = 1, dask_scheduler: str | None = None, chunk_mb: float = CHUNK_MB,
    progress: Callable[[str, float], None] | None = None,
) -> tuple[ConcatenatedMovie, MotionOutcome, bool]:
    """The corrected copy of ``movie`` under ``root`` (adopted or written now), its shifts, and whether new.

    Give the copy back with :func:`cnmflow.movies.remove_work_copy` when the run is done with it.
    """
    def produce(staging: Path) -> ConcatenatedMovie:
        path = staging / MOVIE_NAME
        chunk = chunk_frames_for(movie.shape[1:], chunk_mb)
        out = np.memmap(path, dtype=np.float32, mode="w+", shape=movie.shape, order="C")
        try:
            result = correct_motion(movie.open(), out, params=params, n_processes=n_processes,
                                    dask_scheduler=dask_scheduler, progress=progress, chunk_frames=chunk)
            out.flush()
        finally:
            del out
        before = MovieSource.of(movie.open()).streaming()   # plain reads: the pass leaves no page resident
        outcome = MotionOutcome(
            result=result, mean_before=_mean_image(before, chunk),
            correlation_before=neighbour_correlation(_sampled(before)),
            correlation_after=neighbour_correlation(_sampled(np.memmap(path, dtype=np.float32, mode="r",
                                                                       shape=movie.shape))))
        with open(staging / RESULT_NAME, "wb") as handle:
            pickle.dump(outcome, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return ConcatenatedMovie(path=path, shape=movie.shape, offsets=movie.offsets,
                                 filled_frames=movie.filled_frames)

    corrected, new = ensure_copy(root, motion_key(series_key, params), produce, stage=STAGE, progress=progress)
    return corrected, read_motion_result(corrected), new


def read_motion_result(corrected: ConcatenatedMovie) -> MotionOutcome:
    """The shifts stored with a finished corrected copy (a file this tool wrote itself)."""
    with open(corrected.path.parent / RESULT_NAME, "rb") as handle:
        return pickle.load(handle)
