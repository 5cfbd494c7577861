"""The radius-scale consistency rule (issue #18, h18radius): auto's radius and values with the rule against without it
(``MAX_RADIUS_OVER_SCALE`` = ∞, main's estimator) on the training movies or, with ``--held-out``, seeds 11–14 and
31–38; where gSig differs (``--fit``) one fit at each, auto's cuts, scored by F1@0.5 (the ``downsampled`` sample,
as gsig_split.py).

    PYTHONPATH=. .venv/bin/python benchmarks/radius_scale_check.py [--held-out] --fit --out results/x.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (RESULTS, TSUB, downsampled, fit_and_score, fit_params,  # noqa: E402
                                   simulate, true_half_max_radius)
from gsig_split import HELD, TRAINING  # noqa: E402


def estimate(sample, limit: float):
    from cnmflow.auto_params import estimate_from_movie, radius

    kept = radius.MAX_RADIUS_OVER_SCALE
    radius.MAX_RADIUS_OVER_SCALE = limit
    try:
        return estimate_from_movie(sample, tsub=TSUB)
    finally:
        radius.MAX_RADIUS_OVER_SCALE = kept


def main(argv: list[str] | None = None) -> int:
    from cnmflow.auto_params import gsiz_for, radius

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", action="store_true")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--out", type=Path, default=RESULTS / "radius_scale_check.json")
    args = parser.parse_args(argv)
    movies = [m for m in (HELD if args.held_out else TRAINING) if not args.only or m.name in args.only]
    records = []
    for movie in movies:
        sim = simulate(movie)
        sample = downsampled(sim.movie)
        true_r = float(np.median([true_half_max_radius(f) for f in sim.truth.footprints]))
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
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
