"""auto's PNR null without the cells' negative surround (issue #18, h18null): values, no fits.

On training movies only (the benchmark's four, ``DENSE`` 17–20, ``SMALL_SOMA`` 21–24; never the held-out 11–14): for
each level c of :data:`cnmflow.auto_params.seed_images.SURROUND_SD` (``inf``: main's null, nothing left out), auto's
estimate (gSig, min_corr, min_pnr) and, at one gSig in each of four consecutive seed-kernel sizes around the true
radius (as ``auto_params_benchmark.py --kernel-steps``), the PNR cut (full rate) against the true cells' median PNR,
and, with ``--fit``, a fit at auto's values per level (F1@0.5 of the accepted components, K accepted).

    PYTHONPATH=. .venv/bin/python benchmarks/null_surround.py [--levels inf 4] [--movies train|dense|small|all] [--fit]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, MOVIES, RESULTS, SMALL_SOMA, TSUB, cell_peak_values,  # noqa: E402
                                   downsampled, fit_and_score, fit_params, simulate, true_half_max_radius)


def at_level(level: float):
    """Set the surround level in the package (the modules read it at call time)."""
    import importlib

    importlib.import_module("cnmflow.auto_params.seed_images").SURROUND_SD = level


def movie_record(movie, levels: list[float], fit: bool = False) -> list[dict]:
    """Auto's values and the cuts at four kernel sizes, per surround level."""
    from cnmflow.auto_params import estimate_from_movie

    sim = simulate(movie)
    truth_r = float(np.median([true_half_max_radius(f) for f in sim.truth.footprints]))
    sample = downsampled(sim.movie)
    gsigs = [round((int(2 * truth_r) + j) / 2 + 0.2, 2) for j in (-1, 0, 1, 2)]
    out = []
    for level in levels:
        at_level(level)
        cpu = time.process_time()
        est = estimate_from_movie(sample, tsub=TSUB)
        cpu = time.process_time() - cpu
        row = {"movie": movie.name, "level": level, "gSig": est.gSig, "factor": est.gsig_choice.factor,
               "margins": [round(m, 3) for m in est.gsig_choice.margins], "min_corr": est.min_corr,
               "min_pnr": est.min_pnr, "auto_cpu_s": round(cpu, 3), "kernels": []}
        for g in gsigs:
            e = estimate_from_movie(sample, tsub=TSUB, gsig=g)
            cells = cell_peak_values([e.pnr_image / e.pnr_reduction], sim.truth.footprints)[:, 0]
            row["kernels"].append({"gSig": g, "kernel": 2 * int(2 * g) + 1, "cut": e.min_pnr,
                                   "cells_median": round(float(np.median(cells)), 2),
                                   "cells_above": int((cells >= e.min_pnr).sum()), "n_true": len(cells)})
        if fit:
            result = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, est.gSig, est.gSiz, est.min_corr,
                                                                    est.min_pnr))
            row["fit"] = {key: result[key] for key in ("K", "n_rejected", "f1_iou50", "f1_score", "cpu_s")}
        print(json.dumps(row), flush=True)
        out.append(row)
    at_level(3.0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=float, nargs="+", default=[float("inf"), 2.0, 3.0, 4.0])
    parser.add_argument("--movies", choices=("train", "dense", "small", "all"), default="all")
    parser.add_argument("--fit", action="store_true", help="fit auto's values at each level")
    parser.add_argument("--out", type=Path, default=RESULTS / "null_surround_values.json")
    args = parser.parse_args()
    chosen = {"train": MOVIES, "dense": DENSE, "small": SMALL_SOMA, "all": MOVIES + DENSE + SMALL_SOMA}[args.movies]
    records = [r for movie in chosen for r in movie_record(movie, args.levels, args.fit)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
