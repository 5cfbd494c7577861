"""One patch of CNMF for 2P and dendritic data: greedy_roi or sparse_NMF with a low-rank background.

Like the 1P job (:mod:`~cnmflow.engine.patch_job.one_photon`), a pure function of (movie source,
patch box, settings) that reads only its box from the shared movie file. The patch keeps
``patch_nb`` background components of its own (``nb`` when the whole field of view is one
patch); the global model is assembled from them by :mod:`cnmflow.engine.low_rank_background`.

The patch returns its initialisation (greedy_roi refines it with a few HALS rounds). With
``only_init=False`` the further spatial and temporal updates run on the full field of view
against the global background only: against its ``nb_patch`` components alone a patch's
neurons soak up the background its model leaves out (measured: F1 0.95 → 0.53 on the 2P tests).
"""

from __future__ import annotations

from typing import Callable

from cnmflow.engine.init import greedy_roi, sparse_nmf
from cnmflow.engine.init.result import InitResult
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage
from cnmflow.engine.patch_job.box_io import BoxView, downsample_in_chunks, noise_reduction
from cnmflow.engine.patch_job.result import PatchResult, patch_result
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import InitSection, PatchJobSettings

#: The 2P initialisations by method_init; each is ``initialize(frames, section, *, storage)``.
LOW_RANK_INITS: dict[str, Callable[..., InitResult]] = {"greedy_roi": greedy_roi.initialize,
                                                        "sparse_NMF": sparse_nmf.initialize}


def fit_patch_low_rank(source: MovieSource, box: PatchBox, job: PatchJobSettings, *,
                       fov_dims: tuple[int, int], storage: PatchStorage = PatchStorage()) -> PatchResult:
    """greedy_roi / sparse_NMF on one patch; see the module docstring.

    The patch and greedy_roi's working copies go where ``storage`` says (scratch files for a long
    recording); both initialisations read them a chunk of frames at a time.
    """
    init = job.init
    patch = BoxView(source.streaming(), box)
    at_full_rate = init.tsub == 1 and init.ssub == 1
    noise = None if at_full_rate else pixel_noise(patch)
    with downsample_in_chunks(patch, tsub=init.tsub, ssub=init.ssub, storage=storage) as Y:
        if at_full_rate:  # Y is the patch itself: no second read of the box from the movie file
            noise = pixel_noise(Y)
        found = _initialize(Y, init, storage=storage)
        downsampling = noise_reduction(patch, Y)
        grid = Y.shape[1:]
    return patch_result(box, found.A, found.C, grid=grid, images=found, noise=noise, noise_reduction=downsampling,
                        fov_dims=fov_dims, border_pix=init.border_pix, background=(found.b, found.f))


def _initialize(Y: PatchFrames, init: InitSection, *, storage: PatchStorage) -> InitResult:
    return LOW_RANK_INITS[init.method_init](Y, init, storage=storage)
