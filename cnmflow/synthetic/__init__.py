"""Simulated calcium-imaging movies with ground truth, and writers for tif / isxd / avi.

- :mod:`cnmflow.synthetic.gaussian`: the fast simulators of the unit tests and the speed
  benchmarks (:func:`simulate_1p`, :func:`simulate_2p`: Gaussian footprints cut at 3 sigma).
- :mod:`cnmflow.synthetic.writers`: the movie writers (:func:`write_tiff`, :func:`write_isxd`,
  :func:`write_avi`).
- :mod:`cnmflow.synthetic.realistic`: a one-photon miniscope movie as optics draws it
  (:func:`simulate_realistic_1p`): somata blurred by a depth-dependent scattering
  point-spread function with a long halo (:mod:`cnmflow.synthetic.optics`), cells above and
  below the focal plane, neuropil, pulsing vessels, shot and read noise, optional motion and
  photobleaching (:mod:`cnmflow.synthetic.tissue`). The fixture footprint shapes are judged on.
- :mod:`cnmflow.synthetic.realistic_2p`: a two-photon movie of cortex as a point-scanning microscope
  records it (:func:`simulate_realistic_2p`): optical sections through somata with dark nuclei
  (:mod:`cnmflow.synthetic.two_photon`), cells grazing the plane, in-focus neuropil, vessels'
  shadows, a photomultiplier's noise, optional motion and photobleaching.
"""

from cnmflow.synthetic import gaussian, realistic, realistic_2p, writers
from cnmflow.synthetic.gaussian import *  # noqa: F403 - the names in gaussian.__all__
from cnmflow.synthetic.optics import Optics
from cnmflow.synthetic.realistic import *  # noqa: F403 - the names in realistic.__all__
from cnmflow.synthetic.realistic_2p import *  # noqa: F403 - the names in realistic_2p.__all__
from cnmflow.synthetic.writers import *  # noqa: F403 - the names in writers.__all__

__all__ = [*gaussian.__all__, *writers.__all__, *realistic.__all__, *realistic_2p.__all__, "Optics"]
