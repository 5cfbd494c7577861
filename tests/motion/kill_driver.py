"""Runs ``cnmflow.extract`` with rigid motion correction in its own process and SIGKILLs itself
halfway through writing the corrected copy (no cleanup, as the OOM killer would).

    python tests/motion/kill_driver.py MOVIE OUT    # exit status -9 when killed as planned
"""

from __future__ import annotations

import os
import signal
import sys

TABLE = {"gSig": 3, "gSiz": 13, "min_corr": 0.7, "min_pnr": 5, "rf": None, "n_processes": 1,
         "motion_correction": "rigid", "gSig_filt": 3, "max_shifts": 8}


def main() -> int:
    import cnmflow

    def listener(stage: str, fraction: float) -> None:
        if stage == "motion_correction" and 0.4 <= fraction < 1.0:
            os.kill(os.getpid(), signal.SIGKILL)

    cnmflow.extract([sys.argv[1]], sys.argv[2], params=TABLE, progress=listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
