"""Whether a missed neuron that a neighbour's component covers (issue #16's "c3" class) is covered by the
neighbour's true extent or by a footprint spread over it (h21c3).

A diagnostic, not part of the product. For every true neuron not matched at IoU > 0.3 by the accepted components of
a saved fit (``realistic_benchmark.py``'s ``.fit.estimates.npz``) that an accepted component matched to another
neuron (the *neighbour*) still overlaps at IoU > 0.3, it prints: the IoU of the neighbour's *true* 90%-energy mask
with the missed neuron's (``true_iou``: the cover the optics alone make), the component's IoU with the missed
neuron (``cover_iou``), the best IoU of a component the fit rejected with it (``rejected_iou``: above 0.3
the miss is the focus test's, issue #16's class "f", not "c3"), the component's weight at the missed neuron's
peak over its own peak against the true neighbour's there (``at_peak`` / ``true_at_peak``), the two masks'
areas, and the component's trace r with the missed neuron's calcium. A component spread over the missed cell
reads ``cover_iou`` well above ``true_iou`` and ``at_peak`` above ``true_at_peak``; a neighbour fitted as the
optics made it reads them equal.

    PYTHONPATH=. .venv/bin/python benchmarks/neighbour_cover.py results/<movie>.fit.estimates.npz [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cnmflow.score_inputs import pearson
from cnmflow.shape_scoring import energy_masks, iou_matrix, shape_score
from covered_twice_sources import MOVIE_NAME

#: a component covers a neuron above this IoU (the F1 at IoU > 0.3 match)
MIN_IOU = 0.3


def covers(estimates: Path) -> list[dict]:
    """A row for every unmatched neuron an accepted component matched to another neuron covers at IoU > 0.3."""
    truth = np.load(estimates.parent / f"{MOVIE_NAME.search(estimates.name).group(0)}.truth.npz")
    fit = np.load(estimates)
    accepted = np.setdiff1d(np.arange(len(fit["C"])), fit["idx_components_bad"])
    rejected = np.asarray(fit["idx_components_bad"], int)
    footprints, traces = fit["footprints"][accepted], fit["C"][accepted]
    true_fp = truth["footprints"]
    score = shape_score(true_fp, footprints)
    owner = {int(j): int(i) for (i, j), v in zip(score.matches, score.ious) if v > MIN_IOU}
    found = set(owner.values())
    true_masks = energy_masks(true_fp).tocsc()
    iou = iou_matrix(true_masks, energy_masks(footprints).tocsc())[0]
    iou_true = iou_matrix(true_masks, true_masks)[0]
    iou_rejected = iou_matrix(true_masks, energy_masks(fit["footprints"][rejected]).tocsc())[0] if rejected.size \
        else np.zeros((len(true_fp), 1))
    areas, true_areas = np.asarray(energy_masks(footprints).sum(axis=0)).ravel(), \
        np.asarray(true_masks.sum(axis=0)).ravel()
    rows = []
    for n in sorted(set(range(len(true_fp))) - found):
        j = int(np.argmax(iou[n])) if iou.shape[1] else -1
        if j < 0 or iou[n, j] <= MIN_IOU or j not in owner:
            continue
        nb, peak = owner[j], np.unravel_index(np.argmax(true_fp[n]), true_fp.shape[1:])
        rows.append(dict(neuron=n, snr=round(float(truth["peak_snr"][n]), 2), neighbour=nb,
                         neighbour_snr=round(float(truth["peak_snr"][nb]), 2), component=int(accepted[j]),
                         distance=round(float(np.hypot(*np.subtract(
                             np.unravel_index(np.argmax(true_fp[nb]), true_fp.shape[1:]), peak))), 1),
                         true_iou=round(float(iou_true[n, nb]), 2), cover_iou=round(float(iou[n, j]), 2),
                         rejected_iou=round(float(iou_rejected[n].max(initial=0.0)), 2),
                         at_peak=round(float(footprints[j][peak] / footprints[j].max()), 2),
                         true_at_peak=round(float(true_fp[nb][peak] / true_fp[nb].max()), 2),
                         area=int(areas[j]), true_area=int(true_areas[nb]),
                         r_with_missed=round(pearson(truth["calcium"][n], traces[j]), 2)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimates", nargs="+", type=Path, help="<movie>.fit.estimates.npz beside <movie>.truth.npz")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = {}
    for path in args.estimates:
        out[path.name] = rows = covers(path)
        for row in rows:
            print(path.name, row)
        c3 = [r for r in rows if r["rejected_iou"] <= MIN_IOU]
        spread = sum(r["cover_iou"] > r["true_iou"] + 0.05 for r in c3)
        print(f"{path.name}: {len(rows)} covered misses, {len(c3)} with no rejected component on them (c3), "
              f"{spread} of those with the cover over 0.05 above the true neighbour's")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
