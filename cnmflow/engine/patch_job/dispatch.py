"""``fit_patch``: the patch job for the run's initialisation (1P ring model or 2P low-rank background).

A job is a pure function of (movie source, patch box, settings): it reads only its box from the
shared movie file, so it can run in a worker process or on a cluster node
(:mod:`cnmflow.engine.executors`).
"""

from __future__ import annotations

from typing import Callable

from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.patch_job.one_photon import fit_patch_corr_pnr
from cnmflow.engine.patch_job.result import PatchResult
from cnmflow.engine.patch_job.two_photon import fit_patch_low_rank
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.sections import InitSection, PatchJobSettings

PatchJob = Callable[..., PatchResult]


def patch_job_for(init: InitSection) -> PatchJob:
    """The job for ``init.method_init``: CNMF-E's for corr_pnr, the low-rank one otherwise."""
    return fit_patch_low_rank if init.low_rank else fit_patch_corr_pnr


def fit_patch(source: MovieSource, box: PatchBox, job: PatchJobSettings, *, fov_dims: tuple[int, int],
              storage: PatchStorage = PatchStorage()) -> PatchResult:
    """Fit one patch of ``source`` with the job ``job.init.method_init`` asks for.

    ``storage`` places the patch's frame-sized working arrays: in memory up to its limit, in
    scratch files (deleted on return) beyond it, so a long recording does not grow the worker.
    """
    return patch_job_for(job.init)(source, box, job, fov_dims=fov_dims, storage=storage)
