"""Matched footprints of a realistic-benchmark fit split by IoU: what separates F1@0.5 from F1@0.3.

Reads a fit that ``realistic_benchmark.py`` saved (``<movie>.fit.estimates.npz``) and the movie's
``.truth.npz``, matches them as the benchmark does (``shape_scoring.shape_score``: 90%-energy masks,
Hungarian matching on IoU > 0.3) and prints, for the matches with IoU < 0.5, 0.5–0.7 and ≥ 0.7, the
medians of: peak SNR, 90% mask areas (true / estimated), the share of the estimated mask inside
the true one and of the true mask covered, the masks' centroid and peak offsets, the nearest true
neighbour and the field's edge; then the radial profiles (2 px rings about the true peak, each
relative to its centre) and every match below IoU 0.5 (issue #16).

    .venv/bin/python benchmarks/footprint_split.py benchmarks/results/realistic_ca1_256x256x1000_seed1.npy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from ring_means import ring_means

GROUPS = (("IoU < 0.5", 0.3, 0.5), ("0.5-0.7", 0.5, 0.7), (">= 0.7", 0.7, 1.01))
COLUMNS = ("iou", "trace_r", "snr", "area_true", "area_est", "inside", "covered", "centroid_off", "peak_off",
           "neighbour", "edge")
RING_STARTS = np.arange(0, 24, 2)


def energy_mask(image: np.ndarray, fraction: float = 0.9) -> np.ndarray:
    """The scorer's own mask of one footprint image (:func:`cnmflow.shape_scoring.energy_masks`). A threshold at
    the cut value would keep every pixel tied there too: on smoothed halos, with many ties, that read areas ~20% large
    (h16cxiou: cortex s1 311 px against the scorer's 257)."""
    from cnmflow.shape_scoring import energy_masks

    column = energy_masks(image[None]).toarray()[:, 0]
    return column.reshape(image.shape, order="F").astype(bool)


def ring_profile(image: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Mean of ``image`` on 2-px rings about ``centre``, relative to the first ring."""
    means = ring_means(image, centre, RING_STARTS)
    return means / means[0] if means[0] > 0 else np.full(means.shape, np.nan)


def match_rows(truth: np.lib.npyio.NpzFile, fitted: np.lib.npyio.NpzFile) -> tuple[list[dict], object]:
    """One row of :data:`COLUMNS` (plus the indices and profiles) per match at IoU > 0.3."""
    from cnmflow.shape_scoring import shape_score

    true_fp, est_fp = truth["footprints"], fitted["footprints"]
    score = shape_score(true_fp, est_fp, truth_traces=truth["calcium"], estimated_traces=fitted["C"])
    dims = true_fp.shape[1:]
    peaks = np.array([np.unravel_index(np.argmax(image), dims) for image in true_fp])
    rows = []
    for (i, j), iou, r in zip(score.matches, score.ious, score.trace_corrs):
        mask_true, mask_est = energy_mask(true_fp[i]), energy_mask(est_fp[j])
        both = float((mask_true & mask_est).sum())
        others = np.hypot(*(peaks - peaks[i]).T)
        others[i] = np.inf
        rows.append(dict(
            true=i, est=j, iou=float(iou), trace_r=float(r), snr=float(truth["peak_snr"][i]),
            area_true=int(mask_true.sum()), area_est=int(mask_est.sum()), inside=both / mask_est.sum(),
            covered=both / mask_true.sum(),
            centroid_off=float(np.hypot(*np.subtract(ndi.center_of_mass(mask_true), ndi.center_of_mass(mask_est)))),
            peak_off=float(np.hypot(*(peaks[i] - np.unravel_index(np.argmax(est_fp[j]), dims)))),
            neighbour=float(others.min()), edge=int(min(*peaks[i], *(np.array(dims) - 1 - peaks[i]))),
            profile_true=ring_profile(true_fp[i], peaks[i]), profile_est=ring_profile(est_fp[j], peaks[i])))
    return rows, score


def report(rows: list[dict], score) -> None:
    print(f"K {score.n_estimated}, F1@0.5 {score.f1_iou50:.3f}, F1@0.3 {score.f1_iou30:.3f}, "
          f"median IoU {score.median_iou:.3f}")
    for name, low, high in GROUPS:
        group = [row for row in rows if low <= row["iou"] < high]
        if not group:
            continue
        print(f"{name:>10} n={len(group):3d} " + " ".join(f"{c} {np.median([g[c] for g in group]):.2f}" for c in COLUMNS))
        with np.printoptions(precision=3, suppress=True, linewidth=160):
            print(f"{'':>10} profile true {np.nanmedian([g['profile_true'] for g in group], axis=0)}")
            print(f"{'':>10} profile est  {np.nanmedian([g['profile_est'] for g in group], axis=0)}")
    print("matches below IoU 0.5:")
    for row in sorted((row for row in rows if row["iou"] < 0.5), key=lambda row: row["iou"]):
        print(f"  true {row['true']} est {row['est']} " + " ".join(f"{c} {row[c]:.2f}" for c in COLUMNS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path, help="the realistic movie (.npy) whose fit and truth lie beside it")
    parser.add_argument("--estimates", type=Path, help="another .fit.estimates.npz (default: the movie's)")
    args = parser.parse_args(argv)
    estimates = args.estimates or args.movie.with_suffix(".fit.estimates.npz")
    rows, score = match_rows(np.load(args.movie.with_suffix(".truth.npz")), np.load(estimates))
    report(rows, score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
