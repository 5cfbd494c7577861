"""Block means over time and space, and the upsampling back: every change of grid in the engine.

The engine works on coarser grids where that loses nothing: ``tsub`` frames and ``ssub × ssub``
pixels averaged for seeding (CaImAn's ``tsub`` / ``ssub``), the ring background's ``ssub_B`` grid,
the 2P background fitted on block means. A block mean needs a rule at the bottom / right edge,
where the last block is partial; two are in use and each caller names its own:

* ``edge="partial"``: a partial block is the mean of the pixels (frames) it holds. The rule of
  the 1P pipeline, the ring model and CaImAn's downsampling.
* ``edge="replicate"``: the image is padded by repeating its last row / column, then every block
  is a full mean; a partial block leans towards its edge pixels. The rule of the 2P background
  NMF's smooth copy.

Going back up there are three rules, for three kinds of data: bilinear interpolation between
the block centres for the ring background's fluctuation (:func:`upsample_frames`,
:func:`resampling_operators`), ``scipy.ndimage.zoom`` (bilinear, grid mode) for footprints
(:func:`upsample_footprints`), and repetition for seeding images (:func:`repeat_to_shape`).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse

from cnmflow.engine.chunking import frame_chunks
from cnmflow.pixel_order import column_to_image, image_to_column

__all__ = [
    "EDGE_RULES",
    "downsampled_dims",
    "downsampled_shape",
    "spatial_block_means",
    "frame_block_means",
    "block_means_along",
    "downsample",
    "downsample_in_chunks",
    "downsampled_noise",
    "upsample_frames",
    "resampling_operators",
    "upsample_footprints",
    "repeat_to_shape",
]

#: Rules for the partial last block of a block mean (see the module docstring).
EDGE_RULES = ("partial", "replicate")
#: Largest downsampled grid side upsampled by dense interpolation matrices (BLAS products, whose
#: cost per pixel grows with the side) rather than by gathers (constant cost per pixel).
DENSE_UPSAMPLE_MAX_SIDE = 96


def downsampled_dims(dims: tuple[int, int], factor: int) -> tuple[int, int]:
    """(rows, cols) of the grid of ``factor × factor`` blocks (partial edge blocks count)."""
    return (-(-dims[0] // factor), -(-dims[1] // factor))


def downsampled_shape(shape: tuple[int, int, int], *, tsub: int, ssub: int) -> tuple[int, int, int]:
    """(frames, rows, cols) of a movie after :func:`downsample` by ``tsub`` and ``ssub``."""
    return (-(-shape[0] // tsub), *downsampled_dims(shape[1:], ssub))


# ----------------------------------------------------------------------------- block means


def spatial_block_means(frames: np.ndarray, factor: int, *, edge: str) -> np.ndarray:
    """Means over ``factor × factor`` blocks of the last two axes of (n, rows, cols) ``frames``.

    Returns (n, ceil(rows/factor), ceil(cols/factor)). ``edge="partial"`` works in float32 (the
    input is cast) and returns ``frames`` itself for ``factor == 1``; ``edge="replicate"`` keeps
    numpy's mean dtype (float64 for float64 input).
    """
    if edge == "partial":
        return _partial_block_means(np.asarray(frames, dtype=np.float32), factor)
    if edge == "replicate":
        return _replicated_block_means(frames, factor)
    raise ValueError(f"edge={edge!r} is not a block-mean edge rule; use one of {EDGE_RULES}")


def _partial_block_means(frames: np.ndarray, s: int) -> np.ndarray:
    """``edge="partial"`` block means of float32 frames, as sums of ``s`` strided views per axis
    (much faster than ``np.add.reduceat``)."""
    if s == 1:
        return frames
    n, h, w = frames.shape
    hd, wd = -(-h // s), -(-w // s)
    rsum = np.zeros((n, hd, w), np.float32)
    for k in range(s):
        v = frames[:, k::s, :]
        rsum[:, : v.shape[1]] += v
    out = np.zeros((n, hd, wd), np.float32)
    for k in range(s):
        v = rsum[:, :, k::s]
        out[:, :, : v.shape[2]] += v
    del rsum
    starts_y, starts_x = np.arange(hd) * s, np.arange(wd) * s
    cy = np.minimum(starts_y + s, h) - starts_y
    cx = np.minimum(starts_x + s, w) - starts_x
    out *= (1.0 / (cy[:, None] * cx[None, :])).astype(np.float32)
    return out


def _replicated_block_means(frames: np.ndarray, step: int) -> np.ndarray:
    """``edge="replicate"`` block means: the frames edge-padded to whole blocks, then averaged."""
    T, h, w = frames.shape
    ph, pw = -h % step, -w % step
    padded = np.pad(frames, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return padded.reshape(T, (h + ph) // step, step, (w + pw) // step, step).mean(axis=(2, 4))


def frame_block_means(frames: np.ndarray, factor: int) -> np.ndarray:
    """Means over ``factor`` consecutive frames of (T, ...) float32 ``frames``; a partial last
    block is the mean of the frames it holds (``edge="partial"``)."""
    whole = frames.shape[0] // factor * factor
    blocks = frames[:whole].reshape(-1, factor, *frames.shape[1:]).mean(axis=1)
    if whole < frames.shape[0]:
        blocks = np.concatenate([blocks, frames[whole:].mean(axis=0, keepdims=True)])
    return blocks


def block_means_along(values: np.ndarray, factor: int, *, axis: int) -> np.ndarray:
    """Means over blocks of ``factor`` consecutive entries along ``axis`` (a partial last block is
    the mean of what it holds), as block sums over block sizes: for traces (K, T) and pixel rows."""
    length = values.shape[axis]
    starts = np.arange(0, length, factor)
    counts = np.diff(np.append(starts, length))
    sums = np.add.reduceat(values, starts, axis=axis)
    shape = [1] * sums.ndim
    shape[axis] = counts.size
    return sums / counts.reshape(shape)


def downsample(movie: np.ndarray, *, tsub: int, ssub: int) -> np.ndarray:
    """Block means over ``tsub`` frames and ``ssub``×``ssub`` pixels (partial blocks averaged too)."""
    out = np.asarray(movie, dtype=np.float32)
    if tsub > 1:
        out = frame_block_means(out, tsub)
    return spatial_block_means(out, ssub, edge="partial")


def downsample_in_chunks(frames, *, tsub: int, ssub: int, out, chunk_bytes: int | None = None):
    """:func:`downsample` of (T, rows, cols) ``frames`` (anything sliced by frames), computed from
    chunks of whole ``tsub`` blocks holding about ``chunk_bytes`` each and written into ``out``
    (an array of :func:`downsampled_shape`); returns ``out``."""
    T, h, w = frames.shape
    for chunk in frame_chunks(T, h * w, chunk_bytes, multiple_of=tsub):
        part = downsample(frames[chunk], tsub=tsub, ssub=ssub)
        out[chunk.start // tsub:chunk.start // tsub + part.shape[0]] = part
    return out


def downsampled_noise(noise: np.ndarray, ssub: int) -> np.ndarray:
    """(h, w) full-rate noise sd → (pixels,) Fortran order on the ssub grid: the root of the
    block-mean variance (divide by ``sqrt(tsub·ssub²)`` for the noise of the block means)."""
    variance = spatial_block_means(np.asarray(noise, dtype=np.float32)[None] ** 2, ssub, edge="partial")[0]
    return image_to_column(np.sqrt(np.maximum(variance, 0)))


# ----------------------------------------------------------------------------- upsampling


def _interp_axis(n: int, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation indices/weights from the block centres of an axis of length n."""
    nd = -(-n // s)
    starts = np.arange(nd) * s
    centres = (starts + np.minimum(starts + s, n) - 1) / 2.0
    pos = np.arange(n, dtype=np.float64)
    i0 = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, nd - 1)
    i1 = np.minimum(i0 + 1, nd - 1)
    span = centres[i1] - centres[i0]
    wgt = np.where(span > 0, (pos - centres[i0]) / np.where(span > 0, span, 1.0), 0.0)
    return i0, i1, np.clip(wgt, 0.0, 1.0).astype(np.float32)


def upsample_frames(x: np.ndarray, dims: tuple[int, int], factor: int) -> np.ndarray:
    """(n, dr, dc) ``edge="partial"`` block-mean images back to (n, rows, cols): bilinear between
    the block centres, edge values held beyond the outermost centres (float32 in, float32 out)."""
    if factor == 1:
        return x
    if max(x.shape[1:]) <= DENSE_UPSAMPLE_MAX_SIDE:
        # a patch-sized grid: two small matrix products, several times faster than the gathers
        up_rows = _axis_upsampling(dims[0], factor).toarray().astype(np.float32)
        up_cols = _axis_upsampling(dims[1], factor).toarray().astype(np.float32)
        n, dr, dc = x.shape
        along_cols = (x.reshape(n * dr, dc) @ up_cols.T).reshape(n, dr, dims[1])
        return np.matmul(up_rows, along_cols)
    y0, y1, wy = _interp_axis(dims[0], factor)
    x0, x1, wx = _interp_axis(dims[1], factor)
    # columns first, on the small (n, dr, dc) array; then whole rows (contiguous copies)
    t = np.take(x, x0, axis=2)
    t *= (1 - wx)[None, None, :]
    t += np.take(x, x1, axis=2) * wx[None, None, :]
    out = np.take(t, y0, axis=1)
    out *= (1 - wy)[None, :, None]
    out += np.take(t, y1, axis=1) * wy[None, :, None]
    return out


def _axis_downsampling(n: int, s: int) -> scipy.sparse.csr_matrix:
    """(ceil(n/s), n) block-mean matrix of one axis (partial last block averaged)."""
    nd = -(-n // s)
    block = np.arange(n) // s
    counts = np.bincount(block, minlength=nd).astype(np.float64)
    return scipy.sparse.csr_matrix((1.0 / counts[block], (block, np.arange(n))), shape=(nd, n))


def _axis_upsampling(n: int, s: int) -> scipy.sparse.csr_matrix:
    """(n, ceil(n/s)) linear-interpolation matrix of one axis, the same weights as :func:`upsample_frames`."""
    nd = -(-n // s)
    i0, i1, weight = _interp_axis(n, s)
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([i0, i1])
    values = np.concatenate([1.0 - weight, weight]).astype(np.float64)
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, nd))


def resampling_operators(dims: tuple[int, int], factor: int) -> tuple[scipy.sparse.csr_matrix,
                                                                      scipy.sparse.csr_matrix]:
    """(D, U): the ``edge="partial"`` block-mean downsampling (d_ds × d) and bilinear upsampling
    (d × d_ds) operators on Fortran-ordered pixels.

    In Fortran pixel order a separable operator is ``kron(columns, rows)``; with them the ring
    background of a frame ``y`` is ``b0 + U W D (y − A c − b0)``, which lets callers project it
    onto footprints without forming it (``Aᵀ U W`` is small).
    """
    rows, cols = dims
    if factor == 1:
        eye = scipy.sparse.identity(rows * cols, format="csr")
        return eye, eye
    down = scipy.sparse.kron(_axis_downsampling(cols, factor), _axis_downsampling(rows, factor), format="csr")
    up = scipy.sparse.kron(_axis_upsampling(cols, factor), _axis_upsampling(rows, factor), format="csr")
    return down, up


def upsample_footprints(A: np.ndarray, small: tuple[int, int], full: tuple[int, int]) -> np.ndarray:
    """Footprints (pixels, K) found on the ssub grid → the full-resolution grid (bilinear zoom in
    grid mode, replicate borders; negative overshoot clipped)."""
    if small == full:
        return A
    out = np.zeros((full[0] * full[1], A.shape[1]), dtype=np.float32)
    for k in range(A.shape[1]):
        image = column_to_image(A[:, k], small)
        zoomed = ndi.zoom(image, (full[0] / small[0], full[1] / small[1]), order=1, grid_mode=True,
                          mode="nearest")
        out[:, k] = image_to_column(np.maximum(zoomed[:full[0], :full[1]], 0))
    return out


def repeat_to_shape(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image on a block grid repeated back onto ``shape`` (each block's value on all its pixels)."""
    factor = -(-shape[0] // image.shape[0]), -(-shape[1] // image.shape[1])
    return np.repeat(np.repeat(image, factor[0], axis=0), factor[1], axis=1)[:shape[0], :shape[1]]
