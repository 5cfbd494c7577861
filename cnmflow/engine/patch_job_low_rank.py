"""One patch of CNMF for 2P and dendritic data: greedy_roi or sparse_NMF with a low-rank background.

Like the 1P job (:mod:`cnmflow.engine.patch_job`), a pure function of (movie source, patch box,
parameters) that reads only its box from the shared movie file. The patch keeps ``nb_patch``
background components of its own (``nb`` when the whole field of view is one patch); the
global model is assembled from them by :mod:`cnmflow.engine.low_rank_background`.

The patch returns its initialisation (greedy_roi refines it with a few HALS rounds). With
``only_init=False`` the further spatial and temporal updates run on the full field of view
against the global background only: against its ``nb_patch`` components alone a patch's
neurons soak up the background its model leaves out (measured: F1 0.95 → 0.53 on the 2P tests).
"""

from __future__ import annotations


from cnmflow.engine.init.greedy_roi import initialize_greedy_roi
from cnmflow.engine.init.low_rank import LowRankInit
from cnmflow.engine.init.sparse_nmf import initialize_sparse_nmf
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage
from cnmflow.engine.patch_job import (BoxView, PatchResult, downsample_in_chunks, drop_border_components,
                                      noise_reduction, to_patch_grid, upsample_footprints)
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.summary_images import correlation_pnr
from cnmflow.params import Params

#: Frames of greedy_roi's rolling sum at the full frame rate (CaImAn's rolling_length).
ROLLING_FRAMES = 100


def patch_background_count(params: Params) -> int:
    """Background components each patch fits: nb for one patch covering the FOV, else nb_patch."""
    return params.nb if params.rf is None else params.nb_patch


def fit_patch_low_rank(source: MovieSource, box: PatchBox, params: Params, *,
                       fov_dims: tuple[int, int], storage: PatchStorage = PatchStorage()) -> PatchResult:
    """greedy_roi / sparse_NMF on one patch; see the module docstring.

    The patch and greedy_roi's working copies go where ``storage`` says (scratch files for a long
    recording); both initialisations read them a chunk of frames at a time.
    """
    patch = BoxView(source.streaming(), box)
    noise = pixel_noise(patch)
    with downsample_in_chunks(patch, tsub=params.tsub, ssub=params.ssub, storage=storage) as Y:
        dims = Y.shape[1:]
        gsig = params.gSig / params.ssub
        init = _initialize(Y, params, gsig=gsig, gsiz=max(int(round(params.gSiz / params.ssub)), 1),
                           storage=storage)
        images = correlation_pnr(Y, gsig=gsig, center_psf=params.center_psf)
        downsampling = noise_reduction(patch, Y)
    A = upsample_footprints(init.A, dims, box.shape)
    A = drop_border_components(A, box, fov_dims, border_pix=params.border_pix)
    keep = A.any(axis=0)
    return PatchResult(box=box, A=A[:, keep], C=init.C[keep], noise=noise,
                       correlation=to_patch_grid(images.correlation, box.shape),
                       pnr=to_patch_grid(images.pnr / downsampling, box.shape),
                       b=upsample_footprints(init.b, dims, box.shape), f=init.f)


def _initialize(Y: PatchFrames, params: Params, *, gsig: float, gsiz: int, storage: PatchStorage) -> LowRankInit:
    nb = patch_background_count(params)
    if params.method_init == "greedy_roi":
        return initialize_greedy_roi(Y, K=params.K, gsig=gsig, gsiz=gsiz, nb=nb, rolling_sum=params.rolling_sum,
                                     rolling_length=max(1, ROLLING_FRAMES // params.tsub),
                                     normalize_init=params.normalize_init, center_psf=params.center_psf,
                                     smooth_rank=max(nb, params.nb), storage=storage)
    return initialize_sparse_nmf(Y, K=params.K, nb=nb)
