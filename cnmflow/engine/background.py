"""1P ring background model of CNMF-E (Zhou et al., eLife 2018), written from the math.

Model
-----
    B = b0 · 1ᵀ + W · (Y − A·C − b0 · 1ᵀ)

* ``b0`` (rows*cols,) is the temporal mean of the residual ``Y − A·C`` at full resolution.
* ``W`` is a sparse (d × d) matrix over the pixels of the grid spatially downsampled by
  ``ssub_B`` (block means; partial blocks at the bottom/right edges are the means of the
  pixels they hold; ``ssub_B = 1`` is the full grid). Row ``p`` holds weights only on the
  pixels of the *ring* around ``p``: the pixels whose Euclidean distance to ``p`` lies in
  ``[r, r + 1)`` (a one-pixel-thick ring), clipped at the image borders.
* The ring radius on the downsampled grid is ``r = round(ring_size_factor · gsiz / ssub_B)``
  (round half up, at least 1): the paper's "radius ≈ ring_size_factor · gSiz" expressed in
  downsampled pixels.
* The weights of pixel ``p`` are a ridge regression of its mean-removed residual trace
  ``x_p`` on those of its ring pixels ``X_R``::

      w_p = (X_R X_Rᵀ + 1e-5 · tr(X_R X_Rᵀ) · I)⁻¹ X_R x_p

* With ``ssub_B > 1`` the fluctuating part ``W · downsample(Y − A·C − b0)`` is brought back
  to full resolution by **bilinear** interpolation between the centres of the downsampling
  blocks (edge values are held constant beyond the outermost centres); ``b0`` stays at full
  resolution. Bilinear rather than nearest because the background is smooth and nearest
  upsampling would leave ``ssub_B``-sized steps in the residual.

Fitting cost and memory
-----------------------
The image is processed in spatial blocks of ``block_pixels × block_pixels`` downsampled
pixels. For each block only the frames' sub-box covering the block plus the ring margin is
read (a slice of the memmap), ``A·C`` is subtracted for that box only, the box is
downsampled, mean-removed, and its Gram matrix ``X Xᵀ`` (float32, one BLAS syrk) is formed
once; each pixel's small ring system is gathered from it and solved in float64, in batches.
The full ``T × pixels`` residual is never built; memory is about
``n_box · T_fit · 4`` bytes for the box, ``n_box² · 4`` bytes for its Gram and
``chunk_frames`` frames of the (full-resolution) box.

The cost is dominated by the box Gram matrices, ``≈ n_box² · T_fit`` per block
(``n_box = (block_pixels + 2r)²``), i.e. linear in the number of fitting frames. Pass
``frames=slice(None, None, k)`` to fit ``W`` (and ``b0``) on every k-th frame only: the ring
weights are a regression on the background's spatial covariance, which a few hundred to a
thousand frames pin down well. ``b0`` is then the mean over those frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from cnmflow.errors import MovieError, ParameterError

__all__ = [
    "RingModel",
    "ring_radius",
    "ring_offsets",
    "fit_ring_model",
    "ring_background",
    "ring_residual",
    "subtract_background",
    "undo_ring_residual",
]

#: relative ridge penalty: λ = RIDGE · tr(X_R X_Rᵀ)
RIDGE = 1e-5
#: minimum elements of one batch of ring systems; batches grow to 1/16 of the box Gram,
#: so the solver's temporaries stay a fraction of the Gram's memory
_SOLVE_ELEMS = 2**15


@dataclass(frozen=True)
class RingModel:
    """A fitted ring background model (see module docstring)."""

    W: scipy.sparse.csr_matrix  # (d_ds, d_ds) weights on the ssub_B-downsampled grid, Fortran pixel order
    b0: np.ndarray  # (rows*cols,) full-resolution constant baseline, Fortran order
    dims: tuple[int, int]  # full-resolution (rows, cols)
    ssub_B: int
    radius: int  # ring radius on the downsampled grid

    @property
    def dims_ds(self) -> tuple[int, int]:
        """Shape of the downsampled grid W lives on."""
        return _ds_dims(self.dims, self.ssub_B)


# ----------------------------------------------------------------------------- helpers


def _ds_dims(dims: tuple[int, int], s: int) -> tuple[int, int]:
    return (-(-dims[0] // s), -(-dims[1] // s))


def ring_radius(*, gsiz: int, ring_size_factor: float, ssub_B: int) -> int:
    """Ring radius on the ``ssub_B``-downsampled grid: ``round(ring_size_factor·gsiz/ssub_B)``.

    Rounds half up and returns at least 1 (a radius of 0 would make each pixel its own ring).
    """
    if not np.isfinite(gsiz) or gsiz <= 0:
        raise ParameterError(f"gsiz must be a positive number of pixels, got {gsiz!r}; use e.g. gsiz=4*gSig+1")
    if not np.isfinite(ring_size_factor) or ring_size_factor <= 0:
        raise ParameterError(
            f"ring_size_factor must be > 0, got {ring_size_factor!r}; CaImAn's default for CNMF-E is 1.4"
        )
    if int(ssub_B) != ssub_B or ssub_B < 1:
        raise ParameterError(f"ssub_B must be an integer >= 1, got {ssub_B!r}; use 1 (full grid) or 2")
    return max(1, int(np.floor(ring_size_factor * gsiz / ssub_B + 0.5)))


def ring_offsets(radius: int) -> np.ndarray:
    """(n_ring, 2) integer (dy, dx) offsets with ``radius <= hypot(dy, dx) < radius + 1``."""
    r = int(radius)
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    d2 = dy * dy + dx * dx
    keep = (d2 >= r * r) & (d2 < (r + 1) * (r + 1))
    return np.stack([dy[keep], dx[keep]], axis=1)


def _downsample(frames: np.ndarray, s: int) -> np.ndarray:
    """Block means over ``s × s`` blocks of the last two axes (partial edge blocks allowed).

    Sums of ``s`` strided views per axis (much faster than ``np.add.reduceat``).
    """
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


#: Largest downsampled grid side upsampled by dense interpolation matrices (BLAS products, whose
#: cost per pixel grows with the side) rather than by gathers (constant cost per pixel).
_DENSE_UPSAMPLE_MAX_SIDE = 96


def _upsample(x: np.ndarray, dims: tuple[int, int], s: int) -> np.ndarray:
    """Bilinear upsampling of (n, dr, dc) block-mean images back to (n, rows, cols)."""
    if s == 1:
        return x
    if max(x.shape[1:]) <= _DENSE_UPSAMPLE_MAX_SIDE:
        # a patch-sized grid: two small matrix products, several times faster than the gathers
        up_rows = _axis_upsampling(dims[0], s).toarray().astype(np.float32)
        up_cols = _axis_upsampling(dims[1], s).toarray().astype(np.float32)
        n, dr, dc = x.shape
        along_cols = (x.reshape(n * dr, dc) @ up_cols.T).reshape(n, dr, dims[1])
        return np.matmul(up_rows, along_cols)
    y0, y1, wy = _interp_axis(dims[0], s)
    x0, x1, wx = _interp_axis(dims[1], s)
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
    """(n, ceil(n/s)) linear-interpolation matrix of one axis, the same weights as ``_upsample``."""
    nd = -(-n // s)
    i0, i1, weight = _interp_axis(n, s)
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([i0, i1])
    values = np.concatenate([1.0 - weight, weight]).astype(np.float64)
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n, nd))


def resampling_operators(dims: tuple[int, int], ssub_B: int) -> tuple[scipy.sparse.csr_matrix,
                                                                      scipy.sparse.csr_matrix]:
    """(D, U): the block-mean downsampling (d_ds × d) and bilinear upsampling (d × d_ds) operators.

    In Fortran pixel order a separable operator is ``kron(columns, rows)``; with them the ring
    background of a frame ``y`` is ``b0 + U W D (y − A c − b0)``, which lets callers project it
    onto footprints without forming it (``Aᵀ U W`` is small).
    """
    rows, cols = dims
    if ssub_B == 1:
        eye = scipy.sparse.identity(rows * cols, format="csr")
        return eye, eye
    down = scipy.sparse.kron(_axis_downsampling(cols, ssub_B), _axis_downsampling(rows, ssub_B), format="csr")
    up = scipy.sparse.kron(_axis_upsampling(cols, ssub_B), _axis_upsampling(rows, ssub_B), format="csr")
    return down, up


def downsample_frames(frames: np.ndarray, ssub_B: int) -> np.ndarray:
    """Block means of (n, rows, cols) frames onto the ring model's grid, (n, ceil(rows/s), ceil(cols/s))."""
    return _downsample(np.asarray(frames, dtype=np.float32), ssub_B)


def _check_frames(frames, T: int) -> range:
    if frames is None:
        return range(T)
    if not isinstance(frames, slice):
        raise ParameterError(
            f"frames must be a slice or None, got {type(frames).__name__}; use e.g. frames=slice(None, None, 2)"
        )
    if frames.step is not None and frames.step <= 0:
        raise ParameterError(f"frames must have a positive step, got {frames!r}")
    rr = range(T)[frames]
    if len(rr) < 2:
        raise ParameterError(f"frames={frames!r} selects {len(rr)} of {T} frames; the ring fit needs at least 2")
    return rr


def _as_slice(rr: range) -> slice:
    return slice(rr.start, rr.stop, rr.step)


# ----------------------------------------------------------------------------- fitting


def fit_ring_model(
    movie,
    A,
    C,
    *,
    gsiz: int,
    ring_size_factor: float,
    ssub_B: int = 2,
    chunk_frames: int = 500,
    block_pixels: int = 32,
    frames: slice | None = None,
) -> RingModel:
    """Fit the ring background model to ``movie − A·C``.

    movie: (T, rows, cols) float array or np.memmap (only sub-boxes are read).
    A: (rows*cols, K) sparse (CSC), Fortran pixel order; K may be 0. C: (K, T).
    frames: optional slice (positive step) of frames to fit on, e.g. ``slice(None, None, 3)``
    to use every third frame; both ``W`` and ``b0`` come from those frames.
    chunk_frames bounds how many frames of one box are read at a time; block_pixels is the
    block side on the downsampled grid.
    """
    if getattr(movie, "ndim", None) != 3:
        raise MovieError(
            f"movie must be a (frames, rows, cols) array, got shape {getattr(movie, 'shape', None)}"
        )
    T, rows, cols = (int(v) for v in movie.shape)
    d = rows * cols
    s = int(ssub_B)
    r = ring_radius(gsiz=gsiz, ring_size_factor=ring_size_factor, ssub_B=ssub_B)
    if int(chunk_frames) != chunk_frames or chunk_frames < 1:
        raise ParameterError(f"chunk_frames must be an integer >= 1, got {chunk_frames!r}")
    if int(block_pixels) != block_pixels or block_pixels < 1:
        raise ParameterError(f"block_pixels must be an integer >= 1, got {block_pixels!r}")
    chunk_frames, block_pixels = int(chunk_frames), int(block_pixels)

    if A is None:
        A = scipy.sparse.csr_matrix((d, 0), dtype=np.float32)
    A = scipy.sparse.csr_matrix(A, dtype=np.float32)
    if A.shape[0] != d:
        raise ParameterError(
            f"A has {A.shape[0]} rows but the movie has {rows}x{cols}={d} pixels; A must be (rows*cols, K)"
        )
    K = A.shape[1]
    C = np.zeros((0, T), np.float32) if C is None else np.asarray(C)
    if C.ndim != 2 or C.shape != (K, T):
        raise ParameterError(f"C must have shape (K, T)=({K}, {T}) to match A and the movie, got {C.shape}")
    tsel = _check_frames(frames, T)
    Tf = len(tsel)

    dr, dc = _ds_dims((rows, cols), s)
    d_ds = dr * dc
    if dr * dc <= (block_pixels + 2 * r) ** 2:
        block_pixels = max(dr, dc)  # one box: the blocks' margins would overlap into several Grams of it
    offs = ring_offsets(r)
    offs = offs[np.lexsort((offs[:, 0], offs[:, 1]))]  # by (dx, dy): column indices ascend within a row
    n_ring = len(offs)
    box_max = (min(dr, block_pixels + 2 * r) * min(dc, block_pixels + 2 * r)) ** 2
    nbatch = max(1, min(256, max(_SOLVE_ELEMS, box_max // 16) // (n_ring * n_ring)))
    b0 = np.empty((rows, cols), np.float64)

    # W's CSR structure is known up front: row p holds its (clipped) ring in (dx, dy) order
    yy_ds, xx_ds = np.arange(dr), np.arange(dc)
    counts = np.zeros((dr, dc), np.int64)
    for dy, dx in offs:
        counts += ((yy_ds + dy >= 0) & (yy_ds + dy < dr))[:, None] & ((xx_ds + dx >= 0) & (xx_ds + dx < dc))[None, :]
    indptr = np.zeros(d_ds + 1, np.int64)
    np.cumsum(counts.ravel(order="F"), out=indptr[1:])
    nnz = int(indptr[-1])
    idx_dtype = np.int32 if max(nnz, d_ds) < 2**31 else np.int64
    indptr = indptr.astype(idx_dtype)
    W_indices = np.empty(nnz, idx_dtype)
    W_data = np.zeros(nnz, np.float32)

    for by0 in range(0, dr, block_pixels):
        by1 = min(dr, by0 + block_pixels)
        ys, ye = max(0, by0 - r), min(dr, by1 + r)  # box on the downsampled grid
        for bx0 in range(0, dc, block_pixels):
            bx1 = min(dc, bx0 + block_pixels)
            xs, xe = max(0, bx0 - r), min(dc, bx1 + r)
            hb, wb = ye - ys, xe - xs
            # full-resolution box and core
            fy0, fy1, fx0, fx1 = ys * s, min(rows, ye * s), xs * s, min(cols, xe * s)
            cy0, cy1 = by0 * s - fy0, min(rows, by1 * s) - fy0
            cx0, cx1 = bx0 * s - fx0, min(cols, bx1 * s) - fx0

            # neural part restricted to the box: rows of A in (row, col) C-order of the box
            yy = np.arange(fy0, fy1)
            xx = np.arange(fx0, fx1)
            pix = (xx[None, :] * rows + yy[:, None]).ravel()
            A_box = A[pix]
            used = np.unique(A_box.indices) if A_box.nnz else np.zeros(0, np.intp)
            A_box = A_box[:, used].tocsr() if len(used) else None
            C_box = np.asarray(C[used], dtype=np.float32) if len(used) else None

            X = np.empty((hb * wb, Tf), np.float32)
            core_sum = np.zeros((cy1 - cy0, cx1 - cx0), np.float64)
            for t0 in range(0, Tf, chunk_frames):
                rr = tsel[t0 : t0 + chunk_frames]
                nt = len(rr)
                res = np.array(movie[_as_slice(rr), fy0:fy1, fx0:fx1], dtype=np.float32)
                if A_box is not None:
                    ac = A_box @ C_box[:, _as_slice(rr)]  # (box pixels, nt) float32
                    res -= ac.reshape(fy1 - fy0, fx1 - fx0, nt).transpose(2, 0, 1)
                    del ac
                core_sum += res[:, cy0:cy1, cx0:cx1].sum(axis=0, dtype=np.float64)
                X[:, t0 : t0 + nt] = _downsample(res, s).reshape(nt, hb * wb).T
                del res
            b0[fy0 + cy0 : fy0 + cy1, fx0 + cx0 : fx0 + cx1] = core_sum / Tf
            X -= X.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
            G = X @ X.T  # one BLAS syrk, float32
            del X

            # the block's core pixels and their rings, in box-local C-order indices
            py, px = np.mgrid[by0:by1, bx0:bx1]
            py, px = py.ravel(), px.ravel()
            for i0 in range(0, len(py), nbatch):
                qy = py[i0 : i0 + nbatch, None] + offs[None, :, 0]
                qx = px[i0 : i0 + nbatch, None] + offs[None, :, 1]
                valid = (qy >= 0) & (qy < dr) & (qx >= 0) & (qx < dc)
                loc = np.where(valid, (qy - ys) * wb + (qx - xs), 0)
                ploc = (py[i0 : i0 + nbatch] - ys) * wb + (px[i0 : i0 + nbatch] - xs)
                w = _solve_rings(G, loc, valid, ploc)
                prow = px[i0 : i0 + nbatch] * dr + py[i0 : i0 + nbatch]
                pos = (indptr[prow][:, None] + np.cumsum(valid, axis=1) - 1)[valid]
                W_indices[pos] = (qx * dr + qy)[valid]
                W_data[pos] = w[valid]
            del G

    W = scipy.sparse.csr_matrix((W_data, W_indices, indptr), shape=(d_ds, d_ds), copy=False)
    W.has_sorted_indices = True
    return RingModel(W=W, b0=b0.ravel(order="F").astype(np.float32), dims=(rows, cols), ssub_B=s, radius=r)


def _solve_rings(G: np.ndarray, loc: np.ndarray, valid: np.ndarray, ploc: np.ndarray) -> np.ndarray:
    """Batched ridge solves: rows of loc index ring pixels in G, ploc the target pixels.

    Invalid (off-image) ring entries become decoupled unit-diagonal rows with zero
    right-hand side, so their weight is exactly 0 and the batch has a uniform size.
    """
    nbox = G.shape[0]
    Gf = G.reshape(-1)
    it = np.int32 if nbox * nbox < 2**31 else np.int64
    loc = loc.astype(it, copy=False)
    M = np.take(Gf, loc[:, :, None] * it(nbox) + loc[:, None, :]).astype(np.float64)
    rhs = np.take(Gf, loc * it(nbox) + ploc.astype(it)[:, None]).astype(np.float64)
    if not valid.all():
        vm = valid.astype(np.float64)
        M *= vm[:, :, None]
        M *= vm[:, None, :]
        rhs *= vm
    diag = np.einsum("bii->bi", M)  # writable view
    tr = diag.sum(axis=1)
    lam = RIDGE * tr
    lam = np.where(lam > 0, lam, 1.0)  # all-constant ring: any λ gives w = 0
    diag += np.where(valid, lam[:, None], 1.0)
    return np.linalg.solve(M, rhs[:, :, None])[:, :, 0]


# ----------------------------------------------------------------------------- applying


def _checked_frames(model: RingModel, frames: np.ndarray, AC: np.ndarray | None) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    rows, cols = model.dims
    if frames.ndim != 3 or frames.shape[1:] != (rows, cols):
        raise MovieError(f"frames must have shape (n, {rows}, {cols}) to match the ring model, got {frames.shape}")
    if AC is not None and np.shape(AC) != frames.shape:
        raise ParameterError(f"AC must have the frames' shape {frames.shape}, got {np.shape(AC)}")
    return frames


def _baseline_free(model: RingModel, frames: np.ndarray, AC: np.ndarray | None, out: np.ndarray | None) -> np.ndarray:
    """``R = Y − AC − b0`` (float32), into ``out`` when given (which may be ``frames`` itself)."""
    rows, cols = model.dims
    b0 = np.asarray(model.b0, np.float32).reshape((rows, cols), order="F")
    R = np.subtract(frames, b0[None], out=out, dtype=np.float32)
    if AC is not None:
        R -= AC
    return R


def _fluctuation_small(model: RingModel, R: np.ndarray) -> np.ndarray:
    """``W · downsample(R)`` on the ring grid, (n, dr, dc) float32, for baseline-free frames ``R``."""
    n = R.shape[0]
    small = _downsample(R, model.ssub_B)
    dr, dc = small.shape[1:]
    M = small.transpose(0, 2, 1).reshape(n, dr * dc)  # Fortran pixel order
    F = np.asarray(model.W @ M.T, dtype=np.float32)  # (d_ds, n)
    return F.T.reshape(n, dc, dr).transpose(0, 2, 1)


def _fluctuation(model: RingModel, R: np.ndarray) -> np.ndarray:
    """``upsample(W · downsample(R))`` for baseline-free frames ``R`` (n, rows, cols), float32."""
    return _upsample(_fluctuation_small(model, R), model.dims, model.ssub_B)


def ring_background(model: RingModel, frames: np.ndarray, AC: np.ndarray | None = None) -> np.ndarray:
    """Background ``B = b0 + upsample(W · downsample(Y − AC − b0))`` for a chunk of frames.

    frames: (n, rows, cols) raw movie frames; AC: the neural part for those frames as
    (n, rows, cols), or None for 0. Returns (n, rows, cols) float32.
    """
    frames = _checked_frames(model, frames, AC)
    out = np.ascontiguousarray(_fluctuation(model, _baseline_free(model, frames, AC, None)))  # a fresh array
    out += np.asarray(model.b0, np.float32).reshape(model.dims, order="F")[None]
    return out


def ring_residual(model: RingModel, frames: np.ndarray, AC: np.ndarray | None = None, *,
                  out: np.ndarray | None = None, fluctuation_out: np.ndarray | None = None) -> np.ndarray:
    """``Y − AC − B`` for a chunk of frames, float32; ``out=frames`` computes it in place.

    ``Y − AC − B = R − upsample(W · downsample(R))`` with ``R = Y − AC − b0``, so ``R`` is formed
    once (in ``out``) and the background is never built. ``fluctuation_out`` (n, dr, dc) receives
    ``W · downsample(R)``: with it :func:`undo_ring_residual` gives the frames back.
    """
    frames = _checked_frames(model, frames, AC)
    R = _baseline_free(model, frames, AC, out)
    small = _fluctuation_small(model, R)
    if fluctuation_out is not None:
        fluctuation_out[...] = small
    R -= _upsample(small, model.dims, model.ssub_B)
    return R


def undo_ring_residual(model: RingModel, residual: np.ndarray, fluctuation: np.ndarray,
                       AC: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """The frames ``Y = residual + upsample(fluctuation) + AC + b0`` back from :func:`ring_residual`.

    ``fluctuation`` is what ring_residual wrote to ``fluctuation_out``, a quarter of the frames'
    size for ``ssub_B = 2``: keeping it instead of the frames lets a caller overwrite them with
    the residual. ``out=residual`` works in place. Float32 (rounding of the round trip ~1e-7).
    """
    residual = _checked_frames(model, residual, AC)
    b0 = np.asarray(model.b0, np.float32).reshape(model.dims, order="F")
    Y = np.add(residual, b0[None], out=out, dtype=np.float32)
    Y += _upsample(fluctuation, model.dims, model.ssub_B)
    if AC is not None:
        Y += AC
    return Y


def subtract_background(
    model: RingModel, frames: np.ndarray, AC: np.ndarray | None = None
) -> np.ndarray:
    """Convenience: ``frames − ring_background(model, frames, AC)`` as float32."""
    return (np.asarray(frames, np.float32) - ring_background(model, frames, AC)).astype(np.float32, copy=False)
