"""One patch of CNMF-E: seed, initialise, model the ring background, find more seeds, refine.

``fit_patch`` is a pure function of (movie source, patch box, parameters): it reads only its
patch from the shared movie file, so it can run in a worker process or on a cluster node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.ndimage as ndi

from cnmflow.engine.background import (RingModel, downsample_frames, fit_ring_model, resampling_operators,
                                      ring_residual, undo_ring_residual)
from cnmflow.engine.footprint_shape import MAX_INITIAL_RADIUS_FACTOR, neuron_sized, supported_pixels
from cnmflow.engine.hals import (clean_footprint, dilated_support, fortran_index, pixels_to_frames,
                                 to_fortran_rows, update_footprints, update_traces)
from cnmflow.engine.init.corr_pnr import (FOOTPRINT_MIN_T, FOOTPRINT_POOL_SIGMA, FOOTPRINT_REL_THRESHOLD,
                                          initialize_corr_pnr)
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.noise import BAND_VALUES, noise_frame_indices, pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage, frame_mean
from cnmflow.engine.patches import PatchBox
from cnmflow.params import Params

#: HALS refinement rounds inside a patch (each: traces, footprints, background).
REFINE_ROUNDS = 2


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


def downsample(movie: np.ndarray, *, tsub: int, ssub: int) -> np.ndarray:
    """Block means over ``tsub`` frames and ``ssub``×``ssub`` pixels (partial blocks averaged too)."""
    out = np.asarray(movie, dtype=np.float32)
    if tsub > 1:
        whole = out.shape[0] // tsub * tsub
        blocks = out[:whole].reshape(-1, tsub, *out.shape[1:]).mean(axis=1)
        if whole < out.shape[0]:
            blocks = np.concatenate([blocks, out[whole:].mean(axis=0, keepdims=True)])
        out = blocks
    return downsample_frames(out, ssub)


#: Memory of one chunk of full-rate patch frames read while downsampling, and of one chunk of
#: residual frames (bytes): a few MB keep a worker's memory near its movie-sized arrays.
READ_CHUNK_BYTES = 8 * 2 ** 20


class BoxView:
    """A (frames, rows, cols) view of one patch box of a movie, read on demand.

    The patch is never held at full rate: the noise estimate reads a sample of frames and the
    downsampling reads chunks, so a worker's memory follows the downsampled patch only.
    """

    def __init__(self, movie, box: PatchBox):
        self._movie = movie
        self._rows, self._cols = box.slices()
        self.shape = (movie.shape[0], *box.shape)
        self.ndim = 3

    def __getitem__(self, key) -> np.ndarray:
        frames, rows, cols = key if isinstance(key, tuple) else (key, slice(None), slice(None))
        return np.asarray(self._movie[frames, _within(self._rows, rows), _within(self._cols, cols)], dtype=np.float32)


def _within(outer: slice, inner: slice) -> slice:
    """``inner`` (relative to the box, step 1) as a slice of the whole movie's axis."""
    start, stop, _ = inner.indices(outer.stop - outer.start)
    return slice(outer.start + start, outer.start + stop)


def downsample_in_chunks(patch: BoxView, *, tsub: int, ssub: int,
                         storage: PatchStorage = PatchStorage()) -> PatchFrames:
    """:func:`downsample` of the whole patch, computed from chunks of whole ``tsub`` blocks and
    written into an array that ``storage`` places (in memory, or a scratch file when long)."""
    T, h, w = patch.shape
    per_chunk = max(tsub, READ_CHUNK_BYTES // (4 * h * w) // tsub * tsub)
    out = storage.allocate((-(-T // tsub), -(-h // ssub), -(-w // ssub)))
    for start in range(0, T, per_chunk):
        part = downsample(patch[start:min(start + per_chunk, T)], tsub=tsub, ssub=ssub)
        out[start // tsub:start // tsub + part.shape[0]] = part
    return out


def noise_reduction(patch: BoxView, Y: PatchFrames) -> float:
    """How much averaging tsub frames and ssub x ssub pixels lowers white noise: sqrt(tsub·ssub²)
    (CaImAn scales min_pnr by sqrt(size(Y) / size(Y_ds)) for the downsampled seed search)."""
    return float(np.sqrt(np.prod(patch.shape) / np.prod(Y.shape)))


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


def fit_patch(source: MovieSource, box: PatchBox, params: Params, *, fov_dims: tuple[int, int],
              storage: PatchStorage = PatchStorage()) -> PatchResult:
    """CNMF-E on one patch (method_init corr_pnr); see the module docstring.

    ``storage`` places the patch's frame-sized working arrays: in memory up to its limit, in
    scratch files (deleted on return) beyond it, so a long recording does not grow the worker.
    """
    if params.method_init != "corr_pnr":
        from cnmflow.engine.patch_job_low_rank import fit_patch_low_rank

        return fit_patch_low_rank(source, box, params, fov_dims=fov_dims, storage=storage)
    patch = BoxView(source.streaming(), box)
    noise = pixel_noise(patch, chunk_pixels=_noise_band_pixels(patch.shape, params, storage))  # a sample of frames
    with downsample_in_chunks(patch, tsub=params.tsub, ssub=params.ssub, storage=storage) as Y:
        return _fit_downsampled(Y, patch, box, params, fov_dims=fov_dims, noise=noise, storage=storage)


def _fit_downsampled(Y: PatchFrames, patch: BoxView, box: PatchBox, params: Params, *, fov_dims: tuple[int, int],
                     noise: np.ndarray, storage: PatchStorage) -> PatchResult:
    dims = Y.shape[1:]
    gsig = params.gSig / params.ssub
    gsiz = max(int(round(params.gSiz / params.ssub)), 1)
    seed = dict(gsig=gsig, gsiz=gsiz, min_corr=params.min_corr,
                center_psf=params.center_psf, border_pix=0, storage=storage)

    ring_args = dict(gsiz=gsiz, ring_size_factor=params.ring_size_factor, ssub_B=params.ssub_B,
                     frames=ring_fit_frames(Y.shape[0]))

    # min_pnr is read off the full-rate PNR image (as in CaImAn): the first seed search on the
    # downsampled patch asks for that much more.
    downsampling = noise_reduction(patch, Y)
    first = initialize_corr_pnr(Y, max_components=params.K, min_pnr=params.min_pnr * downsampling, **seed)
    edges = dict(top=box.row0 == 0, bottom=box.row1 == fov_dims[0], left=box.col0 == 0,
                 right=box.col1 == fov_dims[1])
    A, C = _neurons_only(first.A, first.C, dims, gsig, edges)
    ring = fit_ring_model(Y, _sparse(A), C, **ring_args)
    if params.K is None or A.shape[1] < params.K:
        # Residual pass: neurons hidden under brighter ones or under the background show up
        # once the first components and the ring background are removed. The residual takes
        # Y's place; the background's fluctuation on the ring grid (a quarter of it) gives Y back.
        with _residual_in_place(Y, A, C, ring, storage) as fluctuation:
            budget = None if params.K is None else params.K - A.shape[1]
            # The residual is searched as CaImAn does: its own noise, the threshold as given.
            more = initialize_corr_pnr(Y, max_components=budget, min_pnr=params.min_pnr, **seed)
            _undo_residual_in_place(Y, A, C, ring, fluctuation)
        more_A, more_C = _neurons_only(more.A, more.C, dims, gsig, edges)
        if more_A.shape[1]:
            A = np.hstack([A, more_A])
            C = np.vstack([C, more_C])
            ring = fit_ring_model(Y, _sparse(A), C, **ring_args)
    A, C = _refine(Y, A, C, ring, params=params, ring_args=ring_args, gsig=gsig,
                   noise=downsampled_noise(noise, params.ssub) / downsampling)
    A = upsample_footprints(A, dims, box.shape)
    A = drop_border_components(A, box, fov_dims, border_pix=params.border_pix)
    keep = A.any(axis=0)
    return PatchResult(box=box, A=A[:, keep], C=C[keep], noise=noise,
                       correlation=to_patch_grid(first.correlation, box.shape),
                       pnr=to_patch_grid(first.pnr / downsampling, box.shape))


def _noise_band_pixels(shape: tuple[int, int, int], params: Params, storage: PatchStorage) -> int:
    """Pixels per band of rows read by the full-rate noise pass.

    Each band is a pass over the file; the pass runs before anything frame-sized is held, so
    bands up to the two downsampled copies the seeding holds later raise no peak, as long as they
    stay within the job's memory budget (a band's spectra take about twice its size again).
    """
    T, h, w = shape
    sample = noise_frame_indices(T)
    frames_used = T if sample is None else len(sample)
    downsampled = -(-T // params.tsub) * -(-h // params.ssub) * -(-w // params.ssub)
    return int(max(BAND_VALUES, min(2 * downsampled, storage.memory_bytes / 12)) // frames_used)


def _residual_in_place(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingModel,
                       storage: PatchStorage) -> PatchFrames:
    """Overwrite ``Y`` with ``Y − B − A·C``; returns the background's fluctuation on the ring grid,
    (T, dr, dc), which :func:`_undo_residual_in_place` needs to give ``Y`` back."""
    fluctuation = storage.allocate((Y.shape[0], *ring.dims_ds))
    for chunk in Y.chunks():
        frames = Y[chunk]
        small = np.empty((frames.shape[0], *ring.dims_ds), dtype=np.float32)
        ring_residual(ring, frames, _neural(A, C[:, chunk], Y.shape[1:]), out=frames, fluctuation_out=small)
        Y[chunk] = frames
        fluctuation[chunk] = small
    return fluctuation


def _undo_residual_in_place(residual: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingModel,
                            fluctuation: PatchFrames) -> None:
    """Turn :func:`_residual_in_place`'s residual back into the patch (float32 rounding aside)."""
    for chunk in residual.chunks():
        frames = residual[chunk]
        undo_ring_residual(ring, frames, fluctuation[chunk], _neural(A, C[:, chunk], residual.shape[1:]), out=frames)
        residual[chunk] = frames


def to_patch_grid(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image on the ssub grid repeated back onto the patch's pixels."""
    factor = -(-shape[0] // image.shape[0]), -(-shape[1] // image.shape[1])
    return np.repeat(np.repeat(image, factor[0], axis=0), factor[1], axis=1)[:shape[0], :shape[1]]


def _neurons_only(A: np.ndarray, C: np.ndarray, dims: tuple[int, int], gsig: float, edges: dict[str, bool]):
    """Drop initial components too wide to be neurons; the ring background absorbs them."""
    keep = neuron_sized(A, dims, gsig=gsig, fov_edges=edges, factor=MAX_INITIAL_RADIUS_FACTOR)
    return A[:, keep].astype(np.float32), C[keep].astype(np.float32)


def _sparse(A: np.ndarray):
    import scipy.sparse as sp

    return sp.csc_matrix(A)


def _neural(A: np.ndarray, C: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    return pixels_to_frames((A @ C).T, dims)


def downsampled_noise(noise: np.ndarray, ssub: int) -> np.ndarray:
    """(h, w) full-rate noise sd → (pixels,) Fortran order on the ssub grid: the root of the
    block-mean variance (divide by :func:`noise_reduction` for the noise of the block means)."""
    variance = downsample_frames(np.asarray(noise, dtype=np.float32)[None] ** 2, ssub)[0]
    return np.sqrt(np.maximum(variance, 0)).ravel(order="F")


def ring_fit_frames(n_frames: int, *, target: int = 500) -> slice:
    """Every k-th frame for fitting ring weights: ~``target`` frames pin ~50 weights per pixel well."""
    return slice(None, None, max(1, n_frames // target))


def _refine(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring, *, params: Params, ring_args: dict,
            gsig: float, noise: np.ndarray | None = None):
    """A few HALS rounds against the ring background, as CNMF-E does after initialisation.

    ``noise`` (pixels,) Fortran order: the noise sd of ``Y``'s pixels; with it each footprint keeps
    the pixels where its weights are significantly above zero (``footprint_shape.supported_pixels``),
    without it the pixels above 10% of its peak (``clean_footprint``'s default).

    The background-subtracted statistics ``Aᵀ(Y − B)`` and ``(Y − B)Cᵀ`` are formed from the
    ring operators (``B = b0 + Up·W·D(Y − AC − b0)``) and ``Y``'s own projections, never from
    a background movie; the projections are summed over chunks of frames. ``Y`` is the patch's
    last use: it is centred in place.
    """
    if A.shape[1] == 0:
        return A, C
    dims = Y.shape[1:]
    # Work relative to each pixel's temporal mean: the bright background then cancels before the
    # float32 products rather than after them (cancellation would swamp weak footprint edges).
    mean_image = frame_mean(Y)
    for chunk in Y.chunks():
        frames = Y[chunk]
        frames -= mean_image
        Y[chunk] = frames
    ring = replace(ring, b0=ring.b0 - mean_image.ravel(order="F"))  # the same model, for centred frames
    to_fortran = fortran_index(dims)
    to_fortran_small = fortran_index(ring.dims_ds)
    down, up = resampling_operators(dims, ring.ssub_B)
    for round_index in range(REFINE_ROUNDS):
        W, b0 = ring.W, ring.b0.astype(np.float64)
        A_small = down @ A                                                # (d_ds, K)
        # Traces: U = AᵀY − Aᵀb0 − M(DY − DA·C − Db0), M = Aᵀ·Up·W.
        M = ((up.T @ A).T @ W)                                            # (K, d_ds)
        U = _trace_projections(Y, A[to_fortran], M[:, to_fortran_small], ring.ssub_B)
        U -= (A.T @ b0)[:, None] - M @ A_small @ C - (M @ (down @ b0))[:, None]
        C_background = C                        # the background of this round keeps these traces
        C = update_traces(C, U, A.T @ A).astype(np.float32)
        alive = C.any(axis=1)
        A, C, C_background = A[:, alive], C[alive], C_background[alive]
        if A.shape[1] == 0:
            break
        # Footprints: P = YCᵀ − b0·sᵀ − Up·W(DYCᵀ − DA·CCᵀ − Db0·sᵀ), s = C·1.
        CC, s_total = C @ C.T, C.sum(axis=1)
        YC, small_YC = _footprint_projections(Y, C, ring.ssub_B)
        small_term = (to_fortran_rows(small_YC, to_fortran_small) - (down @ A) @ (C_background @ C.T)
                      - np.outer(down @ b0, s_total))
        P = to_fortran_rows(YC, to_fortran) - np.outer(b0, s_total) - up @ (W @ small_term)
        support = dilated_support(A, dims, radius=max(int(round(gsig)), 1))
        A = update_footprints(A, P, CC, support).astype(np.float32)
        if noise is None:
            A = np.column_stack([clean_footprint(A[:, k], dims) for k in range(A.shape[1])]).astype(np.float32)
        else:   # each footprint reaches as far as the data supports it (pooled significance), not 10% of its peak
            supported = _supported(A, P, CC, noise, dims, gsig)
            A = np.column_stack([clean_footprint(A[:, k], dims, max_fraction=0.0, supported=supported[:, k])
                                 for k in range(A.shape[1])]).astype(np.float32)
        alive = A.any(axis=0)
        A, C = A[:, alive], C[alive]
        if A.shape[1] == 0:
            break
        if params.update_background_components and round_index + 1 < REFINE_ROUNDS:
            ring = fit_ring_model(Y, _sparse(A), C, **ring_args)
    return A, C


def _supported(A: np.ndarray, P: np.ndarray, CC: np.ndarray, noise: np.ndarray, dims: tuple[int, int],
               gsig: float) -> np.ndarray:
    """(pixels, K) where each footprint's unconstrained least-squares weights (the HALS step without
    the support and the clipping: ``a_k + (P_k − A·CC_k) / CC_kk``) stand significantly above zero,
    pooled as in the initialisation; standard error ``σ_p / sqrt(CC_kk)``."""
    A64 = A.astype(np.float64)
    diag = np.maximum(np.diag(CC), np.finfo(float).tiny)
    unconstrained = A64 + (P - A64 @ CC) / diag
    out = np.zeros(A.shape, dtype=bool)
    for k in range(A.shape[1]):
        peak = np.unravel_index(int(np.argmax(A[:, k])), dims, order="F")
        out[:, k] = supported_pixels(unconstrained[:, k].reshape(dims, order="F"),
                                     (noise / np.sqrt(diag[k])).reshape(dims, order="F"),
                                     sigma=FOOTPRINT_POOL_SIGMA * gsig, min_t=FOOTPRINT_MIN_T,
                                     peak=peak, min_fraction=FOOTPRINT_REL_THRESHOLD).ravel(order="F")
    return out


def _trace_projections(Y: PatchFrames, A_rows: np.ndarray, M_rows: np.ndarray, ssub_B: int) -> np.ndarray:
    """``A_rowsᵀ·Y − M_rows·D(Y)`` for every frame, (K, T); the rows of both in C pixel order."""
    U = np.empty((A_rows.shape[1], Y.shape[0]))
    for chunk in Y.chunks():
        frames = Y[chunk]
        small = downsample_frames(frames, ssub_B)
        U[:, chunk] = ((frames.reshape(frames.shape[0], -1) @ A_rows).T
                       - M_rows @ small.reshape(small.shape[0], -1).T)
    return U


def _footprint_projections(Y: PatchFrames, C: np.ndarray, ssub_B: int) -> tuple[np.ndarray, np.ndarray]:
    """``Y·Cᵀ`` (d, K) and ``D(Y)·Cᵀ`` (d_ds, K), pixels in C order, summed over chunks of frames."""
    T, h, w = Y.shape
    YC = np.zeros((h * w, C.shape[0]))
    small_YC = np.zeros((-(-h // ssub_B) * -(-w // ssub_B), C.shape[0]))
    for chunk in Y.chunks():
        frames = Y[chunk]
        small = downsample_frames(frames, ssub_B)
        YC += frames.reshape(frames.shape[0], -1).T @ C[:, chunk].T
        small_YC += small.reshape(small.shape[0], -1).T @ C[:, chunk].T
    return YC, small_YC


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
