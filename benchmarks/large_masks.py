"""Accepted components whose 90%-energy mask is far larger than their neuron's: what light the extra area holds
(issue #16, findings/footprint_fidelity.md, h22large).

A component is *large* when it is matched (IoU > 0.3, the benchmark's Hungarian matching on the accepted components)
and its mask is over ``LARGE`` times its neuron's, or unmatched and its mask is over ``LARGE`` times the median true
mask (then its neuron is the one holding most of its mask). Its *extra area* is its mask less the neuron's mask.
For each large component (and, with ``--all``, every matched one, for comparison) the script says what lies under
the extra area's weight, from the simulator's own sources (re-simulated at full length,
``covered_twice_sources.redrawn_truth``):

- pixel classes, the first that applies: under another in-focus neuron's 90% mask (*neighbour*), under the 90% mask
  of an out-of-focus cell whose calcium correlates with the component's trace at r ≥ ``CO_ACTIVE`` (*co-active
  out-of-focus*), under any out-of-focus cell's mask (*other out-of-focus*), a vessel's (dimmed by over 0.2 of its
  peak), *none*;
- the trace's variance by source class: least squares of the trace on the time courses of the neuron, the
  neurons and out-of-focus cells whose masks meet the component's or the neuron's, every vessel and neuropil mode;
- the trace's r with the neuron, its best neighbour, its best co-located out-of-focus cell, vessel (|r|), neuropil.

    PYTHONPATH=. .venv/bin/python benchmarks/large_masks.py results/runs/<fit>.fit.estimates.npz \
        results/realistic_ca1_256x256x1000_seed4.truth.npz [--all] [--out large.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cnmflow.pixel_order import images_to_columns
from cnmflow.score_inputs import pearson
from cnmflow.shape_scoring import energy_masks, shape_score
from covered_twice_sources import redrawn_truth
from fp_sources import VESSEL_LEVEL

#: Mask area over the neuron's (matched) or over the median true area (unmatched) that counts as large.
LARGE = 1.25
#: An out-of-focus cell is co-active with a component when its calcium correlates with the trace at least this much.
CO_ACTIVE = 0.3


class Field:
    """The truth's sources as columns (Fortran pixel order) and their 90% masks."""

    def __init__(self, truth: dict, sim) -> None:
        labels = list(sim.background_labels)
        pick = lambda prefix: [i for i, n in enumerate(labels) if n.startswith(prefix)]  # noqa: E731
        self.neurons = images_to_columns(truth["footprints"]).astype(float)
        self.neuron_masks = energy_masks(truth["footprints"]).toarray().astype(bool)
        cells = sim.background_spatial[pick("cell")]
        self.oof = np.asarray(images_to_columns(cells))
        self.oof_masks = energy_masks(cells).toarray().astype(bool)
        vessels = np.abs(np.asarray(images_to_columns(sim.background_spatial[pick("vessel")])))
        self.vessels = vessels
        self.vessel_masks = vessels > VESSEL_LEVEL * vessels.max(axis=0, keepdims=True)
        self.neuropil = np.asarray(images_to_columns(sim.background_spatial[pick("neuropil")]))
        self.calcium = truth["calcium"]
        self.oof_calcium = sim.background_temporal[pick("cell")]
        self.vessel_t = sim.background_temporal[pick("vessel")]
        self.neuropil_t = sim.background_temporal[pick("neuropil")]
        self.defocus = sim.out_of_focus_defocus_um


def pixel_shares(weights: np.ndarray, extra: np.ndarray, i: int, field: Field, co_active: np.ndarray) -> dict:
    """Share of the extra area's weight by the first pixel class that applies (module docstring)."""
    others = np.delete(field.neuron_masks, i, axis=1).any(axis=1) if i is not None else field.neuron_masks.any(axis=1)
    classes = [("neighbour", others), ("co-active oof", field.oof_masks[:, co_active].any(axis=1)),
               ("other oof", field.oof_masks.any(axis=1)), ("vessel", field.vessel_masks.any(axis=1))]
    left = extra.copy()
    total = max(float(weights[extra].sum()), 1e-12)
    shares = {}
    for name, mask in classes:
        here = left & mask
        shares[name] = float(weights[here].sum()) / total
        left &= ~mask
    shares["none"] = float(weights[left].sum()) / total
    return shares


def trace_shares(trace: np.ndarray, i: int | None, region: np.ndarray, field: Field) -> dict:
    """The trace's variance explained by each class of source (least squares on every source's time course:
    the neuron, the neurons and out-of-focus cells whose masks meet ``region``, every vessel and neuropil mode;
    each class's share is its fitted part's variance over the trace's), and ``r2`` of all together."""
    neighbours = [n for n in np.flatnonzero(field.neuron_masks[region].any(axis=0)) if n != i]
    blocks = [("own", field.calcium[[i]] if i is not None else np.zeros((0, trace.size))),
              ("neighbour", field.calcium[neighbours]),
              ("oof", field.oof_calcium[np.flatnonzero(field.oof_masks[region].any(axis=0))]),
              ("vessel", field.vessel_t), ("neuropil", field.neuropil_t)]
    X = np.vstack([b for _, b in blocks]).astype(float).T
    X = np.column_stack([X - X.mean(axis=0), np.ones(trace.size)])
    y = trace.astype(float) - trace.mean()
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    out, start = {}, 0
    for name, block in blocks:
        part = X[:, start:start + block.shape[0]] @ coef[start:start + block.shape[0]]
        out[name] = float(part.var() / y.var())
        start += block.shape[0]
    out["r2"] = 1.0 - float(((y - X @ coef) ** 2).sum() / (y ** 2).sum())
    return out


def trace_links(trace: np.ndarray, i: int | None, region: np.ndarray, field: Field) -> dict:
    """r of the trace with its neuron, best neighbour, best out-of-focus cell meeting ``region``, vessel, neuropil."""
    best = lambda values: max(values, key=lambda v: v[1]) if values else (None, float("nan"))  # noqa: E731
    neighbours = [n for n in np.flatnonzero(field.neuron_masks[region].any(axis=0)) if n != i]
    oof = np.flatnonzero(field.oof_masks[region].any(axis=0))
    n, r_n = best([(int(n), pearson(field.calcium[n], trace)) for n in neighbours])
    o, r_o = best([(int(o), pearson(field.oof_calcium[o], trace)) for o in oof])
    _, r_v = best([(int(v), abs(pearson(field.vessel_t[v], trace)))
                   for v in np.flatnonzero(field.vessel_masks[region].any(axis=0))])
    r_np = max(pearson(t, trace) for t in field.neuropil_t)
    return dict(r_own=pearson(field.calcium[i], trace) if i is not None else float("nan"), neighbour=n,
                r_neighbour=r_n, oof=o, r_oof=r_o, oof_defocus=float(field.defocus[o]) if o is not None else None,
                r_vessel=r_v, r_neuropil=r_np)


def component_row(k: int, est: dict, i: int | None, iou: float, truth: dict, field: Field) -> dict:
    """Everything the module docstring lists, for accepted component ``k`` attributed to neuron ``i``."""
    weights = np.asarray(images_to_columns(est["footprints"][k:k + 1]))[:, 0].astype(float)
    mask = energy_masks(est["footprints"][k:k + 1]).toarray()[:, 0].astype(bool)
    true_mask = field.neuron_masks[:, i] if i is not None else np.zeros_like(mask)
    extra = mask & ~true_mask
    trace = est["C"][k]
    co_active = np.array([pearson(c, trace) >= CO_ACTIVE for c in field.oof_calcium])
    rows, cols = est["footprints"].shape[1:]
    py, px = np.unravel_index(int(np.argmax(est["footprints"][k])), (rows, cols))
    return dict(component=int(k), neuron=i, iou=round(iou, 3),
                snr=round(float(truth["peak_snr"][i]), 2) if i is not None else None,
                area_true=int(true_mask.sum()), area_est=int(mask.sum()),
                inside=round(float((mask & true_mask).sum() / mask.sum()), 2),
                extra_weight=round(float(weights[extra].sum() / weights[mask].sum()), 2),
                edge=int(min(py, px, rows - 1 - py, cols - 1 - px)), focus_ratio=float(est["focus_ratio"][k]),
                pixels=pixel_shares(weights, extra, i, field, co_active),
                trace_var=trace_shares(trace, i, mask | true_mask, field),
                traces=trace_links(trace, i, extra if extra.any() else mask, field))


def large_components(estimates: Path, truth_path: Path, *, everyone: bool = False) -> list[dict]:
    """A row for every large accepted component (with ``everyone``: every matched one too)."""
    truth, est = dict(np.load(truth_path)), dict(np.load(estimates))
    accepted = np.setdiff1d(np.arange(len(est["C"])), est["idx_components_bad"])
    score = shape_score(truth["footprints"], est["footprints"][accepted])
    field = Field(truth, redrawn_truth(truth_path))
    comp_masks = energy_masks(est["footprints"][accepted]).toarray().astype(bool)
    area_true = field.neuron_masks.sum(axis=0)
    median_true = float(np.median(area_true))
    matched = {j: (i, iou) for (i, j), iou in zip(score.matches, score.ious)}
    rows = []
    for j, k in enumerate(accepted):
        area = int(comp_masks[:, j].sum())
        if j in matched:
            i, iou = matched[j]
            large = area > LARGE * area_true[i]
        else:
            overlap = (field.neuron_masks & comp_masks[:, [j]]).sum(axis=0)
            i, iou = (int(np.argmax(overlap)) if overlap.max() > 0 else None), 0.0
            large = area > LARGE * median_true
        if large or (everyone and j in matched):
            row = component_row(int(k), est, i, float(iou), truth, field)
            rows.append(dict(row, matched=j in matched, large=bool(large)))
    return rows


def print_row(row: dict) -> None:
    p, d, t = row["pixels"], row["trace_var"], row["traces"]
    print(f"c{row['component']:3d} t{row['neuron']} {'M' if row['matched'] else 'U'} IoU {row['iou']:.2f} "
          f"snr {row['snr']} area {row['area_true']}/{row['area_est']} inside {row['inside']:.2f} "
          f"extra_w {row['extra_weight']:.2f} edge {row['edge']} | px " + " ".join(f"{k} {v:.2f}" for k, v in p.items())
          + " | trace var " + " ".join(f"{k} {v:.2f}" for k, v in d.items())
          + f" | r own {t['r_own']:.2f} nb {t['r_neighbour']:.2f} oof {t['r_oof']:.2f} (d {t['oof_defocus']}) "
          f"ves {t['r_vessel']:.2f} np {t['r_neuropil']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimates", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument("--all", action="store_true", help="every matched component too")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = large_components(args.estimates, args.truth, everyone=args.all)
    for row in rows:
        if row["large"]:
            print_row(row)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
