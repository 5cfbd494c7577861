"""1P ring background model of CNMF-E (Zhou et al., eLife 2018), written from the math.

Model
-----
    B = b0 · 1ᵀ + W · (Y − A·C − b0 · 1ᵀ)

* ``b0`` (rows*cols,) is the temporal mean of the residual ``Y − A·C`` at full resolution.
* ``W`` is a sparse (d × d) matrix over the pixels of the grid spatially downsampled by
  ``ssub_B`` (block means; partial blocks at the bottom/right edges are the means of the
  pixels they hold; ``ssub_B = 1`` is the full grid). Row ``p`` holds weights only on the
  pixels of the *ring* around ``p``: the pixels whose Euclidean distance to ``p`` lies in
  ``[r, r + 1)`` (a one-pixel-thick ring), completed where the field's edge cuts it (below).
* **Rings cut by the field's edge.** A pixel nearer the edge than ``r`` would regress on a
  one-sided arc and extrapolate the smooth background from it. Each ring point beyond the edge
  is instead moved back along its ray from ``p`` to the last pixel before the edge, and used if it
  is at least ``ring_edge_radius = round(EDGE_RING_FRACTION · r)`` from ``p`` (half the ring's
  radius: farther than a cell's own pixels; a point reached twice is used once). On the CA1-like
  movie (256², true components subtracted, gSiz 25) the background's error, sd over time, was
  6.4 / 11.5 / 6.4 / 6.1 / 4.9 e⁻ within 4 px of the edge / in the 12-px corners / 4–8 / 8–16 /
  16–32 px from it against 3.9 farther in; completed, 5.3 / 6.9 / 4.7 / 4.0 / 3.1. A pixel on the
  edge itself gains nothing (its rays leave the field at once). ``cut_sides`` names sides where
  the field goes on past the movie (a patch's inner sides): rings crossing them stay cut.
* The ring radius on the downsampled grid is ``r = round(ring_size_factor · gsiz / ssub_B)``
  (round half up, at least 1): the paper's "radius ≈ ring_size_factor · gSiz" expressed in
  downsampled pixels.
* The weights of pixel ``p`` are a ridge regression of its mean-removed residual trace
  ``x_p`` on those of its ring pixels ``X_R``::

      w_p = (X_R X_Rᵀ + 1e-5 · tr(X_R X_Rᵀ) · I)⁻¹ X_R x_p

* On request (``temporal_rank`` k; the 1P fits use ``RING_TEMPORAL_RANK`` = 16 on rings of more
  than ``LONG_RING`` = 64 pixels, :func:`reduced_rank`) the ring's Gram is modelled as low-rank
  covariances plus the exact variances. With ``X`` the block's box of mean-removed traces
  (box pixels × frames) and ``V`` its k leading temporal principal components (eigenvectors of
  ``XᵀX``), ``Z = X V`` and ``D = diag(‖x_i‖² − ‖z_i‖²)``::

      w_p = (Z_R Z_Rᵀ + D_R + λ I)⁻¹ Z_R z_p

  solved by Woodbury in a k × k system per pixel: ``n_ring · k²`` instead of ``n_ring³`` and
  contiguous reads of ``Z`` instead of ``n_ring²`` scattered ones of the box Gram, so a long
  ring's fit grows with the ring's length, not its cube. It is the exact model when k is the
  number of frames. The smaller k is a regulariser too: the exact ring (113 pixels at gSig 6,
  500 frames) explains in-sample variance it cannot predict (CA1, central 129² box, no
  components: unexplained fraction of the ring-grid fluctuation on fitted / held-out frames
  0.22 / 0.82 exact, 0.41 / 0.47 at k = 16).

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
``n_box · T_fit · 4`` bytes for the box, ``n_box² · 4`` bytes for its Gram (at a temporal rank
``T_fit² · 8`` for ``XᵀX`` instead) and ``chunk_frames`` frames of the (full-resolution) box.

Per pixel, gathering its ring's Gram costs ``n_ring²`` (∝ gSiz², the ring's box area) and the
solve ``n_ring³`` (∝ gSiz³), or ``n_ring · k²`` at temporal rank k (whose box needs
``n_box · T_fit²`` for its temporal components instead of the Gram's ``n_box² · T_fit``). Otherwise
the cost is dominated by the box Gram matrices, ``≈ n_box² · T_fit`` per block
(``n_box = (block_pixels + 2r)²``), i.e. linear in the number of fitting frames. Pass
``frames=slice(None, None, k)`` to fit ``W`` (and ``b0``) on every k-th frame only: the ring
weights are a regression on the background's spatial covariance, which a few hundred to a
thousand frames pin down well. ``b0`` is then the mean over those frames.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.linalg import lapack

from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.resample import downsampled_dims, spatial_block_means, upsample_frames
from cnmflow.engine.threads import single_threaded
from cnmflow.errors import MovieError, ParameterError
from cnmflow.pixel_order import (c_order_index, column_to_image, frames_to_pixels, image_to_column, pixel_index,
                                 pixels_to_frames)

__all__ = [
    "RingModel",
    "ring_radius",
    "ring_offsets",
    "ring_edge_radius",
    "SIDES",
    "reduced_rank",
    "fit_ring_model",
    "ring_background",
    "ring_residual",
    "subtract_background",
    "undo_ring_residual",
]

#: relative ridge penalty: λ = RIDGE · tr(X_R X_Rᵀ)
RIDGE = 1e-5
#: rings of more pixels than this are fitted on low-rank covariances (``reduced_rank``)
LONG_RING = 64
#: leading temporal components of a box that model a long ring's covariances (module docstring)
RING_TEMPORAL_RANK = 16
#: minimum elements of one batch of ring systems; batches grow to 1/16 of the box Gram,
#: so the solver's temporaries stay a fraction of the Gram's memory
_SOLVE_ELEMS = 2**15
#: a ring cut by the field's edge is completed with points at least this fraction of its radius
#: from the pixel (``ring_edge_radius``, module docstring)
EDGE_RING_FRACTION = 0.5
#: a movie's sides, as ``fit_ring_model``'s ``cut_sides`` names them
SIDES = ("top", "bottom", "left", "right")
#: ring systems of at least this many unknowns are solved by Cholesky, one system at a time
_CHOLESKY_FROM = 24
_POSV = lapack.dposv


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
        return downsampled_dims(self.dims, self.ssub_B)


# ----------------------------------------------------------------------------- helpers


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


def reduced_rank(*, gsiz: int, ring_size_factor: float, ssub_B: int) -> int | None:
    """The temporal rank to fit a ring of this size with: ``RING_TEMPORAL_RANK`` for a ring of more
    than ``LONG_RING`` pixels (its exact solve grows as gSiz³), None (exact) for a shorter one."""
    radius = ring_radius(gsiz=gsiz, ring_size_factor=ring_size_factor, ssub_B=ssub_B)
    return RING_TEMPORAL_RANK if len(ring_offsets(radius)) > LONG_RING else None


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


def _check_movie(movie) -> tuple[int, int, int]:
    if getattr(movie, "ndim", None) != 3:
        raise MovieError(
            f"movie must be a (frames, rows, cols) array, got shape {getattr(movie, 'shape', None)}"
        )
    return tuple(int(v) for v in movie.shape)


def _checked_sides(sides: Collection[str]) -> frozenset[str]:
    unknown = set(sides) - set(SIDES)
    if unknown or isinstance(sides, str):
        raise ParameterError(f"cut_sides must name sides among {SIDES}, got {sides!r}")
    return frozenset(sides)


def _check_chunking(chunk_frames, block_pixels) -> None:
    if int(chunk_frames) != chunk_frames or chunk_frames < 1:
        raise ParameterError(f"chunk_frames must be an integer >= 1, got {chunk_frames!r}")
    if int(block_pixels) != block_pixels or block_pixels < 1:
        raise ParameterError(f"block_pixels must be an integer >= 1, got {block_pixels!r}")


def _checked_neural_part(A, C, shape: tuple[int, int, int]) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """``A`` as float32 CSR (rows*cols, K) and ``C`` (K, T); ``None`` means no components."""
    T, rows, cols = shape
    n_pixels = rows * cols
    if A is None:
        A = scipy.sparse.csr_matrix((n_pixels, 0), dtype=np.float32)
    A = scipy.sparse.csr_matrix(A, dtype=np.float32)
    if A.shape[0] != n_pixels:
        raise ParameterError(
            f"A has {A.shape[0]} rows but the movie has {rows}x{cols}={n_pixels} pixels; A must be (rows*cols, K)"
        )
    K = A.shape[1]
    C = np.zeros((0, T), np.float32) if C is None else np.asarray(C)
    if C.ndim != 2 or C.shape != (K, T):
        raise ParameterError(f"C must have shape (K, T)=({K}, {T}) to match A and the movie, got {C.shape}")
    return A, C


# ----------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class _RingGeometry:
    """The downsampled grid, each pixel's ring on it, and the blocks the fit is cut into."""

    dims: tuple[int, int]        # full-resolution (rows, cols)
    factor: int                  # ssub_B
    radius: int                  # ring radius on the small grid
    small_dims: tuple[int, int]  # (rows, cols) of the ssub_B grid
    offsets: np.ndarray          # (n_ring, 2) ring (dy, dx), sorted by (dx, dy): W's column order
    block_pixels: int            # block side on the small grid
    batch: int                   # ring systems solved at once
    temporal_rank: int | None    # rank of the ring covariances (the box's leading temporal components); None: exact
    edge_radius: int             # nearest a ring point pulled in from beyond the edge may come (ring_edge_radius)
    cut_sides: frozenset[str] = frozenset()  # sides ("top", "bottom", "left", "right") where rings stay cut


def _ring_geometry(dims: tuple[int, int], *, factor: int, radius: int, block_pixels: int,
                   temporal_rank: int | None = None, cut_sides: frozenset[str] = frozenset()) -> _RingGeometry:
    """Batches grow to 1/16 of the largest box Gram (at least ``_SOLVE_ELEMS`` elements), at most 256 rings."""
    small_rows, small_cols = downsampled_dims(dims, factor)
    if small_rows * small_cols <= (block_pixels + 2 * radius) ** 2:
        # one box: the blocks' margins would overlap into several Grams of it
        block_pixels = max(small_rows, small_cols)
    offsets = ring_offsets(radius)
    offsets = offsets[np.lexsort((offsets[:, 0], offsets[:, 1]))]  # by (dx, dy): column indices ascend within a row
    n_ring = len(offsets)
    box_max = (min(small_rows, block_pixels + 2 * radius) * min(small_cols, block_pixels + 2 * radius)) ** 2
    batch = max(1, min(256, max(_SOLVE_ELEMS, box_max // 16) // (n_ring * n_ring)))
    return _RingGeometry(dims=dims, factor=factor, radius=radius, small_dims=(small_rows, small_cols),
                         offsets=offsets, block_pixels=block_pixels, batch=batch,
                         temporal_rank=temporal_rank,
                         edge_radius=ring_edge_radius(radius), cut_sides=cut_sides)


def ring_edge_radius(radius: int) -> int:
    """The nearest a ring point pulled in from beyond the field's edge may come to its pixel:
    ``round(EDGE_RING_FRACTION · radius)`` (half up, at least 1), on the ring's grid."""
    return max(1, int(np.floor(EDGE_RING_FRACTION * radius + 0.5)))


def _ring_members(pixel_rows: np.ndarray, pixel_cols: np.ndarray,
                  geometry: _RingGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's ring points (batch, n_ring) rows and columns on the small grid, and which are used."""
    small_rows, small_cols = geometry.small_dims
    ring_rows = pixel_rows[:, None] + geometry.offsets[None, :, 0]
    ring_cols = pixel_cols[:, None] + geometry.offsets[None, :, 1]
    valid = (ring_rows >= 0) & (ring_rows < small_rows) & (ring_cols >= 0) & (ring_cols < small_cols)
    if valid.all() or len(geometry.cut_sides) == len(SIDES):
        return ring_rows, ring_cols, valid
    return _completed_ring(pixel_rows, pixel_cols, ring_rows, ring_cols, valid, geometry)


def _completed_ring(pixel_rows: np.ndarray, pixel_cols: np.ndarray, ring_rows: np.ndarray, ring_cols: np.ndarray,
                    valid: np.ndarray, geometry: _RingGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Off-image ring points pulled in along their ray to the field's edge, kept when at least
    ``edge_radius`` from the pixel; repeats of one point are used once."""
    small_rows, small_cols = geometry.small_dims
    ring_rows_before, ring_cols_before = ring_rows, ring_cols
    length = np.hypot(geometry.offsets[:, 0], geometry.offsets[:, 1])
    unit_rows, unit_cols = geometry.offsets[:, 0] / length, geometry.offsets[:, 1] / length
    reach_rows = _reach(pixel_rows, unit_rows, small_rows)
    reach_cols = _reach(pixel_cols, unit_cols, small_cols)
    reach = np.minimum(np.minimum(reach_rows, reach_cols), length)
    pulled_rows = np.clip(np.rint(pixel_rows[:, None] + reach * unit_rows), 0, small_rows - 1).astype(ring_rows.dtype)
    pulled_cols = np.clip(np.rint(pixel_cols[:, None] + reach * unit_cols), 0, small_cols - 1).astype(ring_cols.dtype)
    far_enough = (pulled_rows - pixel_rows[:, None]) ** 2 + (pulled_cols - pixel_cols[:, None]) ** 2 \
        >= geometry.edge_radius ** 2
    ring_rows = np.where(valid, ring_rows, pulled_rows)
    ring_cols = np.where(valid, ring_cols, pulled_cols)
    used = valid | (far_enough & ~_beyond(ring_rows_before, ring_cols_before, geometry))
    return ring_rows, ring_cols, used & ~_repeats(np.where(used, ring_cols * small_rows + ring_rows, -1))


def _beyond(ring_rows: np.ndarray, ring_cols: np.ndarray, geometry: _RingGeometry) -> np.ndarray:
    """Ring points beyond one of the ``cut_sides`` (where the field goes on past the movie)."""
    small_rows, small_cols = geometry.small_dims
    crossed = dict(top=ring_rows < 0, bottom=ring_rows >= small_rows, left=ring_cols < 0, right=ring_cols >= small_cols)
    beyond = np.zeros(ring_rows.shape, bool)
    for side in geometry.cut_sides:
        beyond |= crossed[side]
    return beyond


def _reach(position: np.ndarray, unit: np.ndarray, size: int) -> np.ndarray:
    """(batch, n_ring) distance along each ray from ``position`` to the last pixel before the edge (inf along it)."""
    room = np.where(unit > 0, size - 1 - position[:, None], position[:, None]).astype(np.float64)
    step = np.abs(unit)
    return np.divide(room, step, out=np.full(room.shape, np.inf), where=step > 0)


def _repeats(index: np.ndarray) -> np.ndarray:
    """True where a row of ``index`` repeats a value it holds at an earlier place (in sorted order)."""
    order = np.argsort(index, axis=1, kind="stable")
    ordered = np.take_along_axis(index, order, axis=1)
    repeated = np.zeros(index.shape, bool)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    out = np.zeros(index.shape, bool)
    np.put_along_axis(out, order, repeated, axis=1)
    return out


@dataclass(frozen=True)
class _Block:
    """One block of the small grid: its core pixels, the box holding their rings, and that box at
    full resolution (``core_in_full`` is the core's place inside the full-resolution box)."""

    core: tuple[slice, slice]          # small grid
    box: tuple[slice, slice]           # small grid, core plus the ring margin, clipped
    full: tuple[slice, slice]          # full-resolution pixels of the box
    core_in_full: tuple[slice, slice]  # relative to ``full``


def _blocks(geometry: _RingGeometry) -> Iterator[_Block]:
    """The blocks covering the small grid, row of blocks by row of blocks."""
    (small_rows, small_cols), (rows, cols) = geometry.small_dims, geometry.dims
    r, s = geometry.radius, geometry.factor
    for core_rows in chunk_slices(small_rows, geometry.block_pixels):
        box_rows = slice(max(0, core_rows.start - r), min(small_rows, core_rows.stop + r))
        for core_cols in chunk_slices(small_cols, geometry.block_pixels):
            box_cols = slice(max(0, core_cols.start - r), min(small_cols, core_cols.stop + r))
            full = (slice(box_rows.start * s, min(rows, box_rows.stop * s)),
                    slice(box_cols.start * s, min(cols, box_cols.stop * s)))
            core_in_full = (slice(core_rows.start * s - full[0].start, min(rows, core_rows.stop * s) - full[0].start),
                            slice(core_cols.start * s - full[1].start, min(cols, core_cols.stop * s) - full[1].start))
            yield _Block(core=(core_rows, core_cols), box=(box_rows, box_cols), full=full, core_in_full=core_in_full)


@dataclass(frozen=True)
class _SparseWeights:
    """W's CSR arrays, its structure known up front: row p holds its (clipped) ring in (dx, dy) order."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @classmethod
    def for_rings(cls, geometry: _RingGeometry) -> "_SparseWeights":
        small_rows, small_cols = geometry.small_dims
        n_small = small_rows * small_cols
        pixel_rows, pixel_cols = np.mgrid[:small_rows, :small_cols]
        ring_sizes = np.zeros((small_rows, small_cols), np.int64)
        for band in chunk_slices(small_rows, max(1, _SOLVE_ELEMS // (small_cols * len(geometry.offsets)))):
            _, _, used = _ring_members(pixel_rows[band].ravel(), pixel_cols[band].ravel(), geometry)
            ring_sizes[band] = used.sum(axis=1).reshape(-1, small_cols)
        indptr = np.zeros(n_small + 1, np.int64)
        np.cumsum(image_to_column(ring_sizes), out=indptr[1:])
        nnz = int(indptr[-1])
        index_dtype = np.int32 if max(nnz, n_small) < 2**31 else np.int64
        return cls(indptr=indptr.astype(index_dtype), indices=np.empty(nnz, index_dtype),
                   data=np.zeros(nnz, np.float32))

    def matrix(self) -> scipy.sparse.csr_matrix:
        n_small = len(self.indptr) - 1
        W = scipy.sparse.csr_matrix((self.data, self.indices, self.indptr), shape=(n_small, n_small), copy=False)
        W.has_sorted_indices = False
        W.sort_indices()
        return W


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
    temporal_rank: int | None = None,
    cut_sides: Collection[str] = (),
) -> RingModel:
    """Fit the ring background model to ``movie − A·C``.

    movie: (T, rows, cols) float array or np.memmap (only sub-boxes are read).
    A: (rows*cols, K) sparse (CSC), Fortran pixel order; K may be 0. C: (K, T).
    frames: optional slice (positive step) of frames to fit on, e.g. ``slice(None, None, 3)``
    to use every third frame; both ``W`` and ``b0`` come from those frames.
    cut_sides: the sides (of ``SIDES``) where the field of view goes on past the movie, e.g. a
    patch's inner sides: rings crossing them stay cut; at the others (the field's edges) they are
    completed (module docstring).
    temporal_rank: the rank of the ring's covariances, the box's leading temporal components
    (module docstring; None: the exact Gram).
    chunk_frames bounds how many frames of one box are read at a time; block_pixels is the
    block side on the downsampled grid.
    """
    T, rows, cols = _check_movie(movie)
    radius = ring_radius(gsiz=gsiz, ring_size_factor=ring_size_factor, ssub_B=ssub_B)
    _check_chunking(chunk_frames, block_pixels)
    A, C = _checked_neural_part(A, C, (T, rows, cols))
    selected = _check_frames(frames, T)
    if temporal_rank is not None and (int(temporal_rank) != temporal_rank or temporal_rank < 1):
        raise ParameterError(f"temporal_rank must be an integer >= 1, got {temporal_rank!r}; e.g. 16")
    geometry = _ring_geometry((rows, cols), factor=int(ssub_B), radius=radius, block_pixels=int(block_pixels),
                              temporal_rank=temporal_rank, cut_sides=_checked_sides(cut_sides))
    weights = _SparseWeights.for_rings(geometry)
    b0 = np.empty((rows, cols), np.float64)
    for block in _blocks(geometry):
        small_residual, core_sum = _box_residual(movie, A, C, block, geometry, selected, int(chunk_frames))
        full_rows, full_cols = block.full
        core_rows, core_cols = block.core_in_full
        b0[full_rows.start + core_rows.start:full_rows.start + core_rows.stop,
           full_cols.start + core_cols.start:full_cols.start + core_cols.stop] = core_sum / len(selected)
        if geometry.temporal_rank is None:
            statistics = _centred_gram(small_residual)
        else:
            statistics = _centred_scores(small_residual, geometry.temporal_rank)
        del small_residual
        _solve_block_weights(statistics, block, geometry, weights)
        del statistics
    return RingModel(W=weights.matrix(), b0=image_to_column(b0).astype(np.float32), dims=(rows, cols),
                     ssub_B=geometry.factor, radius=radius)


def _box_neural_part(A: scipy.sparse.csr_matrix, C: np.ndarray, block: _Block, dims: tuple[int, int]):
    """``A·C`` restricted to the block's full-resolution box: its footprint rows (box pixels in C
    order, only the components present) and their traces; ``(None, None)`` when none reach it."""
    box_rows = np.arange(block.full[0].start, block.full[0].stop)
    box_cols = np.arange(block.full[1].start, block.full[1].stop)
    A_box = A[pixel_index(box_rows[:, None], box_cols[None, :], dims).ravel()]
    present = np.unique(A_box.indices) if A_box.nnz else np.zeros(0, np.intp)
    if not len(present):
        return None, None
    return A_box[:, present].tocsr(), np.asarray(C[present], dtype=np.float32)


def _box_residual(movie, A: scipy.sparse.csr_matrix, C: np.ndarray, block: _Block, geometry: _RingGeometry,
                  selected: range, chunk_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The box's residual ``Y − A·C`` on the small grid, (box pixels in C order, selected frames)
    float32, and the core's full-resolution residual summed over those frames (float64).

    Reads ``chunk_frames`` selected frames of the box at a time.
    """
    full_rows, full_cols = block.full
    box_height, box_width = block.box[0].stop - block.box[0].start, block.box[1].stop - block.box[1].start
    core_rows, core_cols = block.core_in_full
    A_box, C_box = _box_neural_part(A, C, block, geometry.dims)
    small_residual = np.empty((box_height * box_width, len(selected)), np.float32)
    core_sum = np.zeros((core_rows.stop - core_rows.start, core_cols.stop - core_cols.start), np.float64)
    for chunk in chunk_slices(len(selected), chunk_frames):
        frames = _as_slice(selected[chunk])
        n = len(selected[chunk])
        residual = np.array(movie[frames, full_rows, full_cols], dtype=np.float32)
        if A_box is not None:
            neural = A_box @ C_box[:, frames]  # (box pixels, n) float32
            residual -= neural.reshape(full_rows.stop - full_rows.start, full_cols.stop - full_cols.start,
                                       n).transpose(2, 0, 1)
            del neural
        core_sum += residual[:, core_rows, core_cols].sum(axis=0, dtype=np.float64)
        small_residual[:, chunk] = spatial_block_means(residual, geometry.factor, edge="partial").reshape(
            n, box_height * box_width).T
        del residual
    return small_residual, core_sum


def _centred_gram(X: np.ndarray) -> np.ndarray:
    """``X Xᵀ`` of the rows of ``X`` (pixels, frames) with their means removed, in place: one BLAS
    syrk, float32."""
    X -= X.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
    return X @ X.T


def _centred_scores(X: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``X`` (pixels, frames), means removed in place, projected on the box's ``rank``
    leading temporal principal components, (pixels, rank) float64, and each row's sum of squares."""
    X -= X.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
    n_frames = X.shape[1]
    frames_gram = (X.T @ X).astype(np.float64)
    with single_threaded():   # BLAS threads on a few-hundred-square eigenproblem only wait on each other
        _, leading = scipy.linalg.eigh(frames_gram, subset_by_index=[max(0, n_frames - int(rank)), n_frames - 1])
    return X.astype(np.float64) @ leading, np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _solve_reduced(box_scores: tuple[np.ndarray, np.ndarray], ring_in_box: np.ndarray, valid: np.ndarray,
                   pixel_in_box: np.ndarray) -> np.ndarray:
    """Ridge solves with the ring's Gram modelled as ``Z_R Z_Rᵀ + D_R`` (rank-k covariances, exact
    variances on the diagonal; module docstring) by Woodbury, a rank × rank system per pixel;
    returns (batch, n_ring) weights, 0 on off-image ring entries (their rows of ``Z_R`` are 0)."""
    scores, sums = box_scores
    ring_scores = np.take(scores, ring_in_box, axis=0)      # (batch, n_ring, rank)
    ring_scores *= valid[:, :, None]
    variances = np.where(valid, np.take(sums, ring_in_box), 0.0)
    explained = np.einsum("brk,brk->br", ring_scores, ring_scores)
    ridge = _ridge(variances.sum(axis=1))
    diagonal = np.where(valid, np.maximum(variances - explained, 0.0) + ridge[:, None], 1.0)
    targets = np.matmul(ring_scores, np.take(scores, pixel_in_box, axis=0)[:, :, None])[:, :, 0]
    scaled = ring_scores / diagonal[:, :, None]
    inner = np.matmul(ring_scores.transpose(0, 2, 1), scaled)
    inner += np.eye(inner.shape[1])
    rhs = np.matmul(scaled.transpose(0, 2, 1), targets[:, :, None])
    return targets / diagonal - np.matmul(scaled, np.linalg.solve(inner, rhs))[:, :, 0]


def _solve_block_weights(statistics, block: _Block, geometry: _RingGeometry, weights: _SparseWeights) -> None:
    """Each core pixel's ring weights, solved from the box's Gram (or, at a temporal rank, its
    traces' leading components and sums of squares) a batch of pixels at a time and written into W's rows."""
    box_rows, box_cols = block.box
    box_dims = (box_rows.stop - box_rows.start, box_cols.stop - box_cols.start)
    pixel_rows, pixel_cols = np.mgrid[block.core[0], block.core[1]]
    pixel_rows, pixel_cols = pixel_rows.ravel(), pixel_cols.ravel()
    for batch in chunk_slices(len(pixel_rows), geometry.batch):
        ring_rows, ring_cols, valid = _ring_members(pixel_rows[batch], pixel_cols[batch], geometry)
        ring_in_box = np.where(valid, c_order_index(ring_rows - box_rows.start, ring_cols - box_cols.start,
                                                    box_dims), 0)
        pixel_in_box = c_order_index(pixel_rows[batch] - box_rows.start, pixel_cols[batch] - box_cols.start, box_dims)
        if geometry.temporal_rank is None:
            ring_weights = _solve_rings(statistics, ring_in_box, valid, pixel_in_box)
        else:
            ring_weights = _solve_reduced(statistics, ring_in_box, valid, pixel_in_box)
        row_of_W = pixel_index(pixel_rows[batch], pixel_cols[batch], geometry.small_dims)
        position = (weights.indptr[row_of_W][:, None] + np.cumsum(valid, axis=1) - 1)[valid]
        weights.indices[position] = pixel_index(ring_rows, ring_cols, geometry.small_dims)[valid]
        weights.data[position] = ring_weights[valid]


def _solve_rings(gram: np.ndarray, ring_in_box: np.ndarray, valid: np.ndarray,
                 pixel_in_box: np.ndarray) -> np.ndarray:
    """Batched ridge solves: each row of ``ring_in_box`` indexes one pixel's ring pixels in the box
    Gram, ``pixel_in_box`` the pixel itself; returns (batch, n_ring) weights.

    Invalid (off-image) ring entries become decoupled unit-diagonal rows with zero
    right-hand side, so their weight is exactly 0 and the batch has a uniform size.
    """
    n_box = gram.shape[0]
    index_type = np.int32 if n_box * n_box < 2**31 else np.int64   # addresses the flattened Gram
    gram_flat = gram.reshape(-1)
    ring = ring_in_box.astype(index_type, copy=False)
    side = index_type(n_box)
    targets = np.take(gram_flat, ring * side + pixel_in_box.astype(index_type)[:, None]).astype(np.float64)
    systems = _ring_systems(gram_flat, ring, side)
    if not valid.all():
        on_image = valid.astype(np.float64)
        systems *= on_image[:, :, None]
        systems *= on_image[:, None, :]
        targets *= on_image
    return _ridge_solve(systems, targets, valid)


def _ring_systems(gram_flat: np.ndarray, ring_in_box: np.ndarray, n_box) -> np.ndarray:
    """Each ring's Gram (batch, n_ring, n_ring) float64, gathered from the box Gram.

    Of rings solved by Cholesky (``_CHOLESKY_FROM``) only the lower triangle is read, which is all
    the factorisation uses; the upper one repeats the box Gram's first entry (which stays in the
    cache). The scattered reads of the box Gram cost as much as the solves: this halves them.
    """
    n_ring = ring_in_box.shape[1]
    index = ring_in_box[:, :, None] * n_box + ring_in_box[:, None, :]
    if n_ring >= _CHOLESKY_FROM:
        index *= np.tri(n_ring, dtype=index.dtype)
    return np.take(gram_flat, index).astype(np.float64)


def _ridge(trace: np.ndarray) -> np.ndarray:
    """λ = RIDGE · tr(G) per ring system; 1 where the trace is 0 (an all-constant ring: any λ gives w = 0)."""
    ridge = RIDGE * trace
    return np.where(ridge > 0, ridge, 1.0)


def _ridge_solve(systems: np.ndarray, targets: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Solve ``(G + λI) w = g`` per batch row, λ = RIDGE·tr(G); rows not ``valid`` (zero in ``G`` and
    ``g``) get a unit diagonal, so their weight is exactly 0. ``systems`` is modified."""
    diagonal = np.einsum("bii->bi", systems)  # writable view
    trace = diagonal.sum(axis=1)
    ridge = _ridge(trace)
    diagonal += np.where(valid, ridge[:, None], 1.0)
    return _positive_definite_solve(systems, targets)


def _positive_definite_solve(systems: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``systems[b]⁻¹ targets[b]`` for symmetric positive definite float64 systems.

    From ``_CHOLESKY_FROM`` unknowns on, one LAPACK Cholesky solve (posv) per system, which reads
    only the lower triangle (the upper one may hold anything): half the LU's work, which numpy's batched
    solve spends; below it the batched LU's lower overhead wins. A system the Cholesky
    factorisation refuses (not numerically positive definite) falls back to the LU.
    """
    if systems.shape[1] < _CHOLESKY_FROM:
        return np.linalg.solve(systems, targets[:, :, None])[:, :, 0]
    weights = np.empty_like(targets)
    for index, (system, target) in enumerate(zip(systems, targets)):
        # the transposed view is Fortran-ordered: LAPACK reads it without a copy (the system is symmetric)
        _, solution, info = _POSV(system.T, target, lower=0)
        weights[index] = solution if info == 0 else np.linalg.solve(_symmetric(system), target)
    return weights


def _symmetric(lower: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose lower triangle ``lower`` holds."""
    return np.tril(lower) + np.tril(lower, -1).T


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
    b0 = column_to_image(np.asarray(model.b0, np.float32), model.dims)
    R = np.subtract(frames, b0[None], out=out, dtype=np.float32)
    if AC is not None:
        R -= AC
    return R


def _fluctuation_small(model: RingModel, R: np.ndarray) -> np.ndarray:
    """``W · downsample(R)`` on the ring grid, (n, dr, dc) float32, for baseline-free frames ``R``."""
    small = spatial_block_means(R, model.ssub_B, edge="partial")
    fluctuation = np.asarray(model.W @ frames_to_pixels(small).T, dtype=np.float32)  # (d_ds, n)
    return pixels_to_frames(fluctuation.T, small.shape[1:])


def _fluctuation(model: RingModel, R: np.ndarray) -> np.ndarray:
    """``upsample(W · downsample(R))`` for baseline-free frames ``R`` (n, rows, cols), float32."""
    return upsample_frames(_fluctuation_small(model, R), model.dims, model.ssub_B)


def ring_background(model: RingModel, frames: np.ndarray, AC: np.ndarray | None = None) -> np.ndarray:
    """Background ``B = b0 + upsample(W · downsample(Y − AC − b0))`` for a chunk of frames.

    frames: (n, rows, cols) raw movie frames; AC: the neural part for those frames as
    (n, rows, cols), or None for 0. Returns (n, rows, cols) float32.
    """
    frames = _checked_frames(model, frames, AC)
    out = np.ascontiguousarray(_fluctuation(model, _baseline_free(model, frames, AC, None)))  # a fresh array
    out += column_to_image(np.asarray(model.b0, np.float32), model.dims)[None]
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
    R -= upsample_frames(small, model.dims, model.ssub_B)
    return R


def undo_ring_residual(model: RingModel, residual: np.ndarray, fluctuation: np.ndarray,
                       AC: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """The frames ``Y = residual + upsample(fluctuation) + AC + b0`` back from :func:`ring_residual`.

    ``fluctuation`` is what ring_residual wrote to ``fluctuation_out``, a quarter of the frames'
    size for ``ssub_B = 2``: keeping it instead of the frames lets a caller overwrite them with
    the residual. ``out=residual`` works in place. Float32 (rounding of the round trip ~1e-7).
    """
    residual = _checked_frames(model, residual, AC)
    b0 = column_to_image(np.asarray(model.b0, np.float32), model.dims)
    Y = np.add(residual, b0[None], out=out, dtype=np.float32)
    Y += upsample_frames(fluctuation, model.dims, model.ssub_B)
    if AC is not None:
        Y += AC
    return Y


def subtract_background(
    model: RingModel, frames: np.ndarray, AC: np.ndarray | None = None
) -> np.ndarray:
    """Convenience: ``frames − ring_background(model, frames, AC)`` as float32."""
    return (np.asarray(frames, np.float32) - ring_background(model, frames, AC)).astype(np.float32, copy=False)
