"""Simulated calcium-imaging movies with ground truth, and writers for tif / isxd / avi.

- :mod:`cnmflow.synthetic.gaussian`: the fast simulators of the unit tests and the speed
  benchmarks (:func:`simulate_1p`, :func:`simulate_2p`: Gaussian footprints cut at 3 sigma)
  and the movie writers.
- :mod:`cnmflow.synthetic.realistic`: a one-photon miniscope movie as optics draws it
  (:func:`simulate_realistic_1p`): somata blurred by a depth-dependent scattering
  point-spread function with a long halo (:mod:`cnmflow.synthetic.optics`), cells above and
  below the focal plane, neuropil, pulsing vessels, shot and read noise, optional motion and
  photobleaching (:mod:`cnmflow.synthetic.tissue`). The fixture footprint shapes are judged on.
"""

from cnmflow.synthetic.gaussian import (
    GroundTruth,
    SimulatedMovie,
    ar_coefficients,
    simulate_1p,
    simulate_2p,
    write_avi,
    write_isxd,
    write_tiff,
)
from cnmflow.synthetic.optics import Optics
from cnmflow.synthetic.realistic import PRESETS, RealisticConfig, RealisticTruth, simulate_realistic_1p

__all__ = [
    "GroundTruth",
    "SimulatedMovie",
    "simulate_1p",
    "simulate_2p",
    "write_tiff",
    "write_isxd",
    "write_avi",
    "ar_coefficients",
    "simulate_realistic_1p",
    "RealisticConfig",
    "RealisticTruth",
    "PRESETS",
    "Optics",
]
