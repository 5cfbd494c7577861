"""gSig's factor k when few blobs are visible: h18k's margin (blob PNR / cut^0.3, argmax) against main's (blob PNR /
cut, bootstrap-weighted) and a fallback to k = 1, on training movies only (issue #18, h18fb).

For each movie of the training sets (the benchmark's four, the sweep's six, gsig_margins' twelve analogues, the dense and
6.5 µm analogues; never seeds 11–14): the radius estimate's visible and significant blob counts, each k's margin with the
whole cut and with ``CUT_WEIGHT``, main's bootstrap-weighted k, and (``--fit``) one fit per k with auto's cuts read at
that gSig (plus main's weighted k where it is no factor), scored by F1@0.5 — so any rule over the margins and the blob
count can be scored from the record without refitting (``--fit`` fits only the k's the three rules pick).

    PYTHONPATH=. .venv/bin/python benchmarks/gsig_fallback.py --fit --out benchmarks/results/gsig_fallback.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, MOVIES, RESULTS, SMALL_SOMA, SWEEP, TSUB, Movie,  # noqa: E402
                                   downsampled, fit_and_score, fit_params, save_runs, simulate)
from gsig_margins import TRAINING  # noqa: E402

SETS = {"movies": MOVIES, "sweep": SWEEP, "analogues": TRAINING, "dense": DENSE, "small_soma": SMALL_SOMA}


def main_factor(sample: np.ndarray, radius) -> tuple[float, list[float], list[float]]:
    """Main's k (d45982b): the factors weighted by their bootstrap wins with the whole cut in the margin."""
    from cnmflow.auto_params import gsig_choice
    from cnmflow.auto_params.cuts import null_maxima
    from cnmflow.auto_params.radius import MIN_BLOBS
    from cnmflow.auto_params.seed_images import seed_images

    blobs = np.asarray(radius.blobs[:max(radius.n_visible, MIN_BLOBS)], dtype=int)
    gsigs = [k * radius.radius for k in gsig_choice.GSIG_FACTORS]
    images = [seed_images(sample, gsig=g, center_psf=True) for g in gsigs]
    pnrs = [im.pnr[blobs[:, 0], blobs[:, 1]] for im in images]
    maxima = [null_maxima(im.flipped_pnr, g) for im, g in zip(images, gsigs)]
    weight = gsig_choice.CUT_WEIGHT
    gsig_choice.CUT_WEIGHT = 1.0
    try:
        wins = gsig_choice.bootstrap_wins(pnrs, maxima, np.random.default_rng(0))
    finally:
        gsig_choice.CUT_WEIGHT = weight
    cuts = [float(gsig_choice.pnr_cut_of(m)) for m in maxima]
    blob = [float(np.median(p)) for p in pnrs]
    return round(float(np.dot(wins, gsig_choice.GSIG_FACTORS)), 3), blob, cuts


def movie_record(movie: Movie, fit: bool) -> dict:
    """Blob counts, margins per k, main's and this estimator's k, and (with ``fit``) F1@0.5 per k."""
    from cnmflow.auto_params import GSIG_FACTORS, estimate_from_movie, gsiz_for
    from cnmflow.auto_params.gsig_choice import CUT_WEIGHT
    from cnmflow.auto_params.radius import MIN_BLOBS

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    auto = estimate_from_movie(sample, tsub=TSUB)
    radius = auto.radius
    k_main, blob, cuts = main_factor(sample, radius)
    record = {"movie": movie.name, "radius": round(radius.radius, 3), "n_visible": radius.n_visible,
              "n_significant": radius.n_significant, "auto_factor": auto.gsig_choice.factor,
              "auto_wins": auto.gsig_choice.wins, "main_factor": k_main, "blob": blob, "cut": cuts,
              "margin_cut": [b / c for b, c in zip(blob, cuts)],
              "margin_weighted": [b / c ** CUT_WEIGHT for b, c in zip(blob, cuts)], "per_k": {}}
    needed = {k_main, auto.gsig_choice.factor} | ({1.0} if radius.n_visible < MIN_BLOBS else set())
    for k in sorted(set(GSIG_FACTORS) | {k_main}):
        if fit and k not in needed:
            continue
        est = estimate_from_movie(sample, tsub=TSUB, gsig=round(k * radius.radius, 2))
        row = {"values": [est.gSig, est.min_corr, est.min_pnr]}
        if fit:
            row["fit"] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, est.gSig, gsiz_for(est.gSig),
                                                                        est.min_corr, est.min_pnr))
        record["per_k"][f"{k:g}"] = row
    print(json.dumps(record), flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="one fit per k that a rule picks: main's weighted k, the "
                        "argmax of the weighted margin, and k = 1 where fewer than MIN_BLOBS blobs are visible")
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    parser.add_argument("--only", nargs="+", help="movie names to run")
    parser.add_argument("--out", type=Path, default=RESULTS / "gsig_fallback.json")
    args = parser.parse_args(argv)
    movies = [m for s in args.sets for m in SETS[s] if not args.only or m.name in args.only]
    records = [movie_record(m, fit=args.fit) for m in movies]
    save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
