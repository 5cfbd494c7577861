"""Where matched footprints' 90% masks differ from the truth's: 1 − IoU split by where the pixels lie.

For each match at IoU > 0.3 (``shape_scoring.shape_score``, as the benchmark scores), ``1 − IoU =
(missed + extra) / union`` exactly, so the mean of each part below adds up to the mean of 1 − IoU:

- missed (true mask pixels the estimate lacks): *core* (within the true footprint's half-max
  radius of its peak), *neighbour side* (beyond it and inside another true neuron's 90% mask),
  *halo* (the rest);
- extra (estimate pixels outside the true mask): *neighbour* (inside another true neuron's mask),
  *own halo* (where the true footprint still holds ≥ ``HALO_FLOOR`` of its peak: its halo, cut by
  the 90% mask), *background* (the rest).

It also prints the median 90% areas (true / estimated) and the IoU the estimate would reach if its
mask held exactly as many pixels as the truth's (its brightest ones): far above the actual IoU
means the estimate's shape is right and its energy sits too close to the peak (a halo too short);
near it, the shape is off (issue #16).

    .venv/bin/python benchmarks/mask_mismatch.py benchmarks/results/realistic_cortex_l23_256x256x1200_seed1.npy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cnmflow.shape_scoring import energy_masks, shape_score

#: a true footprint's value (fraction of its peak) from which an extra pixel counts as its own halo
HALO_FLOOR = 0.005
PARTS = ("missed_core", "missed_neighbour", "missed_halo", "extra_neighbour", "extra_own_halo", "extra_background")


def top_mask(image: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` brightest pixels of ``image``."""
    flat = np.zeros(image.size, dtype=bool)
    flat[np.argsort(image.ravel())[::-1][:count]] = True
    return flat.reshape(image.shape)


def mask_images(footprints: np.ndarray) -> np.ndarray:
    """(K, rows, cols) bool: the scorer's own 90%-energy masks (ties broken as it breaks them)."""
    k, rows, cols = footprints.shape
    return energy_masks(footprints).toarray().T.reshape(k, cols, rows).transpose(0, 2, 1) > 0


def split_match(true_image: np.ndarray, est_image: np.ndarray, mask_true: np.ndarray, mask_est: np.ndarray,
                others: np.ndarray) -> dict:
    """One match's parts of 1 − IoU (:data:`PARTS`, each over the union), areas and equal-area IoU.
    ``others``: bool, the pixels inside any other true neuron's 90% mask."""
    union = float((mask_true | mask_est).sum())
    peak = np.unravel_index(np.argmax(true_image), true_image.shape)
    distance = np.hypot(*(np.indices(true_image.shape) - np.array(peak)[:, None, None]))
    half_radius = np.sqrt((true_image >= 0.5 * true_image.max()).sum() / np.pi)
    missed, extra = mask_true & ~mask_est, mask_est & ~mask_true
    core = distance <= half_radius
    own_halo = true_image >= HALO_FLOOR * true_image.max()
    parts = dict(missed_core=missed & core, missed_neighbour=missed & ~core & others,
                 missed_halo=missed & ~core & ~others, extra_neighbour=extra & others,
                 extra_own_halo=extra & ~others & own_halo, extra_background=extra & ~others & ~own_halo)
    row = {name: float(mask.sum()) / union for name, mask in parts.items()}
    equal = top_mask(est_image, int(mask_true.sum()))
    halo_near, halo_free = mask_true & ~core & others, mask_true & ~core & ~others
    row.update(missed_rate_neighbour=float((missed & halo_near).sum() / max(halo_near.sum(), 1)),
               missed_rate_free=float((missed & halo_free).sum() / max(halo_free.sum(), 1)),
               missed_distance=float(np.median(distance[missed])) if missed.any() else np.nan,
               est_reach=float(distance[mask_est].max()), true_reach=float(distance[mask_true].max()))
    row.update(iou=float((mask_true & mask_est).sum()) / union, area_true=int(mask_true.sum()),
               area_est=int(mask_est.sum()), equal_area_iou=float((mask_true & equal).sum() / (mask_true | equal).sum()))
    return row


def mismatch_rows(truth, fitted) -> list[dict]:
    """:func:`split_match` for every match at IoU > 0.3 of the fit's accepted components (as scored)."""
    accepted = np.setdiff1d(np.arange(fitted["footprints"].shape[0]), fitted["idx_components_bad"])
    true_fp, est_fp = truth["footprints"], fitted["footprints"][accepted]
    score = shape_score(true_fp, est_fp)
    masks_true, masks_est = mask_images(true_fp), mask_images(est_fp)
    counts = masks_true.sum(axis=0)
    return [split_match(true_fp[i], est_fp[j], masks_true[i], masks_est[j], counts - masks_true[i] > 0)
            for (i, j) in score.matches]


def report(rows: list[dict], label: str) -> None:
    means = {name: np.mean([row[name] for row in rows]) for name in PARTS}
    print(f"{label}: n {len(rows)}, median IoU {np.median([r['iou'] for r in rows]):.3f}, mean 1-IoU "
          f"{np.mean([1 - r['iou'] for r in rows]):.3f} = " + " + ".join(f"{n} {v:.3f}" for n, v in means.items()))
    print(f"   median area true / est {np.median([r['area_true'] for r in rows]):.0f} / "
          f"{np.median([r['area_est'] for r in rows]):.0f}, est smaller in {np.mean([r['area_est'] < r['area_true'] for r in rows]):.2f}"
          f", median equal-area IoU {np.median([r['equal_area_iou'] for r in rows]):.3f}")
    print("   medians: share of the true halo missed inside another neuron's mask / elsewhere "
          + " / ".join(f"{np.median([r[n] for r in rows]):.2f}" for n in ("missed_rate_neighbour", "missed_rate_free"))
          + ", missed pixels' distance to the true peak, masks' farthest pixel true / est (px) "
          + " / ".join(f"{np.nanmedian([r[n] for r in rows]):.1f}" for n in ("missed_distance", "true_reach", "est_reach")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path, help="the realistic movie (.npy) whose truth lies beside it")
    parser.add_argument("--estimates", type=Path, nargs="+", help="fits' .fit.estimates.npz (default: the movie's)")
    args = parser.parse_args(argv)
    truth = np.load(args.movie.with_suffix(".truth.npz"))
    for estimates in args.estimates or [args.movie.with_suffix(".fit.estimates.npz")]:
        report(mismatch_rows(truth, np.load(estimates)), estimates.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
