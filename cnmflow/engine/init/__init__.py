"""Component initialization methods."""

from cnmflow.engine.init.corr_pnr import InitResult, initialize_corr_pnr, seed_candidates

__all__ = ["InitResult", "initialize_corr_pnr", "seed_candidates"]
