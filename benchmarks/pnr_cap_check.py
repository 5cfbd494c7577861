"""auto's values with min_pnr capped, fitted on the movies of an ``auto_params_benchmark.py`` run (issue #18).

A cap is a candidate rule for auto's strict PNR cut on CA1 (findings/auto_params.md, h18corr: a fixed min_pnr 7
beat auto's cut on 8 of 10 CA1 training movies). For every movie of the run whose auto min_pnr lies above the cap,
the movie is simulated again and fitted at auto's gSig / gSiz / min_corr (as the run read them, from the TIFF) with
min_pnr = the cap; its F1@0.5 is set beside auto's and the grid's best.

    .venv/bin/python benchmarks/pnr_cap_check.py results/auto_params_benchmark_seeds41-42-43-44.json --seeds 41 42 43 44
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import auto_params_benchmark as apb  # noqa: E402


def capped_fits(run: Path, movies: tuple, cap: float) -> list[dict]:
    """One fit per movie whose auto min_pnr exceeds ``cap``: auto's other values, min_pnr = cap."""
    by_name = {m.name: m for m in movies}
    out = []
    for record in json.loads(run.read_text())["runs"]:
        auto, movie = record["auto"], by_name[record["movie"]]
        if auto["min_pnr"] <= cap:
            continue
        sim = apb.simulate(movie)
        fit = apb.fit_and_score(sim.movie, sim.truth, apb.fit_params(movie.fr, auto["gSig"], auto["gSiz"],
                                                                     auto["min_corr"], cap))
        auto_fit = record.get("auto_fit") or apb.fit_and_score(sim.movie, sim.truth, apb.fit_params(  # an --auto-only run
            movie.fr, auto["gSig"], auto["gSiz"], auto["min_corr"], auto["min_pnr"]))
        out.append({"movie": movie.name, "auto_min_pnr": auto["min_pnr"], "cap": cap, "capped": fit,
                    "auto_f1_iou50": auto_fit["f1_iou50"], "auto_K": auto_fit["K"],
                    "best_f1_iou50": record.get("best_grid", {}).get("f1_iou50")})
        print(json.dumps(out[-1]), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an auto_params_benchmark.py JSON (auto's values; an --auto-only run's "
                        "auto fits are made here)")
    parser.add_argument("--held-out", action="store_true", help="the run was --held-out")
    parser.add_argument("--dense", action="store_true", help="the run was --dense")
    parser.add_argument("--small-soma", action="store_true", help="the run was --small-soma")
    parser.add_argument("--seeds", type=int, nargs="+", help="the run's --seeds")
    parser.add_argument("--cap", type=float, default=7.0, help="min_pnr's cap (default 7, the grid's centre)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    movies = (apb.HELD_OUT if args.held_out else apb.DENSE if args.dense else apb.SMALL_SOMA if args.small_soma
              else apb.MOVIES)
    movies = apb.reseeded(movies, args.seeds) if args.seeds else movies
    apb.save_runs(args.out, capped_fits(args.run, movies, args.cap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
