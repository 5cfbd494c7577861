"""Which of auto's two cuts binds on CA1: min_corr or min_pnr (issue #18, h18corr).

On training movies only (the benchmark's four, ``--dense`` seed 11's analogues 17–20, ``--small-soma`` seed 12's
21–24; never the held-out 11–14), at auto's own gSig:

- the true cells' core values on the engine's images as auto reads them (the largest correlation and full-rate PNR
  within 1 px of each footprint's peak, :func:`cell_peak_values`), counted against each cut alone and both;
- four fits: (auto corr, auto pnr), (0.7, auto pnr), (auto corr, 7), (0.7, 7), F1@0.5 of the accepted components;
- with ``--steps``: auto's min_corr (and min_pnr) at one gSig in each of four consecutive seed-kernel sizes around
  the true radius, against the cells' median correlation there (values only, no fits).

    PYTHONPATH=. .venv/bin/python benchmarks/cut_split.py [--dense | --small-soma] [--no-fit] [--steps]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, MOVIES, RESULTS, SMALL_SOMA, TSUB, Movie, cell_peak_values,  # noqa: E402
                                   downsampled, fit_and_score, fit_params, kernel_step_estimates, save_runs, simulate)


def cells_against(est, footprints: np.ndarray, corr_cut: float, pnr_cut: float) -> dict:
    """How many true cells' cores pass each cut alone and both (full-rate PNR)."""
    cells = cell_peak_values([est.correlation_image, est.pnr_image / est.pnr_reduction], footprints)
    corr, pnr = cells[:, 0], cells[:, 1]
    image_corr, image_pnr = est.correlation_image, est.pnr_image / est.pnr_reduction
    core = [f >= 0.5 * f.max() for f in footprints]  # at one pixel of the core (≥ half the peak), as a seed must
    return {"corr_only": int((corr >= corr_cut).sum()), "pnr_only": int((pnr >= pnr_cut).sum()),
            "both": int(((corr >= corr_cut) & (pnr >= pnr_cut)).sum()),
            "joint_core": int(sum(bool(((image_corr[m] >= corr_cut) & (image_pnr[m] >= pnr_cut)).any()) for m in core)),
            "pnr_core": int(sum(bool((image_pnr[m] >= pnr_cut).any()) for m in core)),
            "corr_q": np.percentile(corr, [10, 25, 50]).round(3).tolist(),
            "pnr_q": np.percentile(pnr, [10, 25, 50]).round(2).tolist()}


def movie_record(movie: Movie, fit: bool, estimator=None) -> dict:
    """Auto's values, the cells against its cuts and 0.7 / 7, and (``fit``) the four fits at auto's gSig."""
    from cnmflow.auto_params import estimate_from_movie

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    est = (estimator or estimate_from_movie)(sample, tsub=TSUB)
    g, c, p = est.gSig, est.min_corr, est.min_pnr
    record = {"movie": movie.name, "n_true": int(len(sim.truth.footprints)), "gSig": g, "gSiz": est.gSiz,
              "min_corr": c, "min_pnr": p, "corr_null": {"median": round(est.corr.floor, 3),
                                                         "k": round(est.corr.k, 3), "cut": round(est.corr.cut, 3)},
              "cells_auto": cells_against(est, sim.truth.footprints, c, p),
              "cells_0.7_7": cells_against(est, sim.truth.footprints, 0.7, 7.0)}
    if fit:
        for key, (cc, pp) in {"auto": (c, p), "0.7_auto": (0.7, p), "auto_7": (c, 7.0), "0.7_7": (0.7, 7.0)}.items():
            record[f"fit_{key}"] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, g, est.gSiz, cc, pp))
    print(json.dumps(record), flush=True)
    return record


def steps_record(movie: Movie) -> list[dict]:
    """Auto's cuts at one gSig in each of four kernel sizes around the true radius, with the cells' median
    correlation and PNR there (no fits)."""
    sim, estimates = kernel_step_estimates(movie)
    records = []
    for g, est in estimates:
        record = {"movie": movie.name, "gSig": g, "kernel": 2 * int(2 * g) + 1, "min_corr": est.min_corr,
                  "min_pnr": est.min_pnr, "corr_null_median": round(est.corr.floor, 3),
                  "cells": cells_against(est, sim.truth.footprints, est.min_corr, est.min_pnr)}
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense", action="store_true")
    parser.add_argument("--small-soma", action="store_true")
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--steps", action="store_true", help="min_corr across kernel sizes (no fits)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    which = "_dense" if args.dense else "_small_soma" if args.small_soma else ""
    chosen = DENSE if args.dense else SMALL_SOMA if args.small_soma else MOVIES
    if args.steps:
        runs = [r for movie in chosen for r in steps_record(movie)]
    else:
        runs = [movie_record(movie, fit=not args.no_fit) for movie in chosen]
    out = args.out or RESULTS / f"cut_split{'_steps' if args.steps else ''}{which}.json"
    save_runs(out, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
