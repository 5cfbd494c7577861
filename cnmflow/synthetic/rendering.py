"""Turning cell images and traces into frames: the steps both realistic simulators share.

A simulator draws its scene as a sparse ``(pixels, sources)`` matrix of images and a
``(sources, frames)`` matrix of traces; :func:`render_frames` moves, bleaches and draws each chunk of
frames through the simulator's own detector model (a camera's shot and read noise for one-photon
data, a photomultiplier's for two-photon), so a long movie never has to be held as a float64 cube.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import scipy.sparse
from scipy.ndimage import shift as nd_shift

from cnmflow.errors import ParameterError
from cnmflow.synthetic.checks import check_fraction, check_positive, check_shape

__all__ = ["check_movie_arguments", "log_uniform", "paste", "pasted_columns", "dense_images", "render_frames"]

CHUNK_FRAMES = 64

#: ``draw(expected_photons) -> frames``: a detector turning a chunk's expected counts into float32 frames.
Detector = Callable[[np.ndarray], np.ndarray]


def check_movie_arguments(shape, n_frames, *, motion_px, bleach_fraction, out: np.ndarray | None,
                          frames_kept: bool = True) -> tuple[int, int, int, np.ndarray]:
    """``(rows, cols, T, out)`` once the arguments every realistic simulator takes are checked; ``out`` allocated
    when not given (``(0, rows, cols)`` when ``frames_kept`` is False: only the truth is wanted)."""
    rows, cols = check_shape(shape)
    check_positive("n_frames", n_frames, integer=True)
    check_positive("motion_px", motion_px, allow_zero=True)
    check_fraction("bleach_fraction", bleach_fraction)
    T = int(n_frames)
    if out is None:
        out = np.empty((T if frames_kept else 0, rows, cols), np.float32)
    elif out.shape != (T, rows, cols) or out.dtype != np.float32:
        raise ParameterError(f"out has shape {out.shape} and dtype {out.dtype}: give ({T}, {rows}, {cols}) float32.")
    return rows, cols, T, out


def log_uniform(gen: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` draws spread evenly on a log scale between ``lo`` and ``hi``."""
    return np.exp(gen.uniform(math.log(lo), math.log(hi), size=n))


def paste(img: np.ndarray, center: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat C-order pixel indices and values of a ``(2h+1)²`` image centred at int(center)."""
    h = img.shape[0] // 2
    r0, c0 = int(round(center[0])) - h, int(round(center[1])) - h
    rr, cc = np.nonzero(img)
    rr_f, cc_f = rr + r0, cc + c0
    inside = (rr_f >= 0) & (rr_f < rows) & (cc_f >= 0) & (cc_f < cols)
    return rr_f[inside] * cols + cc_f[inside], img[rr[inside], cc[inside]]


def pasted_columns(pieces: list[tuple[np.ndarray, np.ndarray]], rows: int, cols: int) -> scipy.sparse.csc_matrix:
    """The (indices, values) :func:`paste` gave for each image, as the columns of a CSC ``(rows*cols, n)`` matrix."""
    ptr = np.r_[0, np.cumsum([len(indices) for indices, _ in pieces], dtype=np.int64)]
    indices = np.concatenate([i for i, _ in pieces]) if pieces else np.zeros(0, np.int64)
    values = np.concatenate([v for _, v in pieces]) if pieces else np.zeros(0)
    return scipy.sparse.csc_matrix((values, indices, ptr), shape=(rows * cols, len(pieces)))


def dense_images(mat: scipy.sparse.csc_matrix, rows: int, cols: int) -> np.ndarray:
    """``(n, rows, cols)`` float32 images of a CSC ``(rows*cols, n)`` matrix's columns."""
    return np.asarray(mat.T.toarray(), dtype=np.float32).reshape(-1, rows, cols)


def render_frames(*, spatial: scipy.sparse.csr_matrix, temporal: np.ndarray, rows: int, cols: int, bleach: np.ndarray,
                  shifts: np.ndarray, detector: Detector, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (T, rows, cols) with ``detector(λ)``, λ = bleach·shift(spatial @ temporal)."""
    T = temporal.shape[1]
    moving = bool(np.any(shifts))
    for t0 in range(0, T, CHUNK_FRAMES):
        t1 = min(T, t0 + CHUNK_FRAMES)
        lam = np.asarray((spatial @ temporal[:, t0:t1]).T).reshape(t1 - t0, rows, cols)
        if moving:
            for i in range(t1 - t0):
                lam[i] = nd_shift(lam[i], shifts[t0 + i], order=3, mode="nearest")
        lam *= bleach[t0:t1, None, None]
        np.clip(lam, 0.0, None, out=lam)
        out[t0:t1] = detector(lam)
    return out
