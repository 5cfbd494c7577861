"""What the shape scorer counts as "covered twice" for an ideal extraction of the realistic movies (issue #16).

The extraction here is the simulator's own sources, exact: every in-focus neuron's true footprint, plus the true
footprints of the out-of-focus cells whose peak SNR reaches a cut. A real extraction sensitive enough to find
in-focus cells of peak SNR s also finds out-of-focus cells as bright as s — they are real, active sources in the
movie — so the rows say how many neurons the scorer would call covered twice with *no* duplicate and *no* wrong
shape, at the sensitivity of each decile of the in-focus cells' peak SNR. Footprints do not depend on the movie's
length, so a short simulation gives the 256² seeds' exact layout (checked against the saved truth's footprints).

    PYTHONPATH=. .venv/bin/python benchmarks/ideal_covered_twice.py --configs ca1 cortex_l23 --seeds 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cnmflow.shape_scoring import shape_score
from cnmflow.synthetic import simulate_realistic_1p

RESULTS = Path(__file__).resolve().parent / "results"
#: Frames simulated: footprints, centres and peak SNRs are drawn before any activity, so any length gives them.
FRAMES = 60
#: Sensitivities, as percentiles of the in-focus cells' peak SNR: an extraction that finds the cells above the
#: p-th percentile finds the out-of-focus cells at least that bright.
PERCENTILES = (50, 25, 10, 0)


def out_of_focus_sources(truth) -> tuple[np.ndarray, np.ndarray]:
    """The out-of-focus cells' footprints ``(n, rows, cols)`` and peak SNRs (footprint peak × trace peak over the
    noise sd, the in-focus cells' ``peak_snr`` by the same reading: the simulator scales each trace to peak 1)."""
    picked = [i for i, label in enumerate(truth.background_labels) if label.startswith("cell")]
    footprints = truth.background_spatial[picked]
    amplitude = truth.background_temporal[picked].max(axis=1)
    peak = footprints.reshape(len(picked), -1).max(axis=1) * amplitude / truth.noise_sd
    return footprints, peak


def ideal_rows(config: str, seed: int) -> list[dict]:
    """One row per sensitivity: out-of-focus cells added, neurons covered twice, F1@0.5."""
    sim = simulate_realistic_1p(config, n_frames=FRAMES, rng=seed, render=False)
    truth = sim.truth
    oof, oof_snr = out_of_focus_sources(truth)
    rows = []
    for pct in PERCENTILES:
        cut = float(np.percentile(truth.peak_snr, pct))
        added = oof[oof_snr >= cut]
        score = shape_score(truth.footprints, np.concatenate([truth.footprints, added]))
        rows.append({"config": config, "seed": seed, "percentile": pct, "snr_cut": round(cut, 2),
                     "n_neurons": len(truth.footprints), "n_out_of_focus": len(oof), "added": len(added),
                     "covered_twice": int(score.n_multiply_covered), "f1_iou50": round(score.f1_iou50, 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["ca1", "cortex_l23"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=RESULTS / "ideal_covered_twice.json")
    args = parser.parse_args(argv)
    records = []
    print("config seed | in-focus SNR cut (percentile): out-of-focus cells added -> neurons covered twice, F1@0.5")
    for config in args.configs:
        for seed in args.seeds:
            rows = ideal_rows(config, seed)
            records += rows
            cells = "; ".join(f"≥{r['snr_cut']} (p{r['percentile']}): {r['added']} -> {r['covered_twice']}, "
                              f"{r['f1_iou50']:.3f}" for r in rows)
            print(f"{config} s{seed} | {cells}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
