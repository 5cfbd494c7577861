"""gSig's factor k where the bootstrap's evidence is split (issue #18, h18split): the argmax of the margins against
k = 1 when the argmax wins under ``SPLIT_SHARE`` of the resamples, on the training movies (h18fb's 30, h18fresh's
41–44) or, with ``--held-out``, on seeds 11–14 and 31–38.

Per movie: the visible blobs, each factor's share of bootstrap wins, the factor each rule takes and, where the two
differ (``--fit``), one fit at each with auto's cuts read at that gSig (the ``downsampled`` sample, as gsig_fallback.py),
scored by F1@0.5. Where they agree nothing is fitted: the rule does not change that movie.

    PYTHONPATH=. .venv/bin/python benchmarks/gsig_split.py --fit --out benchmarks/results/gsig_split_train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (HELD_OUT, MOVIES, RESULTS, TSUB, Movie, downsampled,  # noqa: E402
                                   fit_and_score, fit_params, reseeded, save_runs, simulate)
from gsig_fallback import SETS  # noqa: E402
from stage_probes import overridden  # noqa: E402

TRAINING = tuple(m for s in sorted(SETS) for m in SETS[s]) + reseeded(MOVIES, [41, 42, 43, 44])
HELD = HELD_OUT + reseeded(HELD_OUT, [31, 32, 33, 34, 35, 36, 37, 38])


def movie_parser(description: str, out: Path) -> argparse.ArgumentParser:
    """``--held-out``, ``--only`` and ``--out``: the options of every script that runs over these movie sets."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--held-out", action="store_true", help="seeds 11–14 and 31–38 instead of the training set")
    parser.add_argument("--only", nargs="+", help="movie names to run")
    parser.add_argument("--out", type=Path, default=out)
    return parser


def movie_set(held_out: bool, only: list[str] | None = None) -> list[Movie]:
    """The training movies, or the held-out ones, narrowed to the names in ``only``."""
    return [m for m in (HELD if held_out else TRAINING) if not only or m.name in only]


def estimates(sample, share: float):
    """auto's estimate with ``SPLIT_SHARE`` set to ``share`` (0: the argmax alone, main's rule)."""
    from cnmflow.auto_params import estimate_from_movie, gsig_choice

    with overridden(gsig_choice, "SPLIT_SHARE", share):
        return estimate_from_movie(sample, tsub=TSUB)


def movie_record(movie: Movie, fit: bool, share: float | None = None) -> dict:
    """Wins, the factor of each rule, their values and (with ``fit``, where they differ) F1@0.5 at each; ``share``
    replaces ``SPLIT_SHARE`` (the threshold's sensitivity)."""
    from cnmflow.auto_params import gsiz_for
    from cnmflow.auto_params.gsig_choice import SPLIT_SHARE

    share = SPLIT_SHARE if share is None else share
    sim = simulate(movie)
    sample = downsampled(sim.movie)
    old, new = estimates(sample, 0.0), estimates(sample, share)
    record = {"movie": movie.name, "n_visible": old.radius.n_visible, "wins": [round(w, 3) for w in old.gsig_choice.wins],
              "share": share, "reason": new.reasons()["gSig"], "rules": {}}
    for name, est in (("argmax", old), ("split", new)):
        row = {"factor": est.gsig_choice.factor, "values": [est.gSig, est.min_corr, est.min_pnr]}
        if fit and old.gsig_choice.factor != new.gsig_choice.factor:
            row["fit"] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, est.gSig, gsiz_for(est.gSig),
                                                                        est.min_corr, est.min_pnr))
        record["rules"][name] = row
    print(json.dumps(record), flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = movie_parser(__doc__.splitlines()[0], RESULTS / "gsig_split.json")
    parser.add_argument("--fit", action="store_true", help="fit both rules' values where their factors differ")
    parser.add_argument("--share", type=float, help="the split threshold tried (default SPLIT_SHARE)")
    args = parser.parse_args(argv)
    movies = movie_set(args.held_out, args.only)
    records = []
    for movie in movies:
        records.append(movie_record(movie, fit=args.fit, share=args.share))
        save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
