"""Which blobs the radius estimate measures, against the truth (issue #18, h18radius): per movie the radius and its
error, and per measured blob its scale σ, significance z, measured half-max radius, the nearest in-focus cell
(distance, its true radius and peak SNR), how many in-focus cells lie within the blob's disk radius √2·σ, and the
nearest out-of-focus cell. No fits.

    PYTHONPATH=. .venv/bin/python benchmarks/radius_blobs.py [--held-out] [--only NAME ...] --out results/x.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (RESULTS, downsampled, median_true_radius, save_runs, simulate,  # noqa: E402
                                   true_half_max_radius)
from gsig_split import movie_parser, movie_set  # noqa: E402


def blob_rows(est, truth) -> list[dict]:
    """One row per measured blob, matched to the in-focus and out-of-focus cells of the truth."""
    centers = np.asarray(truth.centers, float)
    radii = np.array([true_half_max_radius(f) for f in truth.footprints])
    oof = [i for i, name in enumerate(truth.background_labels) if name.startswith("cell")]
    oof_c = np.array([np.unravel_index(int(np.argmax(truth.background_spatial[i])), truth.background_spatial[i].shape)
                      for i in oof], float).reshape(-1, 2)
    rows = []
    for (r, c), rad, s, z in zip(est.blobs, est.blob_radii, est.blob_scales, est.blob_z):
        d = np.hypot(centers[:, 0] - r, centers[:, 1] - c)
        j = int(np.argmin(d))
        d_oof = np.hypot(oof_c[:, 0] - r, oof_c[:, 1] - c) if len(oof_c) else np.array([np.inf])
        rows.append({"rc": [int(r), int(c)], "sigma": round(float(s), 2), "z": round(float(z), 1),
                     "radius": round(float(rad), 2), "near_d": round(float(d[j]), 1),
                     "near_r": round(float(radii[j]), 2), "near_snr": round(float(truth.peak_snr[j]), 2),
                     "n_in_disk": int((d <= math.sqrt(2) * s).sum()), "oof_d": round(float(d_oof.min()), 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    from cnmflow.auto_params import SmoothedMovie, estimate_radius

    args = movie_parser(__doc__.splitlines()[0], RESULTS / "radius_blobs.json").parse_args(argv)
    movies = movie_set(args.held_out, args.only)
    records = []
    for movie in movies:
        sim = simulate(movie)
        est = estimate_radius(SmoothedMovie(downsampled(sim.movie)))
        true_r = median_true_radius(sim.truth)
        rec = {"movie": movie.name, "true_r": round(true_r, 2), "radius": round(est.radius, 2),
               "error": round(est.radius / true_r - 1, 3), "n_significant": est.n_significant,
               "n_visible": est.n_visible, "blobs": blob_rows(est, sim.truth)}
        print(json.dumps({k: v for k, v in rec.items() if k != "blobs"}), flush=True)
        records.append(rec)
        save_runs(args.out, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
