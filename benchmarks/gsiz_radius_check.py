"""auto's gSiz from the radius alone, round(2·c·r) + 1, against main's round(2·gSig) + 1 (gSig = k·r, k the chosen
factor): fit each movie at main's auto gSig / min_corr / min_pnr with every distinct gSiz the candidate c give, so
the gSiz is the only thing that moves (issue #18, h18gsizr). Reads a values file of ``auto_values_check.py`` (its
radius and values; the radius is stored to 0.01 px, so a 2·c·r within 0.02 of a half may round the other way — those
movies are flagged ``edge``). ``--part train|held`` picks the 75's first 52 or last 23 (default: all of the file).

    PYTHONPATH=. .venv/bin/python benchmarks/gsiz_radius_check.py --values results/values_main.json --part train \
        --factors 1 1.15 1.3 --out results/gsiz_train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import fit_and_score, fit_params, save_runs, simulate  # noqa: E402
from auto_values_check import EXTRA_SETS, movies  # noqa: E402


def radius_gsiz(radius: float, c: float) -> int:
    """gSiz = round(2·c·r) + 1: the seed box of gSig = c·r, whatever factor gSig took."""
    return int(round(2 * c * radius)) + 1


def main(argv: list[str] | None = None) -> int:
    from cnmflow.auto_params import gsiz_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=Path, required=True)
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.15, 1.3])
    parser.add_argument("--part", choices=["train", "held"])
    parser.add_argument("--only-moved", action="store_true", help="skip movies no factor moves")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = json.loads(args.values.read_text())["runs"]
    if args.part:
        runs = runs[:52] if args.part == "train" else runs[52:]
    pool = {m.name: m for m in movies() + [m for make in EXTRA_SETS.values() for m in make()]}
    done = json.loads(args.out.read_text())["runs"] if args.out.exists() else []
    seen = {r["movie"] for r in done}
    records = list(done)
    for run in runs:
        if run["movie"] in seen:
            continue
        gsig, corr, pnr = run["values"]
        main_gsiz = gsiz_for(gsig)
        wanted = {c: radius_gsiz(run["radius"], c) for c in args.factors}
        if args.only_moved and all(g == main_gsiz for g in wanted.values()):
            continue
        movie = pool[run["movie"]]
        sim = simulate(movie)
        fits = {}
        for gsiz in sorted({main_gsiz, *wanted.values()}):
            fits[str(gsiz)] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, gsig, gsiz, corr, pnr))
        edge = any(abs((2 * c * run["radius"]) % 1 - 0.5) < 0.02 for c in args.factors)
        records.append({"movie": run["movie"], "radius": run["radius"], "values": run["values"],
                        "k": round(gsig / run["radius"], 2), "main_gsiz": main_gsiz,
                        "gsiz": {str(c): g for c, g in wanted.items()}, "edge": edge, "fits": fits})
        print(json.dumps({"movie": run["movie"], "k": records[-1]["k"], "main": main_gsiz, "gsiz": wanted,
                          "f1_iou50": {g: f["f1_iou50"] for g, f in fits.items()}}), flush=True)
        save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
