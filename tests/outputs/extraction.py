"""The analysis table the end-to-end output tests run with (one patch; finds the simulated cells fast)."""

PARAMS = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "min_pnr": 5, "rf": None, "n_processes": 1}
