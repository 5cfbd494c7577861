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

import numpy as np

from cnmflow.engine.init import greedy_roi, sparse_nmf
from cnmflow.engine.init.result import InitResult
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.noise import noise_frame_indices, pixel_noise
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
    noise, Y = _noise_and_downsampled(patch, init, storage)
    with Y:
        found = _initialize(Y, init, storage=storage)
        downsampling = noise_reduction(patch, Y)
        grid = Y.shape[1:]
    return patch_result(box, found.A, found.C, grid=grid, images=found, noise=noise, noise_reduction=downsampling,
                        fov_dims=fov_dims, border_pix=init.border_pix, background=(found.b, found.f))


def _noise_and_downsampled(patch: BoxView, init: InitSection, storage: PatchStorage) -> tuple[np.ndarray, PatchFrames]:
    """The patch's full-rate noise and its downsampled copy, reading the box from the movie file once.

    At full rate the copy is the patch itself. When the noise takes every frame (a recording of
    up to a few thousand frames), the full-rate patch is held (where ``storage`` says) while both
    are computed from it; a longer recording's noise reads its sample of frames from the file.
    """
    if init.tsub == 1 and init.ssub == 1:
        Y = downsample_in_chunks(patch, tsub=1, ssub=1, storage=storage)
        return pixel_noise(Y), Y
    if noise_frame_indices(patch.shape[0]) is not None:
        return pixel_noise(patch), downsample_in_chunks(patch, tsub=init.tsub, ssub=init.ssub, storage=storage)
    with storage.allocate(patch.shape) as full:
        for chunk in full.chunks():
            full[chunk] = patch[chunk]
        return pixel_noise(full), downsample_in_chunks(full, tsub=init.tsub, ssub=init.ssub, storage=storage)


def _initialize(Y: PatchFrames, init: InitSection, *, storage: PatchStorage) -> InitResult:
    return LOW_RANK_INITS[init.method_init](Y, init, storage=storage)
