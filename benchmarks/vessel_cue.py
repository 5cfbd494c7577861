"""Accepted components that follow a blood vessel, against true cells (issue #16, h/h21vessel): each accepted
component's trace skewness (denoised ``C`` and raw ``C + YrA``), its footprint's elongation and its class — a true
positive (matched to a neuron at IoU > 0.3) or ``fp_sources.py``'s class of a false positive — and what a cut on
each skewness would do to F1 (the components under the cut removed from the saved fit, no refit).

Calcium transients are sparse upward events, so a cell's trace is skewed up; a vessel's pulsing (vasomotion, the
heartbeat) is roughly symmetric, and a component that follows it is skewed less (suite2p's classifier reads the same
statistic, its ``skew``, among a ROI's features).

    PYTHONPATH=. .venv/bin/python benchmarks/vessel_cue.py results/<name>.fit.estimates.npz ... --out cue.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.ndimage as ndimage

from cnmflow.engine.trace_shape import skewness
from cnmflow.pixel_order import column_to_image
from cnmflow.shape_scoring import energy_masks, shape_score
from covered_twice_sources import MOVIE_NAME
from fp_sources import false_positives

CUTS = (0.8, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0)
GSIG = {"ca1": 6.0, "cortex_l23": 3.0}


def elongation(image: np.ndarray) -> float:
    """sqrt of the ratio of the footprint's weighted second moments along its long and short axes."""
    w = np.clip(image, 0, None)
    rows, cols = np.indices(image.shape)
    total = w.sum()
    mr, mc = (rows * w).sum() / total, (cols * w).sum() / total
    cov = np.cov(np.vstack([rows.ravel() - mr, cols.ravel() - mc]), aweights=w.ravel())
    low, high = np.linalg.eigvalsh(cov)
    return float(np.sqrt(high / max(low, 1e-12)))


def mean_frame(movie_path: Path, chunk: int = 200) -> np.ndarray:
    """The movie's mean frame."""
    movie = np.load(movie_path, mmap_mode="r")
    total = sum(np.asarray(movie[s:s + chunk], np.float64).sum(axis=0) for s in range(0, movie.shape[0], chunk))
    return total / movie.shape[0]


def resting_contrast(image: np.ndarray, mean: np.ndarray, gsig: float) -> float:
    """The mean frame under the footprint (its weights) over the mean frame 1–2 gSig beyond its 90%-energy mask: a
    cell rests brighter than its surround, a vessel's groove darker."""
    mask = column_to_image(energy_masks(image[None]).toarray().ravel(), image.shape) > 0
    near = ndimage.binary_dilation(mask, iterations=int(round(gsig)))
    far = ndimage.binary_dilation(mask, iterations=int(round(2 * gsig))) & ~near
    w = np.clip(image, 0, None)
    return float((w * mean).sum() / w.sum() / mean[far].mean())


def components(estimates: Path, truth_path: Path) -> list[dict]:
    """One row per accepted component: class, skewness of C and of C + YrA, elongation, resting contrast, SNR, focus
    ratio."""
    config = MOVIE_NAME.search(truth_path.name).group(1)
    est, truth = dict(np.load(estimates)), dict(np.load(truth_path))
    mean = mean_frame(truth_path.with_name(truth_path.name.replace(".truth.npz", ".npy")))
    accepted = np.setdiff1d(np.arange(len(est["C"])), est["idx_components_bad"])
    score = shape_score(truth["footprints"], est["footprints"][accepted])
    matched = {int(accepted[j]) for _, j in score.matches}
    fps = {row["component"]: row for row in false_positives(estimates, truth_path, gsig=GSIG[config])}
    rows = []
    for k in accepted:
        k = int(k)
        raw = est["C"][k] + est["YrA"][k] if "YrA" in est else None
        rows.append(dict(component=k, cls="TP" if k in matched else fps[k]["cls"],
                         skew_c=round(float(skewness(est["C"][k])[0]), 3),
                         skew_raw=round(float(skewness(raw)[0]), 3) if raw is not None else None,
                         elongation=round(elongation(est["footprints"][k]), 2),
                         resting=round(resting_contrast(est["footprints"][k], mean, GSIG[config]), 3),
                         snr=round(float(est["SNR_comp"][k]), 2) if "SNR_comp" in est else None,
                         focus_ratio=round(float(est["focus_ratio"][k]), 2),
                         r_vessel=fps[k]["r_vessel"] if k in fps else None))
    return rows


def cut_scores(estimates: Path, truth_path: Path, rows: list[dict], key: str) -> dict:
    """F1@0.3 / F1@0.5 with the accepted components whose ``key`` lies below each cut removed."""
    est, truth = dict(np.load(estimates)), dict(np.load(truth_path))
    out = {}
    for cut in (None,) + CUTS:
        keep = [r["component"] for r in rows if cut is None or r[key] >= cut]
        s = shape_score(truth["footprints"], est["footprints"][keep])
        out["none" if cut is None else f"{cut:g}"] = [round(s.f1_iou30, 3), round(s.f1_iou50, 3), len(keep)]
    return out


def pooled(record: dict, key: str = "skew_c") -> None:
    """Over all fits, for each cut on ``key``: the true positives, vessel-following and other false positives it
    removes, and the mean and worst change in F1@0.3 / F1@0.5."""
    print(f"pooled over {len(record)} fits, cut on {key}:")
    for cut in CUTS:
        rows = [r for fit in record.values() for r in fit["rows"] if r[key] < cut]
        gone = Counter("TP" if r["cls"] == "TP" else "vessel" if r["cls"] == "vessel / neuropil" else "other FP"
                       for r in rows)
        d30 = [fit["cuts"][key][f"{cut:g}"][0] - fit["cuts"][key]["none"][0] for fit in record.values()]
        d50 = [fit["cuts"][key][f"{cut:g}"][1] - fit["cuts"][key]["none"][1] for fit in record.values()]
        print(f"   {cut:4g}: removes TP {gone['TP']}, vessel {gone['vessel']}, other FP {gone['other FP']}; "
              f"F1@0.3 mean {np.mean(d30):+.4f} worst {min(d30):+.3f}; F1@0.5 mean {np.mean(d50):+.4f} "
              f"worst {min(d50):+.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimates", type=Path, nargs="+", help="saved fits' .fit.estimates.npz")
    parser.add_argument("--truth-dir", type=Path, required=True, help="the folder of the movies' .truth.npz")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    record = {}
    for path in args.estimates:
        truth_path = args.truth_dir / f"{path.name.split('.fit')[0]}.truth.npz"
        rows = components(path, truth_path)
        keys = [key for key in ("skew_c", "skew_raw") if rows[0][key] is not None]
        cuts = {key: cut_scores(path, truth_path, rows, key) for key in keys}
        record[path.name] = dict(rows=rows, cuts=cuts)
        by = Counter(r["cls"] for r in rows)
        print(path.name, dict(by))
        for cls in sorted(by):
            for key in ("skew_c", "skew_raw", "elongation", "resting"):
                v = [r[key] for r in rows if r["cls"] == cls and r[key] is not None]
                if v:
                    print(f"   {cls:<38} {key:<10} min {min(v):6.2f}  median {np.median(v):6.2f}  max {max(v):6.2f}")
        for key, table in cuts.items():
            print(f"   cut on {key}: " + "  ".join(f"{c}: {v[0]:.3f}/{v[1]:.3f} ({v[2]})" for c, v in table.items()))
    pooled(record)
    if args.out:
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
