"""True neurons whose component the focus test accepts in one fit and rejects in the other (issue #16, h23focus).

A diagnostic, not part of the product. Two saved fits of one movie (``*.fit.estimates.npz``, e.g. main's and a
branch's): for each true neuron, its component in each fit is the one (accepted or rejected) whose 90% mask has the
highest IoU with the neuron's, when over 0.3. A *flip* is a neuron whose component is accepted in one fit and rejected
in the other. Per flip: the neuron's peak SNR, each fit's component, IoU, focus ratio and status, and whether the
neuron is matched (IoU > 0.3, the benchmark's Hungarian matching over the accepted components) in each fit — whether
the flip moved F1@0.3 (the first line of each pair counts the flips that lost or gained the match).

    PYTHONPATH=. .venv/bin/python benchmarks/focus_flips.py TRUTH.npz MAIN.fit.estimates.npz BRANCH.fit.estimates.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cnmflow.shape_scoring import energy_masks, iou_matrix, shape_score

#: IoU over which a component is a neuron's (the benchmark's F1@0.3 threshold)
MATCH_IOU = 0.3


def components(truth: dict, estimates: dict) -> dict:
    """Per true neuron: its best component at IoU > MATCH_IOU (-1: none), that IoU, and whether the benchmark's
    matching over the accepted components matches the neuron at IoU > MATCH_IOU."""
    truth_masks = energy_masks(truth["footprints"])
    iou, _ = iou_matrix(truth_masks, energy_masks(estimates["footprints"]))
    best = np.argmax(iou, axis=1)
    best_iou = iou[np.arange(len(best)), best]
    accepted = np.setdiff1d(np.arange(len(estimates["footprints"])), estimates["idx_components_bad"])
    score = shape_score(truth["footprints"], estimates["footprints"][accepted])
    matched = np.zeros(len(best), bool)
    matched[[i for (i, _), value in zip(score.matches, score.ious) if value > MATCH_IOU]] = True
    rejected = np.zeros(len(estimates["footprints"]), bool)
    rejected[estimates["idx_components_bad"]] = True
    return dict(best=np.where(best_iou > MATCH_IOU, best, -1), iou=best_iou, matched=matched, rejected=rejected,
                ratio=estimates["focus_ratio"])


def flips(truth: dict, a: dict, b: dict) -> list[dict]:
    """The neurons whose component is accepted in one fit and rejected in the other (both over MATCH_IOU)."""
    ca, cb = components(truth, a), components(truth, b)
    out = []
    for i in np.flatnonzero((ca["best"] >= 0) & (cb["best"] >= 0)):
        ja, jb = int(ca["best"][i]), int(cb["best"][i])
        if ca["rejected"][ja] == cb["rejected"][jb]:
            continue
        out.append(dict(neuron=int(i), snr=float(truth["peak_snr"][i]),
                        way="accepted -> rejected" if cb["rejected"][jb] else "rejected -> accepted",
                        a=(ja, float(ca["iou"][i]), float(ca["ratio"][ja]), bool(ca["matched"][i])),
                        b=(jb, float(cb["iou"][i]), float(cb["ratio"][jb]), bool(cb["matched"][i]))))
    return out


def line(flip: dict) -> str:
    def side(values: tuple) -> str:
        k, iou, ratio, matched = values
        return f"c{k} IoU {iou:.2f} ratio {ratio:.2f} {'matched' if matched else 'UNMATCHED'}"
    return f"  t{flip['neuron']} SNR {flip['snr']:.2f} {flip['way']}: {side(flip['a'])} | {side(flip['b'])}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path)
    parser.add_argument("a", type=Path, help="the first fit's .fit.estimates.npz (e.g. main's)")
    parser.add_argument("b", type=Path, help="the second fit's")
    args = parser.parse_args(argv)
    found = flips(dict(np.load(args.truth)), dict(np.load(args.a)), dict(np.load(args.b)))
    ways = [f["way"] for f in found]
    lost = sum(f["a"][3] and not f["b"][3] for f in found if f["way"] == "accepted -> rejected")
    gained = sum(f["b"][3] and not f["a"][3] for f in found if f["way"] == "rejected -> accepted")
    print(f"{args.b.name}: {ways.count('accepted -> rejected')} accepted -> rejected ({lost} of them lose the "
          f"neuron's match), {ways.count('rejected -> accepted')} rejected -> accepted ({gained} gain it)")
    for flip in found:
        print(line(flip))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
