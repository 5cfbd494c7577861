"""Two fits of the same realistic movies compared neuron by neuron (issue #16): what a change to the engine does to
the footprints' shapes and to what is found, told apart from a fit's own noise.

A single 256² fit is chaotic at about ±.01 on every summary figure: refitted with 1% of the noise sd added to
the movie, F1@0.5 moves by up to .016, precision by .014, the median IoU by .011, K by 1–5
(findings/footprint_fidelity.md, session 24). Medians and F1 sums over two differently matched sets carry that
noise; pairing does not:

- *shape*: over the neurons both fits match (IoU > 0.3), each neuron's IoU change — its mean, and the shares of
  neurons whose IoU rises and falls (the null: +.0001, .36 up / .36 down over 816 neurons);
- *detection*: the neurons matched in only one of the two fits (at IoU > 0.3 and at ≥ 0.5), and the accepted
  components matched to no neuron (false positives), summed over the fits (the null over six fits: 5 / 7, 6 / 7, FP
  36 → 35).

Fits are ``realistic_benchmark.py --fit-only`` outputs ``<tag><name>.fit.estimates.npz``, where a name may carry a
prefix before the movie's own name (``pick_realistic_ca1_…``); the truth ``realistic_….truth.npz`` is looked up in
the ``--truth`` folders.

    PYTHONPATH=. .venv/bin/python benchmarks/paired_fits.py base/sweep main_ cand/sweep int_ --truth movies/ \
        --fits pick_realistic_ca1_256x256x1000_seed49 recipe_realistic_cortex_l23_256x256x1200_seed49
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cnmflow.shape_scoring import shape_score


@dataclass
class Paired:
    """One movie's (or a pooled) comparison of fit A with fit B: ``iou_changes`` B − A per neuron matched in both,
    the neurons matched only in A or only in B (IoU > 0.3, ≥ 0.5) and each fit's unmatched accepted components."""

    iou_changes: list[float]
    only_a_30: int
    only_b_30: int
    only_a_50: int
    only_b_50: int
    false_a: int
    false_b: int

    def summary(self) -> dict:
        d = np.asarray(self.iou_changes)
        shape = dict(n=int(d.size), mean=round(float(d.mean()), 4) if d.size else 0.0,
                     up=round(float(np.mean(d > 0)), 3) if d.size else 0.0,
                     down=round(float(np.mean(d < 0)), 3) if d.size else 0.0)
        return dict(shape=shape, **{k: v for k, v in asdict(self).items() if k != "iou_changes"})


def matches(truth: dict, estimates: dict) -> tuple[dict[int, float], int]:
    """Each matched neuron's IoU (IoU > 0.3, as realistic_benchmark scores: accepted components only) and how many
    accepted components match none."""
    accepted = np.setdiff1d(np.arange(len(estimates["C"])), estimates["idx_components_bad"])
    score = shape_score(truth["footprints"], estimates["footprints"][accepted])
    matched = {int(i): float(iou) for (i, _), iou in zip(score.matches, score.ious)}
    return matched, int(accepted.size - len(matched))


def compare(truth: dict, a: dict, b: dict) -> Paired:
    """Fit ``b`` against fit ``a`` of the same movie (estimates as saved)."""
    (ma, fa), (mb, fb) = matches(truth, a), matches(truth, b)
    both = sorted(set(ma) & set(mb))
    a50, b50 = {i for i, v in ma.items() if v >= 0.5}, {i for i, v in mb.items() if v >= 0.5}
    return Paired([mb[i] - ma[i] for i in both], len(set(ma) - set(mb)), len(set(mb) - set(ma)),
                  len(a50 - b50), len(b50 - a50), fa, fb)


def pooled(rows: list[Paired]) -> Paired:
    return Paired([d for r in rows for d in r.iou_changes],
                  *(sum(getattr(r, name) for r in rows)
                    for name in ("only_a_30", "only_b_30", "only_a_50", "only_b_50", "false_a", "false_b")))


def find_truth(fit_name: str, folders: list[Path]) -> Path:
    """``realistic_….truth.npz`` of the movie a fit's name ends with, from the first folder holding it."""
    if "realistic_" not in fit_name:
        raise SystemExit(f"{fit_name}: not a realistic movie's fit (its name holds no 'realistic_')")
    movie = fit_name[fit_name.index("realistic_"):]
    for folder in folders:
        if (folder / f"{movie}.truth.npz").exists():
            return folder / f"{movie}.truth.npz"
    raise SystemExit(f"{movie}.truth.npz is in none of {', '.join(map(str, folders))}: pass its folder with --truth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir_a", type=Path)
    parser.add_argument("tag_a")
    parser.add_argument("dir_b", type=Path)
    parser.add_argument("tag_b")
    parser.add_argument("--fits", nargs="+", required=True,
                        help="fit names after the tag: [prefix_]realistic_<config>_..._seed<N>")
    parser.add_argument("--truth", nargs="+", type=Path, required=True, help="folders holding <movie>.truth.npz")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for name in args.fits:
        truth = dict(np.load(find_truth(name, args.truth)))
        fits = [dict(np.load(folder / f"{tag}{name}.fit.estimates.npz"))
                for folder, tag in ((args.dir_a, args.tag_a), (args.dir_b, args.tag_b))]
        rows.append(compare(truth, *fits))
        print(name, json.dumps(rows[-1].summary()), flush=True)
    total = pooled(rows).summary()
    print("pooled", json.dumps(total))
    if args.out:
        args.out.write_text(json.dumps(dict(fits=args.fits, rows=[r.summary() for r in rows], pooled=total),
                                       indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
