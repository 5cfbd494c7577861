"""Which of auto's four values (gSig, gSiz, min_corr, min_pnr) makes its F1@0.5 gap to the grid's best on a movie
(issue #18, h19gap): one value swapped at a time, both ways — auto's values with one of the grid-best's, and the
grid-best's with one of auto's —, a min_pnr scan at auto's gSig / gSiz / min_corr, and what the estimate saw (radius,
the factor's bootstrap shares, the PNR null's floor / sd / k, the null's cut before the ceiling, the candidates above
the cuts by shape class, how many true cells lie above each cut pair on the seed images).

The grid-best is read from an ``auto_params_benchmark.py`` run's grid (``--grid-from``; its gSiz is 2·gSig+1). The
estimate is made from the tsub-2 block-mean sample as ``--decompose`` makes it (the same values as the TIFF path on
these 800-frame movies; each record holds both so a difference shows).

    PYTHONPATH=. .venv/bin/python benchmarks/gap_decompose.py --grid-from results/main_fresh51.json … \
        --movies ca1_128x128x800_n_neurons240_seed51 … --out results/gap_decompose.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (HELD_OUT, TSUB, Movie, cell_peak_values, downsampled, fit_and_score,  # noqa: E402
                                   fit_params, reseeded, save_runs, simulate)

KEYS = ("gSig", "gSiz", "min_corr", "min_pnr")
PNR_SCAN = (4.0, 5.0, 6.0, 7.0, 8.0)


def held_out_movie(name: str) -> Movie:
    """The held-out configuration and seed a movie name stands for."""
    seed = int(name.rsplit("seed", 1)[1])
    for movie in reseeded(HELD_OUT, [seed] * len(HELD_OUT)):
        if movie.name == name:
            return movie
    raise SystemExit(f"{name}: not a held-out configuration")


def estimate_record(est, truth, best: dict) -> dict:
    """What the estimate read, and how many true cells sit above auto's cuts and the grid-best's on its images."""
    cells = cell_peak_values([est.correlation_image, est.pnr_image / est.pnr_reduction], truth.footprints)
    choice = est.gsig_choice
    above = lambda c, p: int(((cells[:, 0] >= c) & (cells[:, 1] >= p)).sum())  # noqa: E731
    return {"radius": round(float(est.radius.radius), 2), "n_visible": int(est.radius.n_visible),
            "n_blobs": int(len(est.radius.blob_radii)),
            "factor": choice.factor if choice else None, "wins": list(choice.wins) if choice else None,
            "margins": [round(m, 3) for m in choice.margins] if choice else None,
            "pnr_floor": round(est.pnr.floor / est.pnr_reduction, 2), "pnr_sd": round(est.pnr.sd / est.pnr_reduction, 2),
            "pnr_k": round(est.pnr.k, 2), "null_min_pnr": est.null_min_pnr, "corr_cut": round(est.corr.cut, 3),
            "n_seeds": int(len(est.seeds)), "seed_classes": est.seed_class_counts(), "n_true": int(len(cells)),
            "cells_pnr_quartiles": np.percentile(cells[:, 1], [25, 50, 75]).round(2).tolist(),
            "cells_corr_quartiles": np.percentile(cells[:, 0], [25, 50, 75]).round(3).tolist(),
            "cells_above_auto_cuts": above(est.min_corr, est.min_pnr),
            "cells_above_best_cuts": above(best["min_corr"], best["min_pnr"])}


def swaps(auto: dict, best: dict) -> dict[str, dict]:
    """The parameter sets fitted: auto, best, each with one value of the other, auto at best's gSig and gSiz together,
    and auto with min_pnr scanned."""
    points = {"auto": dict(auto), "best": dict(best)}
    for key in KEYS:
        if auto[key] != best[key]:
            points[f"auto_{key}_best"] = {**auto, key: best[key]}
            points[f"best_{key}_auto"] = {**best, key: auto[key]}
    points["auto_gSig_gSiz_best"] = {**auto, "gSig": best["gSig"], "gSiz": best["gSiz"]}
    for p in PNR_SCAN:
        if p != auto["min_pnr"]:
            points[f"auto_pnr{p:g}"] = {**auto, "min_pnr": p}
    return points


def movie_record(movie: Movie, grid: list[dict], tiff_auto: dict | None) -> dict:
    from cnmflow.auto_params import estimate_from_movie

    sim = simulate(movie)
    est = estimate_from_movie(downsampled(sim.movie), tsub=TSUB)
    auto = {"gSig": est.gSig, "gSiz": est.gSiz, "min_corr": est.min_corr, "min_pnr": est.min_pnr}
    top = max(grid, key=lambda r: r["f1_iou50"])
    best = {k: top["params"][k] for k in KEYS}
    record = {"movie": movie.name, "auto": auto, "tiff_auto": tiff_auto, "best": best,
              "best_f1_iou50": top["f1_iou50"], "estimate": estimate_record(est, sim.truth, best), "fits": {}}
    for label, p in swaps(auto, best).items():
        if label == "best":
            record["fits"][label] = {"params": best, "f1_iou50": top["f1_iou50"], "K": top["K"], "from_grid": True}
            continue
        record["fits"][label] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, p["gSig"], p["gSiz"],
                                                                                 p["min_corr"], p["min_pnr"]))
        print(label, record["fits"][label]["params"], record["fits"][label]["f1_iou50"], flush=True)
    return record


#: Moves of auto's values too small to change what the estimate means: min_pnr ×(1 ± 1%), gSig ± 0.02 px (the seed
#: kernel's size 2·int(2·gSig)+1 kept; a move that would cross a size step is left out).
JITTER = (("min_pnr", 0.99), ("min_pnr", 1.01), ("gSig", -0.02), ("gSig", 0.02))


def jitter_record(movie: Movie, tiff_auto: dict) -> dict:
    """F1@0.5 at ``tiff_auto``'s values (auto's, or the grid's best) and at each :data:`JITTER` move of them: how far
    the fit's score moves for a change no estimator could mean, the floor under any per-movie gap; at the grid's
    best, how much of its lead is the luck of being the largest of a dozen such draws."""
    sim = simulate(movie)
    auto = {k: tiff_auto[k] for k in KEYS}
    record = {"movie": movie.name, "auto": auto, "fits": {}}
    points = {"auto": auto}
    for key, move in JITTER:
        value = round(auto[key] * move, 2) if key == "min_pnr" else round(auto[key] + move, 2)
        if key == "gSig" and int(2 * value) != int(2 * auto[key]):
            continue
        points[f"{key}{move:+g}"] = {**auto, key: value}
    for label, p in points.items():
        record["fits"][label] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, p["gSig"], p["gSiz"],
                                                                                 p["min_corr"], p["min_pnr"]))
        print(movie.name[-30:], label, p, record["fits"][label]["f1_iou50"], flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid-from", type=Path, nargs="+", required=True, help="auto_params_benchmark.py runs")
    parser.add_argument("--movies", nargs="+", required=True, help="names, or 'all' for every movie in the runs")
    parser.add_argument("--jitter", action="store_true", help="the JITTER moves at auto's values instead")
    parser.add_argument("--at-best", action="store_true", help="with --jitter: at the grid's best, not auto's")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = {r["movie"]: r for path in args.grid_from for r in json.loads(path.read_text())["runs"]}
    records = []
    for name in (list(runs) if args.movies == ["all"] else args.movies):
        run = runs[name]
        if args.jitter:
            centre = max(run["grid"], key=lambda r: r["f1_iou50"])["params"] if args.at_best else run["auto"]
            records.append(jitter_record(held_out_movie(name), centre))
            save_runs(args.out, records)
            continue
        records.append(movie_record(held_out_movie(name), run["grid"], run.get("auto")))
        print(json.dumps({k: records[-1][k] for k in ("movie", "auto", "best", "estimate")}), flush=True)
        save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
