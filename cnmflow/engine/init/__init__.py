"""Component initialisation of one patch, three variants side by side.

``corr_pnr`` (1P), ``greedy_roi`` (2P) and ``sparse_nmf`` (dendrites) each offer
``initialize(frames, section, *, storage) -> InitResult`` (:mod:`cnmflow.engine.init.result`);
their algorithm functions (``initialize_corr_pnr`` ...) take the options one by one.
"""

from cnmflow.engine.init.corr_pnr import CorrPnrInit, initialize_corr_pnr, seed_candidates
from cnmflow.engine.init.result import InitResult

__all__ = ["CorrPnrInit", "InitResult", "initialize_corr_pnr", "seed_candidates"]
