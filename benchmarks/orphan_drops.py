"""Orphan drops at ``deduplicate``: components one patch found, dropped because another patch's centre is nearer,
with no duplicate from another patch kept in their place (issue #16).

``patches.deduplicate`` keeps a component when its own patch centre is the nearest to its centre of mass, and
revives a dropped one only when it has a *dropped* duplicate from another patch (cosine > ``overlap``) and no kept
one. A component found by one patch only whose centre lies nearer another patch's centre is dropped with nothing
in its place. This script fits a realistic movie as ``realistic_benchmark.py --fit-only`` does (same scoring, same
json), wraps ``deduplicate`` in this process (the patches may run in workers: ``deduplicate`` runs in the parent)
and lists every orphan drop: its best true match (IoU of 90%-energy masks) and trace r with that neuron, whether
the neuron ends matched in the final fit, its distance to its patch's inner border and to the field's edge, its
energy share within 1 px of the inner border, and its largest footprint cosine with a kept component of another
patch. ``--keep-orphans`` fits with the trial rule (orphans with at most ``--max-edge-share`` of their weight within
1 px of the inner border kept: ``patches.deduplicate`` since h20orphan, here without the lead's merge-pair guard);
without it, with the rule before h20orphan.

    PYTHONPATH=. .venv/bin/python benchmarks/orphan_drops.py benchmarks/results/realistic_ca1_256x256x1000_seed1.npy \
        --config ca1 --set min_pnr=6 focus_thr=0.72 --out /tmp/o.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnmflow.engine import fitting, patches  # noqa: E402
from cnmflow.score_inputs import pearson  # noqa: E402
from cnmflow.shape_scoring import energy_masks, iou_matrix, shape_score  # noqa: E402
from assignments import parse_assignments  # noqa: E402
from realistic_benchmark import CONFIGS, fit_and_score  # noqa: E402
from stage_probes import Hook, overridden, probes  # noqa: E402

RECORD: dict = {}


def inner_border_distance(center, box, dims: tuple[int, int]) -> float:
    """Distance (px) from a point to the nearest side of ``box`` that is not the field's edge."""
    sides = []
    if box.row0 > 0:
        sides.append(center[0] - box.row0)
    if box.row1 < dims[0]:
        sides.append(box.row1 - 1 - center[0])
    if box.col0 > 0:
        sides.append(center[1] - box.col0)
    if box.col1 < dims[1]:
        sides.append(box.col1 - 1 - center[1])
    return float(min(sides)) if sides else float("inf")


def _record(keep, A, owners, boxes, dims, **kw) -> None:
    RECORD.update(A=sp.csc_matrix(A), owners=np.asarray(owners), boxes=list(boxes), dims=tuple(dims),
                  keep=patches.deduplicate(A, np.asarray(owners), list(boxes), tuple(dims),
                                           orphan_edge_share=-1.0),  # the rule before h20orphan
                  keep_fit=np.asarray(keep).copy(),
                  nearest=patches.keep_nearest_patch(patches.centers_of_mass(A, dims), owners, boxes))


def _truth_low(calcium: np.ndarray, n_low: int) -> np.ndarray:
    """The true calcium at the patch traces' rate (block means of ``tsub`` frames)."""
    tsub = int(np.ceil(calcium.shape[1] / n_low))
    pad = n_low * tsub - calcium.shape[1]
    padded = np.concatenate([calcium, np.repeat(calcium[:, -1:], pad, axis=1)], axis=1)
    return padded.reshape(calcium.shape[0], n_low, tsub).mean(axis=2)


def orphans(C_patch: np.ndarray, truth, final) -> list[dict]:
    """Every orphan drop with its match, trace r, the final fit's match for that neuron and where it lies."""
    A, owners, boxes, dims, keep = (RECORD[k] for k in ("A", "owners", "boxes", "dims", "keep"))
    cos = patches.footprint_similarity(A)
    other = owners[:, None] != owners[None, :]
    true_masks = energy_masks(truth["footprints"])
    iou, _ = iou_matrix(energy_masks(A, dims=dims), true_masks)
    final_iou, _ = iou_matrix(energy_masks(final["footprints"]), true_masks)
    matched = dict(final["score"].matches)
    centers = patches.centers_of_mass(A, dims)
    truth_low = _truth_low(truth["calcium"], C_patch.shape[1]) if C_patch is not None else None
    edge_shares = patches.inner_border_shares(A, owners, boxes, dims)
    rows = []
    for k in np.flatnonzero(~keep):
        kept_other = np.flatnonzero(keep & other[k])
        if (cos[k, kept_other] > 0.5).any():
            continue
        neuron = int(np.argmax(iou[k]))
        best_other = kept_other[np.argmax(cos[k, kept_other])] if kept_other.size else None
        j = matched.get(neuron)
        rows.append(dict(
            component=int(k), patch=int(owners[k]), center=[round(float(x), 1) for x in centers[k]],
            neuron=neuron, iou=round(float(iou[k, neuron]), 3),
            r=round(pearson(truth_low[neuron], C_patch[k]), 3) if truth_low is not None else None,
            peak_snr=round(float(truth["peak_snr"][neuron]), 2),
            final_match_iou=round(float(final_iou[j, neuron]), 3) if j is not None else None,
            final_best_iou=round(float(final_iou[:, neuron].max()), 3) if final_iou.shape[0] else 0.0,
            inner_border_px=round(inner_border_distance(centers[k], boxes[owners[k]], dims), 1),
            field_edge_px=round(float(min(centers[k][0], centers[k][1], dims[0] - 1 - centers[k][0],
                                          dims[1] - 1 - centers[k][1])), 1),
            inner_edge_share=round(float(edge_shares[k]), 3),
            max_cos_kept_other=round(float(cos[k, kept_other].max()), 3) if kept_other.size else 0.0,
            best_other_iou_with_neuron=round(float(iou[best_other, neuron]), 3) if best_other is not None else None,
            n_kept_other_cos_gt_0_1=int((cos[k, kept_other] > 0.1).sum())))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path)
    parser.add_argument("--config", choices=list(CONFIGS), required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--keep-orphans", action="store_true", help="fit with the trial variant of deduplicate")
    parser.add_argument("--max-edge-share", type=float, default=1.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    params = {**CONFIGS[args.config]["params"], **parse_assignments(args.set)}

    def save_c(results, dims, **kw):
        traces = [result.C for result in results if result.A.shape[1]]
        RECORD["C_all"] = np.vstack(traces) if traces else None

    share = args.max_edge_share if args.keep_orphans else -1.0   # -1: no orphan kept, main's rule before h20orphan
    # h20orphan's trial: the border guard alone (the merge-pair guard the lead added after it is not passed here)
    def variant(A, owners, boxes, dims, **kw):
        return patches.deduplicate(A, owners, boxes, dims, orphan_edge_share=share)
    with overridden(fitting, "deduplicate", variant):
        with probes(Hook(fitting, "deduplicate", after=_record), Hook(fitting, "_combine", before=save_c)):
            fit_and_score(args.movie, params, args.out)
    truth = np.load(args.movie.with_suffix(".truth.npz"))
    est = np.load(args.out.with_suffix(".estimates.npz"))
    accepted = np.setdiff1d(np.arange(len(est["C"])), est["idx_components_bad"])
    final = dict(footprints=est["footprints"][accepted])
    final["score"] = shape_score(truth["footprints"], final["footprints"])
    record = json.loads(args.out.read_text())
    rows = orphans(RECORD.get("C_all"), truth, final)
    keep, nearest = RECORD["keep"], RECORD["nearest"]
    record["orphan_drops"] = dict(n_components=int(keep.size), n_dropped=int((~keep).sum()),
                                  n_revived=int((keep & ~nearest).sum()), orphans=rows,
                                  n_kept_by_fit_not_main=int((RECORD["keep_fit"] & ~keep).sum()))
    args.out.write_text(json.dumps(record, indent=1))
    s = record
    print(f"{args.movie.name} {args.set} keep_orphans={args.keep_orphans}: K {s['K']}({s['n_rejected']}) "
          f"F1@.5 {s['f1_iou50']} F1@.3 {s['f1_iou30']} IoU {s['median_iou']} r {s['median_trace_corr']} "
          f"twice {s['n_multiply_covered']} cpu {s['cpu_s']}")
    print(f"  components {keep.size}, dropped {(~keep).sum()}, revived {(keep & ~nearest).sum()}, orphans {len(rows)}, "
          f"kept by this fit beyond main's rule {record['orphan_drops']['n_kept_by_fit_not_main']}")
    for row in rows:
        print("   ", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
