"""Which margin picks gSig's factor k: each candidate margin per k against the F1@0.5 each k gives (issue #18, h18k).

On training analogues only (new seeds of the benchmark's configurations, never 11–14): for k in
:data:`cnmflow.auto_params.GSIG_FACTORS`, the visible blobs' PNR and the flipped null's maxima at gSig = k·r, and

- ``cut``: median blob PNR / the PNR cut (median + noise_k·sd of the maxima) — the margin ``choose_gsig`` uses;
- ``z``: (median blob PNR − the maxima's median) / their sd (1.4826·MAD): the blobs in units of the null's spread;
- ``zcut``: (median blob PNR − cut) / sd;
- ``med``: median blob PNR / the maxima's median;

then one fit per k with auto's cuts read at that gSig (``estimate_from_movie(gsig=...)``), scored by F1@0.5.
``--auto``: auto's own values (bootstrap-weighted k) with the whole cut in the margin and with ``CUT_WEIGHT``, fitted.

    PYTHONPATH=. .venv/bin/python benchmarks/gsig_margins.py            # margins and one fit per k (~8 min)
    PYTHONPATH=. .venv/bin/python benchmarks/gsig_margins.py --auto --out benchmarks/results/gsig_margins_auto.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, RESULTS, SMALL_SOMA, TSUB, Movie, downsampled,  # noqa: E402
                                   fit_and_score, fit_params, save_runs, simulate)

#: Training analogues of the benchmark's four configurations (seeds 21–24; none of the held-out 11–14).
TRAINING = (tuple(Movie("cortex_l23", (160, 160), 800, s) for s in (21, 22, 23, 24))
            + tuple(Movie("ca1", (128, 128), 800, s) for s in (21, 22, 23, 24))
            + tuple(Movie("cortex_l23", (128, 128), 800, s, {"peak_snr": (1.0, 4.0)}) for s in (21, 22))
            + tuple(Movie("ca1", (128, 128), 800, s, {"peak_snr": (1.0, 4.0)}) for s in (21, 22)))


def margins_at(sample: np.ndarray, radius, k: float) -> dict:
    """Every candidate margin at gSig = k·r (downsampled pixels, as ``choose_gsig`` reads them)."""
    from cnmflow.auto_params.radius import MIN_BLOBS
    from cnmflow.auto_params.cuts import null_maxima
    from cnmflow.auto_params.gsig_choice import pnr_cut_of
    from cnmflow.auto_params.seed_images import seed_images

    g = k * radius.radius
    images = seed_images(sample, gsig=g, center_psf=True)
    blobs = np.asarray(radius.blobs[:max(radius.n_visible, MIN_BLOBS)], dtype=int)
    blob = float(np.median(images.pnr[blobs[:, 0], blobs[:, 1]]))
    maxima = null_maxima(images.flipped_pnr, g)
    median = float(np.median(maxima))
    sd = 1.4826 * float(np.median(np.abs(maxima - median)))
    cut = float(pnr_cut_of(maxima))
    return {"k": k, "blob": round(blob, 3), "null_median": round(median, 3), "null_sd": round(sd, 3),
            "cut_ds": round(cut, 3), "cut": round(blob / cut, 3), "z": round((blob - median) / sd, 3),
            "zcut": round((blob - cut) / sd, 3), "med": round(blob / median, 3)}


def movie_record(movie: Movie, fit: bool) -> dict:
    """Auto's choice, each factor's margins and (with ``fit``) its fit with auto's cuts at that gSig."""
    from cnmflow.auto_params import GSIG_FACTORS, estimate_from_movie, gsiz_for

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    auto = estimate_from_movie(sample, tsub=TSUB)
    record = {"movie": movie.name, "radius": round(auto.radius.radius, 3), "auto_factor": auto.gsig_choice.factor,
              "auto_wins": auto.gsig_choice.wins, "auto": [auto.gSig, auto.min_corr, auto.min_pnr], "per_k": []}
    for k in GSIG_FACTORS:
        row = margins_at(sample, auto.radius, k)
        est = estimate_from_movie(sample, tsub=TSUB, gsig=round(k * auto.radius.radius, 2))
        row["values"] = [est.gSig, est.min_corr, est.min_pnr]
        if fit:
            row["fit"] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, est.gSig, gsiz_for(est.gSig),
                                                                        est.min_corr, est.min_pnr))
        record["per_k"].append(row)
        print(json.dumps({"movie": movie.name, **row}), flush=True)
    return record


def auto_record(movie: Movie) -> dict:
    """Auto's own values (bootstrap-weighted k) with the whole cut in the margin (weight 1, the estimator before
    h18k) and with :data:`~cnmflow.auto_params.gsig_choice.CUT_WEIGHT`, each fitted (once where they agree)."""
    from cnmflow.auto_params import estimate_from_movie, gsig_choice

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    weight, record, fits = gsig_choice.CUT_WEIGHT, {"movie": movie.name}, {}
    for label, w in (("before", 1.0), ("after", weight)):
        gsig_choice.CUT_WEIGHT = w
        try:
            est = estimate_from_movie(sample, tsub=TSUB)
        finally:
            gsig_choice.CUT_WEIGHT = weight
        values = (est.gSig, est.gSiz, est.min_corr, est.min_pnr)
        if values not in fits:
            fits[values] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, *values))
        record[label] = {"factor": est.gsig_choice.factor, "wins": est.gsig_choice.wins, "values": values,
                         "fit": fits[values]}
    print(json.dumps(record), flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-fit", action="store_true", help="margins only")
    parser.add_argument("--auto", action="store_true", help="auto's own values with the whole cut (before) and with "
                        "CUT_WEIGHT (after), each fitted")
    parser.add_argument("--only", nargs="+", help="movie names to run (default all of TRAINING)")
    parser.add_argument("--analogues", action="store_true", help="the DENSE and SMALL_SOMA training analogues (of "
                        "held-out seeds 11 and 12) instead of TRAINING")
    parser.add_argument("--out", type=Path, default=RESULTS / "gsig_margins.json")
    args = parser.parse_args(argv)
    movies = [m for m in (DENSE + SMALL_SOMA if args.analogues else TRAINING) if not args.only or m.name in args.only]
    records = [auto_record(m) if args.auto else movie_record(m, fit=not args.no_fit) for m in movies]
    save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
