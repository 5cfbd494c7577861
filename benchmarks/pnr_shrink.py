"""min_pnr pulled toward a centre: F1@0.5 at auto's values with min_pnr = min(c + α·(null − c), ceiling) for each α,
beside auto's own (issue #18, h19gap).

h19gap's decomposition of the seven fresh held-out gaps found auto's min_pnr on the wrong side of the best cut at
auto's gSig on five: where the null's cut is high (dense CA1, 6.9–7.7) a lower cut did better, where it is low
(3.8–5.4) a higher one did. A cut shrunk toward c = 6 (the middle of the hand-tuned CA1 7 and cortex 5) by α is the
rule tried; α = 1 is auto's own (with the ceiling), α = 0 a fixed 6. α is read on the training movies only.
Each movie is simulated once, estimated as a run reads it (TIFF, tsub 2; ``pnr_ceiling.null_values``) and fitted at
auto's values and at each α's min_pnr (gSig, gSiz and min_corr auto's).

    PYTHONPATH=. .venv/bin/python benchmarks/pnr_shrink.py --set training --alphas 0.5 0 --out results/shrink_train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import fit_and_score, fit_params, save_runs, simulate  # noqa: E402
from auto_values_check import EXTRA_SETS, movies  # noqa: E402
from pnr_ceiling import null_values  # noqa: E402

CENTRE, CEILING = 6.0, 7.0


def shrunk(null: float, alpha: float) -> float:
    """The null's cut pulled toward CENTRE by alpha, then held at or below CEILING."""
    return round(min(CENTRE + alpha * (null - CENTRE), CEILING), 2)


def chosen(name: str) -> list:
    """``training``: the 52 training movies (pnr_ceiling's 32 + CA1 / cortex SNR 1–4 s81–90); ``fresh51``: the
    held-out configurations at 51–70; or an auto_values_check.py extra set."""
    every = movies()
    if name == "training":
        return every[:52]
    if name == "fresh51":
        return every[55:]
    return EXTRA_SETS[name]()


def movie_record(movie, alphas: list[float]) -> dict:
    sim = simulate(movie)
    auto = null_values(sim.movie)
    record = {"movie": movie.name, "auto": auto, "fits": {}}
    values = {"main": auto["min_pnr"]}
    if not auto["relaxed"]:
        values.update({f"a{a:g}": shrunk(auto["null_min_pnr"], a) for a in alphas})
    done: dict[float, dict] = {}
    for label, pnr in values.items():
        if pnr not in done:
            done[pnr] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, auto["gSig"], auto["gSiz"],
                                                                        auto["min_corr"], pnr))
        record["fits"][label] = {"min_pnr": pnr, **done[pnr]}
    print(json.dumps({"movie": movie.name, "null": auto["null_min_pnr"],
                      **{k: (v["min_pnr"], v["f1_iou50"]) for k, v in record["fits"].items()}}), flush=True)
    return record


def set_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--set`` (:func:`chosen`), ``--skip`` and ``--out``: a per-movie trial's command line (h21kstep's too)."""
    parser.add_argument("--set", default="training", help="training, fresh51, or an auto_values_check.py set")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first this many movies")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def run_set(args: argparse.Namespace, record: Callable[[object], dict]) -> list[dict]:
    """``record`` of each movie of ``args.set`` (after ``args.skip``), the runs saved to ``args.out`` after each."""
    records = []
    for movie in chosen(args.set)[args.skip:]:
        records.append(record(movie))
        save_runs(args.out, records)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = set_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.0])
    args = parser.parse_args(argv)
    run_set(args, lambda movie: movie_record(movie, args.alphas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
