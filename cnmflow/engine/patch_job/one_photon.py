"""One patch of CNMF-E (1P, method_init corr_pnr): seed, initialise, model the ring background,
find more seeds in the residual, refine.

The job reads only its box from the shared movie file (:mod:`~cnmflow.engine.patch_job.box_io`),
works on the box downsampled (``tsub`` frames, ``ssub`` pixels) and returns its components at the
box's full resolution.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.background import (SIDES, RingModel, fit_ring_model, reduced_rank, ring_residual,
                                       undo_ring_residual)
from cnmflow.engine.footprint_shape import (MAX_INITIAL_RADIUS_FACTOR, Rings, neuron_sized, smooth_halo,
                                            supported_pixels)
from cnmflow.engine.hals import (clean_footprint, dilated_support, distance_within, update_footprints_with_surround,
                                update_traces)
from cnmflow.engine.init import corr_pnr
from cnmflow.engine.init.corr_pnr import FOOTPRINT_MIN_T, FOOTPRINT_POOL_SIGMA
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage, frame_mean
from cnmflow.engine.patch_job.box_io import BoxView, downsample_in_chunks, noise_band_pixels, noise_reduction
from cnmflow.engine.patch_job.result import PatchResult, patch_result
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.resample import downsampled_noise
from cnmflow.engine.ring_projections import RingGrid, patch_footprint_projections, patch_trace_projections
from cnmflow.engine.sections import PatchJobSettings, RingSection
from cnmflow.pixel_order import column_to_image, image_to_column, pixel_position, pixels_to_frames

#: HALS refinement rounds inside a patch (each: traces, footprints, background).
REFINE_ROUNDS = 2
#: the pooled weights' real spread (``footprint_shape.null_inflation``) is read on the pixels more
#: than this many gSig beyond each footprint
NULL_DISTANCE_FACTOR = 2.0
#: with that spread, a refined footprint needs only a low floor (fraction of its pooled maximum)
#: against what no standard error sees; the initialisation's FOOTPRINT_REL_THRESHOLD (0.08) cut the
#: halo at ~5-6% of the peak (realistic CA1 / L2/3, issue #16)
REFINE_REL_THRESHOLD = 0.02
#: the surround whose residual trace each footprint is fitted with (see _refine_footprints): this many
#: gSig beyond the footprint's support, and no further than this
ANNULUS_INNER = 2.0
ANNULUS_OUTER = 3.0
#: the far halo is also tested pooled on ring sectors around each footprint's centre
#: (``footprint_shape.ring_sector_reach``): this many sectors, rings this many gSig wide
HALO_SECTORS = 12
HALO_RING_WIDTH = 2 / 3
#: with ``halo_tail`` (opt-in), carried past the last significant ring along the decay of this many
#: rings before it (``footprint_shape.tail_reach``)
HALO_TAIL_RINGS = 3
#: how far (gSig) a footprint may grow beyond its support in one refinement round
GROWTH_FACTOR = 2.0
#: each refined footprint keeps its per-pixel weights within this many gSig of its peak (the soma);
#: beyond, its weights are the trimmed means of its unclipped weights on rings about the core's weighted
#: centre (``footprint_shape.smooth_halo``): rings this many px wide, cut into this many sectors
HALO_CORE_FACTOR = 1.0
HALO_SMOOTH_SECTORS = 12
HALO_SMOOTH_WIDTH = 1.0
#: the halo's ring-sector means replaced by each ring's trimmed mean (a radially symmetric halo)
HALO_SYMMETRIC = True
#: the share of each ring's sectors, the brightest, left out of that mean
HALO_SMOOTH_TRIM = 1 / 6


def fit_patch_corr_pnr(source: MovieSource, box: PatchBox, job: PatchJobSettings, *, fov_dims: tuple[int, int],
                       storage: PatchStorage = PatchStorage()) -> PatchResult:
    """CNMF-E on one patch; see the module docstring.

    ``storage`` places the patch's frame-sized working arrays: in memory up to its limit, in
    scratch files (deleted on return) beyond it, so a long recording does not grow the worker.
    """
    init = job.init
    patch = BoxView(source.streaming(), box)
    bands = noise_band_pixels(patch.shape, tsub=init.tsub, ssub=init.ssub, storage=storage)
    noise = pixel_noise(patch, chunk_pixels=bands)  # a sample of frames
    with downsample_in_chunks(patch, tsub=init.tsub, ssub=init.ssub, storage=storage) as Y:
        return _fit_downsampled(Y, patch, box, job, fov_dims=fov_dims, noise=noise, storage=storage)


def _fit_downsampled(Y: PatchFrames, patch: BoxView, box: PatchBox, job: PatchJobSettings, *,
                     fov_dims: tuple[int, int], noise: np.ndarray, storage: PatchStorage) -> PatchResult:
    init = job.init
    dims = Y.shape[1:]
    edges = _fov_edges(box, fov_dims)
    # min_pnr is read off the full-rate PNR image (as in CaImAn): the first seed search on the
    # downsampled patch asks for that much more.
    downsampling = noise_reduction(patch, Y)
    first = corr_pnr.initialize(Y, replace(init, min_pnr=init.min_pnr * downsampling), storage=storage)
    A, C = _neurons_only(first.A, first.C, dims, init.gsig_patch, edges)
    # the residual search reads the ring cut on every side (its seeds as before); every later fit
    # completes the rings the field's edge cuts, so a cell there gets its halo back (h16rec3)
    ring = _fit_ring(Y, A, C, job.ring, gsiz=init.gsiz_patch, exact=True)
    if init.K is None or A.shape[1] < init.K:
        A, C, ring = _residual_pass(Y, A, C, ring, job, edges=edges, storage=storage)
    A, C = _refine(Y, A, C, ring, job.ring, gsiz=init.gsiz_patch, gsig=init.gsig_patch,
                   noise=downsampled_noise(noise, init.ssub) / downsampling, cut_sides=_inner_sides(edges))
    return patch_result(box, A, C, grid=dims, images=first, noise=noise, noise_reduction=downsampling,
                        fov_dims=fov_dims, border_pix=init.border_pix)


def _residual_pass(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingModel, job: PatchJobSettings, *,
                   edges: dict[str, bool], storage: PatchStorage) -> tuple[np.ndarray, np.ndarray, RingModel]:
    """Neurons hidden under brighter ones or under the background show up once the first
    components and the ring background are removed. The residual takes Y's place; the
    background's fluctuation on the ring grid (a quarter of it) gives Y back."""
    init = job.init
    with _residual_in_place(Y, A, C, ring, storage) as fluctuation:
        budget = None if init.K is None else init.K - A.shape[1]
        # The residual is searched as CaImAn does: its own noise, the threshold as given.
        # no seed on the halo of a component the first search found (its trace again, plus neuropil)
        found = (corr_pnr.footprint_peaks(A, Y.shape[1:]), C)
        more = corr_pnr.initialize(Y, replace(init, K=budget), storage=storage, found_before=found)
        _undo_residual_in_place(Y, A, C, ring, fluctuation)
    more_A, more_C = _neurons_only(more.A, more.C, Y.shape[1:], init.gsig_patch, edges)
    if more_A.shape[1]:
        A = np.hstack([A, more_A])
        C = np.vstack([C, more_C])
        ring = _fit_ring(Y, A, C, job.ring, gsiz=init.gsiz_patch, cut_sides=_inner_sides(edges))
    return A, C, ring


def _fov_edges(box: PatchBox, fov_dims: tuple[int, int]) -> dict[str, bool]:
    """Which sides of the patch are the field of view's edges (a neuron cut there is not too wide)."""
    return dict(top=box.row0 == 0, bottom=box.row1 == fov_dims[0], left=box.col0 == 0, right=box.col1 == fov_dims[1])


def ring_fit_frames(n_frames: int, *, target: int = 500) -> slice:
    """Every k-th frame for fitting ring weights: ~``target`` frames pin ~50 weights per pixel well."""
    return slice(None, None, max(1, n_frames // target))


def _inner_sides(edges: dict[str, bool]) -> tuple[str, ...]:
    """The patch's sides where the field goes on (not the field's edges): rings crossing them stay cut."""
    return tuple(side for side in SIDES if not edges[side])


def _fit_ring(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingSection, *, gsiz: int,
              exact: bool = False, cut_sides: tuple[str, ...] = SIDES) -> RingModel:
    """The ring background of the patch under the components ``A·C`` (``gsiz`` on the patch grid).

    A long ring is fitted on low-rank covariances (``background.reduced_rank``: its exact solve
    grows as gSiz³) unless ``exact``: the fit before the residual seed search stays exact, since
    the exact ring absorbs more of the out-of-focus cells that search would otherwise take
    (issue #22's CA1 benchmark at gSig 6: K 163 vs 158, F1@0.5 0.799 vs 0.811 with every fit reduced).
    Rings stay cut on ``cut_sides``: by default all four, as for the seed search (completed at the
    field's edges there, the seeds of cells near the edge moved: Gaussian 1P 256² F1 0.943 → 0.937);
    after it, only the patch's inner sides (:func:`_inner_sides`), where the field goes on past the
    patch. Completed at the field's edge, a cell there keeps its halo instead of losing it to a one-sided
    ring (realistic CA1 F1@0.5 0.871 / 0.863 / 0.792 → 0.910 / 0.867 / 0.818 on seeds 1–3,
    benchmarks/findings/footprint_fidelity.md, h16rec3).
    """
    rank = None if exact else reduced_rank(gsiz=gsiz, ring_size_factor=ring.ring_size_factor, ssub_B=ring.ssub_B)
    return fit_ring_model(Y, sp.csc_matrix(A), C, gsiz=gsiz, ring_size_factor=ring.ring_size_factor,
                          ssub_B=ring.ssub_B, frames=ring_fit_frames(Y.shape[0]), temporal_rank=rank,
                          cut_sides=cut_sides)


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


def _neurons_only(A: np.ndarray, C: np.ndarray, dims: tuple[int, int], gsig: float, edges: dict[str, bool]):
    """Drop initial components too wide to be neurons; the ring background absorbs them."""
    keep = neuron_sized(A, dims, gsig=gsig, fov_edges=edges, factor=MAX_INITIAL_RADIUS_FACTOR)
    return A[:, keep].astype(np.float32), C[keep].astype(np.float32)


def _neural(A: np.ndarray, C: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    return pixels_to_frames((A @ C).T, dims)


def _refine(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingModel, section: RingSection, *, gsiz: int,
            gsig: float, noise: np.ndarray | None = None,
            cut_sides: tuple[str, ...] = SIDES) -> tuple[np.ndarray, np.ndarray]:
    """A few HALS rounds against the ring background, as CNMF-E does after initialisation.

    ``noise`` (pixels,) Fortran order: the noise sd of ``Y``'s pixels; with it each footprint keeps
    the pixels where its weights are significantly above zero (``footprint_shape.supported_pixels``),
    without it the pixels above 10% of its peak (``clean_footprint``'s default).

    The background-subtracted statistics ``Aᵀ(Y − B)`` and ``(Y − B)Cᵀ`` come from the ring
    operators and ``Y``'s own projections (:mod:`cnmflow.engine.ring_projections`), never from a
    background movie. ``Y`` is the patch's last use: it is centred in place.
    """
    if A.shape[1] == 0:
        return A, C
    ring = _centre_in_place(Y, ring)
    grid = RingGrid.of(Y.shape[1:], ring)
    for round_index in range(REFINE_ROUNDS):
        A, C, C_background, local = _refine_traces(Y, A, C, ring, grid, gsig=gsig)
        if A.shape[1] == 0:
            break
        A, C = _refine_footprints(Y, A, C, C_background, local, ring, grid, gsig=gsig, noise=noise,
                                  tail=section.halo_tail)
        if A.shape[1] == 0:
            break
        if section.update_background_components and round_index + 1 < REFINE_ROUNDS:
            ring = _fit_ring(Y, A, C, section, gsiz=gsiz, cut_sides=cut_sides)
    return A, C


def _centre_in_place(Y: PatchFrames, ring: RingModel) -> RingModel:
    """Take each pixel's temporal mean off ``Y``; returns the same ring model for the centred frames.

    The bright background then cancels before the float32 products rather than after them
    (cancellation would swamp weak footprint edges).
    """
    mean_image = frame_mean(Y)
    for chunk in Y.chunks():
        frames = Y[chunk]
        frames -= mean_image
        Y[chunk] = frames
    return replace(ring, b0=ring.b0 - image_to_column(mean_image))


def _refine_traces(Y: PatchFrames, A: np.ndarray, C: np.ndarray, ring: RingModel, grid: RingGrid, *,
                   gsig: float):
    """One HALS trace update; returns the components left alive, the traces the background was
    formed with (``C_background``, which the footprint update needs) and each component's local
    residual trace (:func:`local_residual_traces`)."""
    K = A.shape[1]
    annuli = annulus_masks(A, Y.shape[1:], gsig=gsig)
    # one pass: the annuli ride along as components without a trace (B stays formed with A·C)
    U = patch_trace_projections(Y, np.hstack([A, annuli]), np.vstack([C, np.zeros_like(C)]), ring, grid)
    C_background = C                        # the background of this round keeps these traces
    C = update_traces(C, U[:K], A.T @ A).astype(np.float32)
    local = (U[K:] - (annuli.T @ A) @ C).astype(np.float32)
    alive = C.any(axis=1)
    return A[:, alive], C[alive], C_background[alive], local[alive]


def annulus_masks(A: np.ndarray, dims: tuple[int, int], *, gsig: float) -> np.ndarray:
    """(pixels, K) each footprint's surround: the pixels ``ANNULUS_INNER``–``ANNULUS_OUTER`` gSig
    from its support, weights summing to 1 (zero where there are none)."""
    out = np.zeros(A.shape, dtype=np.float32)
    for k in range(A.shape[1]):
        near = distance_within(column_to_image(A[:, k], dims) > 0, reach=ANNULUS_OUTER * gsig)
        if near is None:
            continue
        box, distance = near
        ring = np.zeros(dims, dtype=bool)
        ring[box] = (distance > ANNULUS_INNER * gsig) & (distance <= ANNULUS_OUTER * gsig)
        if ring.any():
            out[:, k] = image_to_column(ring / ring.sum())
    return out


def _refine_footprints(Y: PatchFrames, A: np.ndarray, C: np.ndarray, C_background: np.ndarray, local: np.ndarray,
                       ring: RingModel, grid: RingGrid, *, gsig: float,
                       noise: np.ndarray | None, tail: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One HALS footprint update within each footprint's dilated support, then each footprint
    cleaned; returns the components left alive.

    Each footprint is fitted jointly with a non-negative map of its local residual trace
    (``local``, the unmodelled light around it: out-of-focus cells, neuropil) on the same support,
    so a halo pixel's weight is the neuron's share only, not what its trace carries of that light.
    """
    dims = Y.shape[1:]
    K = A.shape[1]
    P, CC = _centred_footprint_statistics(Y, A, np.vstack([C, local]), C_background, ring, grid)
    support = dilated_support(A, dims, radius=max(int(round(GROWTH_FACTOR * gsig)), 1))
    fitted = update_footprints_with_surround(A, P, CC, support)
    A = fitted[:, :K].astype(np.float32)
    if noise is None:
        A = np.column_stack([clean_footprint(A[:, k], dims) for k in range(A.shape[1])]).astype(np.float32)
    else:   # each footprint reaches as far as the data supports it (pooled significance), not 10% of its peak
        energies = np.maximum(np.diag(CC)[:K], np.finfo(float).tiny)   # each trace's CC_kk
        unconstrained = _unconstrained(fitted, P, CC, energies)
        supported = _supported(fitted, unconstrained, noise, dims, gsig, energies, tail=tail)
        A = np.column_stack([clean_footprint(A[:, k], dims, max_fraction=0.0, supported=supported[:, k])
                             for k in range(A.shape[1])]).astype(np.float32)
        A = _smoothed_halos(A, unconstrained, supported, dims, gsig)
    alive = A.any(axis=0)
    return A[:, alive], C[alive]


def _smoothed_halos(A: np.ndarray, unconstrained: np.ndarray, supported: np.ndarray, dims: tuple[int, int],
                    gsig: float) -> np.ndarray:
    """Each footprint's halo beyond ``HALO_CORE_FACTOR``·gSig from its core replaced, on its supported
    pixels, by its unclipped weights' ring means less each ring's brightest ``HALO_SMOOTH_TRIM`` of
    sectors (``footprint_shape.smooth_halo``): a dim cell's halo is estimated from many pixels, not
    each alone, and light beside the cell does not skew it."""
    rings = Rings(sectors=HALO_SMOOTH_SECTORS, width=HALO_SMOOTH_WIDTH)
    out = np.zeros_like(A)
    for k in np.flatnonzero(A.any(axis=0)):
        images = (column_to_image(column[:, k], dims) for column in (A, unconstrained, supported))
        out[:, k] = image_to_column(smooth_halo(*images, pixel_position(int(np.argmax(A[:, k])), dims),
                                                core_radius=HALO_CORE_FACTOR * gsig, rings=rings,
                                                symmetric=HALO_SYMMETRIC, trim=HALO_SMOOTH_TRIM))
    return out


def _centred_footprint_statistics(Y: PatchFrames, A: np.ndarray, C: np.ndarray, C_background: np.ndarray,
                                  ring: RingModel, grid: RingGrid) -> tuple[np.ndarray, np.ndarray]:
    """``P = (Y − B)·C̃ᵀ`` (pixels, K) and ``CC = C̃·C̃ᵀ`` with the traces centred (``C̃ = C − C̄``).

    Centred, the footprint update fits each pixel's own constant with the footprints, as CNMF-E's
    baseline ``b0 = mean(Y − A·C)`` is refitted whenever the footprints change; uncentred, a pixel
    whose residual has a small negative mean (a neighbour's footprint or the background slightly
    off) gets that mean times the trace's mean as a weight on every trace, a hole in a faint halo
    (far from a CA1 neuron the weights sat ~1.7 noise sds below zero). One more projection, on a
    trace of ones, gives ``Σ_t (Y − B)``.
    """
    with_ones = np.vstack([C, np.ones((1, C.shape[1]), dtype=C.dtype)])
    projections = patch_footprint_projections(Y, A, with_ones, C_background, ring, grid)
    mean_trace = C.mean(axis=1, dtype=np.float64)
    P = projections[:, :-1] - np.outer(projections[:, -1], mean_trace)
    CC = C.astype(np.float64) @ C.T.astype(np.float64) - C.shape[1] * np.outer(mean_trace, mean_trace)
    return P, CC


def _unconstrained(A: np.ndarray, P: np.ndarray, CC: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """(pixels, components) the first ``components = len(energies)`` footprints' unconstrained least-squares
    weights: the HALS step without the support and the clipping, ``a_k + (P_k − A·CC_k) / CC_kk``
    (``energies``: the ``CC_kk``, floored above zero)."""
    components = energies.size
    A64 = A.astype(np.float64)
    return A64[:, :components] + (P[:, :components] - A64 @ CC[:, :components]) / energies


def _supported(A: np.ndarray, unconstrained: np.ndarray, noise: np.ndarray, dims: tuple[int, int],
               gsig: float, energies: np.ndarray, tail: bool = False) -> np.ndarray:
    """(pixels, components) where each footprint's ``unconstrained`` weights (:func:`_unconstrained`)
    stand significantly above zero, pooled as in the initialisation; standard error ``σ_p / sqrt(CC_kk)``."""
    components = unconstrained.shape[1]
    out = np.zeros((A.shape[0], components), dtype=bool)
    near = dilated_support(A[:, :components], dims, radius=max(int(round(NULL_DISTANCE_FACTOR * gsig)), 1))
    rings = Rings(sectors=HALO_SECTORS, width=max(1.0, HALO_RING_WIDTH * gsig), tail=HALO_TAIL_RINGS if tail else 0)
    for k in range(components):
        peak = pixel_position(int(np.argmax(A[:, k])), dims)
        out[:, k] = image_to_column(supported_pixels(column_to_image(unconstrained[:, k], dims),
                                                     column_to_image(noise / np.sqrt(energies[k]), dims),
                                                     sigma=FOOTPRINT_POOL_SIGMA * gsig, min_t=FOOTPRINT_MIN_T,
                                                     peak=peak, min_fraction=REFINE_REL_THRESHOLD,
                                                     null=column_to_image(~near[:, k], dims), halo_shaped=True,
                                                     rings=rings))
    return out
