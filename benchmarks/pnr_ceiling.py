"""A ceiling on auto's min_pnr chosen on training movies (issue #18, h17cap): F1@0.5 at auto's values with
min_pnr = min(the null's cut, c) for each candidate ceiling c, beside auto's own.

The 32 training movies h18fresh named (the benchmark's four at seeds 1–2, ``--dense`` s17–20, ``--small-soma``
s21–24, the four training configurations at seeds 21–24 and 41–44). Each movie is simulated once, estimated as a run
reads it (TIFF, tsub 2) and fitted at auto's values and at every ceiling below its null's cut (a ceiling above the cut
changes nothing, so nothing is fitted there). The null's cut is the estimate's own PNR cut, read from its evidence
(``est.pnr``), so the script gives the same columns whether or not the estimator already applies a ceiling.
``--held-out``: the held-out movies earlier sessions read (11–14, 31–38), a second look at the chosen ceiling.

    PYTHONPATH=. .venv/bin/python benchmarks/pnr_ceiling.py --caps 6 7 8 --out benchmarks/results/pnr_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, HELD_OUT, MOVIES, SMALL_SOMA, TSUB, Movie, fit_and_score,  # noqa: E402
                                   fit_params, reseeded, simulate)

TRAINING = (MOVIES + DENSE + SMALL_SOMA + tuple(m for s in (21, 22, 23, 24) for m in reseeded(MOVIES, [s] * 4))
            + reseeded(MOVIES, [41, 42, 43, 44]))
#: The held-out movies earlier sessions read (seeds 11–14, h18fresh's 31–38): ``--held-out``, a second look, not fresh.
READ_HELD_OUT = HELD_OUT + reseeded(HELD_OUT, [31, 32, 33, 34, 35, 36, 37, 38])


def null_values(frames: np.ndarray) -> dict:
    """auto's values from a TIFF as a run reads it, with the null's own min_pnr (before any ceiling)."""
    import tifffile

    from cnmflow.auto_params import estimate_parameters

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "movie.tif"
        tifffile.imwrite(path, frames)
        est = estimate_parameters([path], tsub=TSUB, ssub=1)
    null = est.min_pnr if est.relaxed else float(max(round(est.pnr.cut / est.pnr_reduction, 2), 0.0))
    return {"gSig": est.gSig, "gSiz": est.gSiz, "min_corr": est.min_corr, "min_pnr": est.min_pnr,
            "null_min_pnr": null, "relaxed": est.relaxed}


def movie_record(movie: Movie, caps: list[float]) -> dict:
    """One movie: auto's values, auto's fit (where some ceiling binds) and one fit per binding ceiling."""
    sim = simulate(movie)
    auto = null_values(sim.movie)
    record = {"movie": movie.name, "n_true": int(len(sim.truth.footprints)), "auto": auto, "capped": {}}
    binding = [c for c in caps if auto["null_min_pnr"] > c]
    if not binding:
        return record

    def fitted(min_pnr: float) -> dict:
        return fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, auto["gSig"], auto["gSiz"], auto["min_corr"],
                                                              min_pnr))

    record["null_fit"] = fitted(auto["null_min_pnr"])
    record["capped"] = {f"{c:g}": fitted(c) for c in binding}
    return record


def summary(records: list[dict], caps: list[float]) -> dict:
    """Per ceiling: movies moved, mean Δ F1@0.5 over all movies and over those moved, gains, losses > 0.02."""
    out = {}
    for c in caps:
        deltas = [r["capped"][f"{c:g}"]["f1_iou50"] - r["null_fit"]["f1_iou50"] for r in records
                  if f"{c:g}" in r["capped"]]
        out[f"{c:g}"] = {"moved": len(deltas), "mean_delta_all": round(sum(deltas) / len(records), 4),
                         "mean_delta_moved": round(float(np.mean(deltas)), 4) if deltas else 0.0,
                         "gains": sum(d > 0 for d in deltas), "losses": sum(d < 0 for d in deltas),
                         "losses_over_0.02": sum(d < -0.02 for d in deltas)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", type=float, nargs="+", default=[6.0, 7.0, 8.0])
    parser.add_argument("--only", nargs="+", help="movie names to run")
    parser.add_argument("--held-out", action="store_true", help="the held-out movies read before (11–14, 31–38)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    records = []
    for movie in READ_HELD_OUT if args.held_out else TRAINING:
        if args.only and movie.name not in args.only:
            continue
        records.append(movie_record(movie, args.caps))
        print(json.dumps(records[-1]), flush=True)
        args.out.write_text(json.dumps({"caps": args.caps, "runs": records}, indent=1))
    result = {"caps": args.caps, "runs": records, "summary": summary(records, args.caps)}
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
