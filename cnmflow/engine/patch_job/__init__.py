"""One patch of CNMF(-E) as a stage package: a pure function of (movie source, patch box, settings).

* :mod:`~cnmflow.engine.patch_job.box_io`: read the patch box from the shared movie file and
  downsample it in chunks (the patch is never held at full rate);
* :mod:`~cnmflow.engine.patch_job.one_photon`: CNMF-E (corr_pnr seeds, ring background, refinement);
* :mod:`~cnmflow.engine.patch_job.two_photon`: CNMF's greedy_roi / sparse_NMF with a low-rank background;
* :mod:`~cnmflow.engine.patch_job.result`: :class:`PatchResult` and the way back from the patch's
  ``ssub`` grid to its full-resolution pixels;
* :mod:`~cnmflow.engine.patch_job.dispatch`: ``fit_patch``, which picks the job for ``method_init``.

Where jobs run (this process, worker processes, a Dask cluster) is :mod:`cnmflow.engine.executors`.
"""
