"""The radius-scale consistency rule (issue #18, h18radius): auto's radius and values with the rule against without it
(``MAX_RADIUS_OVER_SCALE`` = ∞, main's estimator) on the training movies or, with ``--held-out``, seeds 11–14 and
31–38; where gSig differs (``--fit``) one fit at each, auto's cuts, scored by F1@0.5 (the ``downsampled`` sample,
as gsig_split.py).

    PYTHONPATH=. .venv/bin/python benchmarks/radius_scale_check.py [--held-out] --fit --out results/x.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (RESULTS, TSUB, downsampled, fit_and_score, fit_params,  # noqa: E402
                                   median_true_radius, save_runs, simulate)
from gsig_split import movie_parser, movie_set  # noqa: E402
from stage_probes import overridden  # noqa: E402


def estimate(sample, limit: float):
    from cnmflow.auto_params import estimate_from_movie, radius

    with overridden(radius, "MAX_RADIUS_OVER_SCALE", limit):
        return estimate_from_movie(sample, tsub=TSUB)


def main(argv: list[str] | None = None) -> int:
    from cnmflow.auto_params import gsiz_for, radius

    parser = movie_parser(__doc__.splitlines()[0], RESULTS / "radius_scale_check.json")
    parser.add_argument("--fit", action="store_true")
    args = parser.parse_args(argv)
    movies = movie_set(args.held_out, args.only)
    records = []
    for movie in movies:
        sim = simulate(movie)
        sample = downsampled(sim.movie)
        true_r = median_true_radius(sim.truth)
        rec = {"movie": movie.name, "true_r": round(true_r, 2)}
        ests = {"main": estimate(sample, math.inf), "rule": estimate(sample, radius.MAX_RADIUS_OVER_SCALE)}
        for name, est in ests.items():
            rec[name] = {"radius": round(est.radius.radius, 2), "error": round(est.radius.radius / true_r - 1, 3),
                         "factor": est.gsig_choice.factor, "values": [round(est.gSig, 2), est.min_corr, est.min_pnr]}
        if args.fit and ests["main"].gSig != ests["rule"].gSig:
            for name, est in ests.items():
                rec[name]["fit"] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, est.gSig, gsiz_for(est.gSig),
                                                                                  est.min_corr, est.min_pnr))
        print(json.dumps(rec), flush=True)
        records.append(rec)
        save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
