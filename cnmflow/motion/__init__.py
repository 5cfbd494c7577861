"""Motion correction (NoRMCorre-style rigid and piecewise-rigid registration) under CaImAn's names.

Build the parameters with :func:`motion_params` (CaImAn's ``motion`` group plus
``motion_correction``; errors are :class:`cnmflow.errors.ParameterError` naming the parameter)
and run :func:`correct_motion` from the concatenated movie into a float32 copy of the same shape::

    params = motion_params(motion_group, motion_correction="piecewise_rigid")
    corrected = np.memmap(path, dtype=np.float32, mode="w+", shape=movie.shape)
    result = correct_motion(movie, corrected, params=params, n_processes=4, progress=report)
    result.caiman_shifts()   # estimates.shifts in CaImAn's layout
    result.crop              # pixels at each edge the largest shift left without data

Modules, one step each: :mod:`~cnmflow.motion.params` (the model), :mod:`~cnmflow.motion.highpass`
(the 1P filter for estimation), :mod:`~cnmflow.motion.crosscorr` (bounded sub-pixel correlation
peak), :mod:`~cnmflow.motion.rigid`, :mod:`~cnmflow.motion.piecewise`,
:mod:`~cnmflow.motion.template`, :mod:`~cnmflow.motion.apply` (OpenCV warps, crop box),
:mod:`~cnmflow.motion.chunk_job` (one chunk of frames), :mod:`~cnmflow.motion.chunk_runner`
(this process, local processes or Dask) and :mod:`~cnmflow.motion.correct` (the passes).
"""

from cnmflow.motion.apply import CropBox
from cnmflow.motion.correct import MotionResult, correct_motion
from cnmflow.motion.params import MOTION_PARAM_NAMES, MotionParams, motion_params
from cnmflow.motion.piecewise import PatchGrid

__all__ = ["CropBox", "MotionParams", "MotionResult", "MOTION_PARAM_NAMES", "PatchGrid", "correct_motion",
           "motion_params"]
