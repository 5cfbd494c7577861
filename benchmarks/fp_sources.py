"""What each false positive of a realistic fit follows (issue #16): an accepted component matched to no neuron at
IoU > 0.3, named by the simulator's own source behind its trace.

A component *follows* a source when its trace correlates with the source's time course at r ≥ ``MIN_R`` and the
source's 90%-energy mask (a vessel: its pixels dimmed by over ``VESSEL_LEVEL`` of its peak) meets the component's.
The class is the first that applies: a neuron the fit does not match (a *partial of a missed neuron*: fixing its
footprint fixes a miss and a false positive), a neuron the fit matches (*partial / surplus on a found neuron*), an
out-of-focus cell, a vessel or a neuropil mode (|r|: a vessel dims the resting light), a *mixture* (no single source
at r ≥ 0.5, but the sources under the mask explain R² ≥ 0.5 of the trace together), else *noise / unexplained*.
The background sources are re-simulated at full length with the movie's rendering skipped (same seed, same draws).
Each row also carries the trace's skewness (calcium transients are skewed up; a vessel's pulsing is not), the focus
ratio (NaN: at the field's edge, not judged) and, given ``orphan_drops.py``'s json for the same fit, whether the
component is an orphan ``deduplicate`` kept (h20orphan; centre within 3 px).

    PYTHONPATH=. .venv/bin/python benchmarks/fp_sources.py results/<name>.fit.estimates.npz \
        results/realistic_cortex_l23_256x256x1200_seed19.truth.npz --gsig 3 [--orphans o.fit.json] [--out fp.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from cnmflow.engine.trace_shape import skewness
from cnmflow.pixel_order import images_to_columns
from cnmflow.score_inputs import pearson
from cnmflow.shape_scoring import energy_masks, iou_matrix, shape_score
from covered_twice_sources import MIN_R, redrawn_truth

MIN_R2 = 0.5
VESSEL_LEVEL = 0.2
ORPHAN_PX = 3.0


class Sources:
    """Every source's mask and time course, and which of them meet a component's mask."""

    def __init__(self, truth: dict, sim, comp_masks) -> None:
        labels = list(sim.background_labels)
        self.cells = [i for i, n in enumerate(labels) if n.startswith("cell")]
        self.vessels = [i for i, n in enumerate(labels) if n.startswith("vessel")]
        self.neuropil = [i for i, n in enumerate(labels) if n.startswith("neuropil")]
        self.temporal, self.calcium = sim.background_temporal, truth["calcium"]
        self.defocus = sim.out_of_focus_defocus_um
        neuron_masks = energy_masks(truth["footprints"]).tocsc()
        self.iou = iou_matrix(neuron_masks, comp_masks)[0]
        self.on_neuron = (neuron_masks.T @ comp_masks).toarray() > 0
        self.on_cell = (energy_masks(sim.background_spatial[self.cells]).tocsc().T @ comp_masks).toarray() > 0
        dim = np.abs(images_to_columns(sim.background_spatial[self.vessels]).T)
        vessel_masks = (dim > VESSEL_LEVEL * dim.max(axis=1, keepdims=True)).astype(float)
        self.on_vessel = np.asarray(comp_masks.T @ vessel_masks.T).T > 0   # (n_vessels, K)

    def followed(self, j: int, trace: np.ndarray) -> dict:
        """r with each source whose mask meets component j's (vessels as |r|), and R² of all of them together."""
        r_n = {int(n): pearson(self.calcium[n], trace) for n in np.flatnonzero(self.on_neuron[:, j])}
        r_o = {int(o): pearson(self.temporal[self.cells[o]], trace) for o in np.flatnonzero(self.on_cell[:, j])}
        r_v = {int(v): abs(pearson(self.temporal[self.vessels[v]], trace))
               for v in np.flatnonzero(self.on_vessel[:, j])}
        r_np = max((pearson(self.temporal[k], trace) for k in self.neuropil), default=0.0)
        design = ([self.calcium[n] for n in r_n] + [self.temporal[self.cells[o]] for o in r_o]
                  + [self.temporal[self.vessels[v]] for v in r_v] + [self.temporal[k] for k in self.neuropil])
        X = np.column_stack(design + [np.ones(trace.size)])
        y = trace.astype(float)
        fit = X @ np.linalg.lstsq(X, y, rcond=None)[0]
        r2 = 1.0 - float(((y - fit) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        return dict(neurons=r_n, cells=r_o, vessels=r_v, neuropil=r_np, r2=r2)


def source_class(f: dict, matched: set[int]) -> str:
    """The first class of the module docstring that applies to a component's ``Sources.followed``."""
    best = lambda d: max(d, key=d.get) if d else None  # noqa: E731
    n, o, v = best(f["neurons"]), best(f["cells"]), best(f["vessels"])
    if n is not None and f["neurons"][n] >= MIN_R:
        return "partial / surplus on a found neuron" if n in matched else "partial of a missed neuron"
    if o is not None and f["cells"][o] >= MIN_R:
        return "out-of-focus cell"
    if (v is not None and f["vessels"][v] >= MIN_R) or f["neuropil"] >= MIN_R:
        return "vessel / neuropil"
    return "mixture" if f["r2"] >= MIN_R2 else "noise / unexplained"


def _centre(image: np.ndarray) -> tuple[float, float]:
    weights = np.clip(image, 0, None)
    rows, cols = np.indices(image.shape)
    return float((rows * weights).sum() / weights.sum()), float((cols * weights).sum() / weights.sum())


def _row(j: int, k: int, est, src: Sources, f: dict, cls: str, truth: dict, gsig: float, orphans: list) -> dict:
    """One false positive's row."""
    n = max(f["neurons"], key=f["neurons"].get) if f["neurons"] else None
    o = max(f["cells"], key=f["cells"].get) if f["cells"] else None
    v = max(f["vessels"], key=f["vessels"].get) if f["vessels"] else None
    cy, cx = _centre(est["footprints"][k])
    rows, cols = est["footprints"].shape[1:]
    edge = min(cy, cx, rows - 1 - cy, cols - 1 - cx)
    return dict(component=k, center=[round(cy, 1), round(cx, 1)], edge_px=round(edge, 1), at_edge=bool(edge < 2 * gsig),
                focus_ratio=round(float(est["focus_ratio"][k]), 2), skew=round(float(skewness(est["C"][k])[0]), 2),
                cls=cls,
                neuron=n, r_neuron=round(f["neurons"][n], 2) if n is not None else None,
                neuron_iou=round(float(src.iou[n, j]), 2) if n is not None else None,
                neuron_snr=round(float(truth["peak_snr"][n]), 2) if n is not None else None,
                oof_cell=o, r_oof=round(f["cells"][o], 2) if o is not None else None,
                oof_defocus_um=round(float(src.defocus[o]), 1) if o is not None else None,
                vessel=v, r_vessel=round(f["vessels"][v], 2) if v is not None else None,
                r_neuropil=round(f["neuropil"], 2), r2_sources=round(f["r2"], 2),
                kept_orphan=any(np.hypot(c[0] - cy, c[1] - cx) < ORPHAN_PX for c in orphans))


def false_positives(estimates: Path, truth_path: Path, *, gsig: float, orphans: Path | None = None) -> list[dict]:
    """A row for every accepted component matched to no neuron at IoU > 0.3, with the class of what it follows."""
    truth, est = dict(np.load(truth_path)), dict(np.load(estimates))
    accepted = np.setdiff1d(np.arange(len(est["C"])), est["idx_components_bad"])
    score = shape_score(truth["footprints"], est["footprints"][accepted])
    matched_est, matched_true = {j for _, j in score.matches}, {i for i, _ in score.matches}
    src = Sources(truth, redrawn_truth(truth_path), energy_masks(est["footprints"][accepted]).tocsc())
    kept = []
    if orphans is not None:
        kept = [o["center"] for o in json.loads(orphans.read_text())["orphan_drops"]["orphans"]
                if o["inner_edge_share"] <= 0.05]   # patches.ORPHAN_EDGE_SHARE: the ones main keeps
    rows = []
    for j, k in enumerate(accepted):
        if j not in matched_est:
            f = src.followed(j, est["C"][k])
            rows.append(_row(j, int(k), est, src, f, source_class(f, matched_true), truth, gsig, kept))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimates", type=Path, help="a saved fit's .fit.estimates.npz")
    parser.add_argument("truth", type=Path, help="the movie's .truth.npz (its name gives config, size, seed)")
    parser.add_argument("--gsig", type=float, required=True)
    parser.add_argument("--orphans", type=Path, help="orphan_drops.py's json for the same fit")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rows = false_positives(args.estimates, args.truth, gsig=args.gsig, orphans=args.orphans)
    for row in rows:
        print(row)
    print(Counter(row["cls"] for row in rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
