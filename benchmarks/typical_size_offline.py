"""What the fit's typical-size cut (`cnmflow.engine.typical_size`) does to a saved realistic fit's scores, at other
bounds than the engine's, without fitting again (issue #16, findings/footprint_fidelity.md, session 23).

The cut runs after the focus test on the accepted footprints only and changes nothing else, so applying it to a saved
fit made without it gives the fit with it exactly (checked on fresh seeds 37 / 38: F1@0.5 to the digit). Each
``<tag>_<movie>.fit.estimates.npz`` is scored as `realistic_benchmark.py` scores it (accepted components,
`shape_scoring.shape_score`), then with every accepted footprint over each ``--ratios`` × the median accepted area cut.

    PYTHONPATH=. .venv/bin/python benchmarks/typical_size_offline.py \
        results/sweep/main_pick_realistic_ca1_256x256x1000_seed31.fit.estimates.npz \
        --truth results/realistic_ca1_256x256x1000_seed31.truth.npz --ratios 1.5 1.75 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cnmflow.engine import typical_size
from cnmflow.pixel_order import columns_to_images, images_to_columns
from cnmflow.shape_scoring import shape_score


def scores(footprints: np.ndarray, traces: np.ndarray, truth) -> str:
    s = shape_score(truth["footprints"], footprints, truth_traces=truth["calcium"], estimated_traces=traces)
    return (f"F1@0.5 {s.f1_iou50:.3f}  F1@0.3 {s.f1_iou30:.3f}  precision@0.3 {s.precision_iou30:.3f}  "
            f"median IoU {s.median_iou:.3f}  r {s.median_trace_corr:.3f}")


def cut(footprints: np.ndarray, ratio: float) -> tuple[np.ndarray, int]:
    """The footprints (K, rows, cols) with the engine's cut at ``ratio``; and how many were cut."""
    dims = footprints.shape[1:]
    A = sp.csc_matrix(images_to_columns(footprints))
    out, cut_columns = typical_size.within_typical_size(A, ratio=ratio)
    return columns_to_images(out.toarray(), dims), cut_columns.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimates", type=Path)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--ratios", type=float, nargs="+", default=[typical_size.MAX_AREA_RATIO])
    args = parser.parse_args(argv)
    truth, fit = np.load(args.truth), np.load(args.estimates)
    accepted = np.setdiff1d(np.arange(len(fit["C"])), fit["idx_components_bad"])
    footprints, traces = fit["footprints"][accepted], fit["C"][accepted]
    print(f"{args.estimates.name}: {len(accepted)} accepted")
    print(f"  as saved        {scores(footprints, traces, truth)}")
    for ratio in args.ratios:
        out, changed = cut(footprints, ratio)
        print(f"  cut at {ratio:<4} ({changed:2d}) {scores(out, traces, truth)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
