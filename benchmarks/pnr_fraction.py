"""min_pnr as a fraction of the visible blobs' PNR, floored by the quiet null (issue #18, h18frac): values and fits.

For each movie: auto's gSig/min_corr (main's), main's PNR cut, the quiet (surround-free) null's cut, the median PNR
(full rate) of the radius estimator's visible blobs and of the true cells at auto's gSig; then fits at auto's
gSig/min_corr with each min_pnr in ``--pnr`` (absolute) and ``--fractions`` × the blobs' median. Training movies by
default (the benchmark's four, DENSE 17–20, SMALL_SOMA 21–24); ``--held-out`` only after the constants are read.

    PYTHONPATH=. .venv/bin/python benchmarks/pnr_fraction.py --fractions 0.5 0.6 0.7 [--held-out] [--out X.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, HELD_OUT, MOVIES, RESULTS, SMALL_SOMA, TSUB, cell_peak_values,  # noqa: E402
                                   downsampled, fit_and_score, fit_params, simulate)


def values(movie) -> tuple[object, dict]:
    """The simulated movie and auto's cut values on its tsub-2 sample."""
    from cnmflow.auto_params import estimate_from_movie
    from cnmflow.auto_params.cuts import noise_floor_cut, noise_k, null_maxima, scale_to_length
    from cnmflow.auto_params.radius import MIN_BLOBS

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    est = estimate_from_movie(sample, tsub=TSUB)
    images, g = est.gsig_choice.images, est.gSig
    maxima = null_maxima(images.flipped_pnr, g)
    main = scale_to_length(noise_floor_cut(maxima, name="PNR", null="", k=noise_k(len(maxima))),
                           sample.shape[0], sample.shape[0])
    red = est.pnr_reduction
    nv = est.radius.n_visible
    blobs = np.asarray(est.radius.blobs, dtype=int)
    bp = images.pnr[blobs[:, 0], blobs[:, 1]] / red
    cells = cell_peak_values([images.pnr / red], sim.truth.footprints)[:, 0]
    row = {"movie": movie.name, "gSig": est.gSig, "gSiz": est.gSiz, "min_corr": est.min_corr,
           "main_cut": round(main.cut / red, 2), "quiet_cut": est.min_pnr, "n_visible": nv,
           "blob_median_visible": round(float(np.median(bp[:max(nv, 1)])), 2),
           "blob_median_n": round(float(np.median(bp[:max(nv, MIN_BLOBS)])), 2),
           "blob_q25_n": round(float(np.percentile(bp[:max(nv, MIN_BLOBS)], 25)), 2),
           "cells_median": round(float(np.median(cells)), 2), "n_true": len(cells)}
    return sim, row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="*", default=[])
    parser.add_argument("--pnr", type=float, nargs="*", default=[])
    parser.add_argument("--held-out", action="store_true")
    parser.add_argument("--movies", nargs="*", help="names to keep")
    parser.add_argument("--out", type=Path, default=RESULTS / "pnr_fraction.json")
    args = parser.parse_args()
    chosen = HELD_OUT if args.held_out else MOVIES + DENSE + SMALL_SOMA
    if args.movies:
        chosen = [m for m in chosen if m.name in args.movies]
    out = []
    for movie in chosen:
        sim, row = values(movie)
        wanted = sorted({round(p, 2) for p in args.pnr} | {round(f * row["blob_median_n"], 2) for f in args.fractions})
        row["fits"] = []
        for p in wanted:
            r = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, row["gSig"], row["gSiz"], row["min_corr"], p))
            row["fits"].append({"min_pnr": p, "K": r["K"], "n_rejected": r["n_rejected"], "f1_iou50": r["f1_iou50"],
                                "f1_score": r["f1_score"], "cpu_s": r["cpu_s"]})
        print(json.dumps(row), flush=True)
        out.append(row)
    args.out.write_text(json.dumps({"runs": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
