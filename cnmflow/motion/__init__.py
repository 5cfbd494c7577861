"""Motion correction (NoRMCorre-style rigid and piecewise-rigid registration) under CaImAn's names.

Use :func:`correct_motion` with :class:`MotionParams` (build them with :func:`motion_params`,
which raises :class:`cnmflow.errors.ParameterError` naming the parameter).
"""

from cnmflow.motion.apply import CropBox
from cnmflow.motion.correct import MotionResult, correct_motion
from cnmflow.motion.params import MOTION_PARAM_NAMES, MotionParams, motion_params
from cnmflow.motion.piecewise import PatchGrid

__all__ = ["CropBox", "MotionParams", "MotionResult", "MOTION_PARAM_NAMES", "PatchGrid", "correct_motion",
           "motion_params"]
