"""What a change to the fit did to the footprints of one realistic movie: summary rows of saved fits side by side,
then, per true neuron, the matches that are short or too large in the first fit and what each other fit made of
them (issue #16, findings/footprint_fidelity.md, h22surround).

Each fit is a ``realistic_benchmark.py --fit-only`` output (``X.fit.json`` beside ``X.fit.estimates.npz``); the
first named is the base. Scored as the benchmark scores (accepted components only, ``shape_scoring.shape_score``,
90%-energy masks, Hungarian matching at IoU > 0.3); a match is *short* where its estimated mask is under
``SHORT`` of the true one with IoU < 0.5, *too large* where it is over ``LARGE`` of it (any IoU).

    .venv/bin/python benchmarks/shape_changes.py benchmarks/results/realistic_ca1_256x256x1000_seed1.npy \
        runs/main_ca1_s1.fit.json runs/flat_ca1_s1.fit.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from footprint_split import energy_mask

SHORT = 0.8
LARGE = 1.25
SUMMARY = ("K", "n_rejected", "f1_iou50", "f1_iou30", "precision_iou30", "median_iou", "median_trace_corr",
           "median_area_true", "median_area_estimated", "n_multiply_covered", "cpu_s")


def matches(truth, estimates: Path) -> dict[int, tuple[float, int, int, float]]:
    """{true neuron: (IoU, true 90% area, estimated 90% area, trace r)} over the accepted components' matches."""
    from cnmflow.shape_scoring import shape_score

    fit = np.load(estimates)
    accepted = np.setdiff1d(np.arange(len(fit["C"])), fit["idx_components_bad"])
    footprints = fit["footprints"][accepted]
    score = shape_score(truth["footprints"], footprints, truth_traces=truth["calcium"],
                        estimated_traces=fit["C"][accepted])
    return {int(i): (float(iou), int(energy_mask(truth["footprints"][i]).sum()),
                     int(energy_mask(footprints[j]).sum()), float(r))
            for (i, j), iou, r in zip(score.matches, score.ious, score.trace_corrs)}


def report(movie: Path, fits: list[Path]) -> dict:
    truth = np.load(movie.with_suffix(".truth.npz"))
    records = [json.loads(path.read_text()) for path in fits]
    print(f"{'fit':<28}" + "".join(f"{name[:11]:>12}" for name in SUMMARY))
    for path, record in zip(fits, records):
        print(f"{path.name[:27]:<28}" + "".join(f"{record.get(name)!s:>12}" for name in SUMMARY))
    per_fit = [matches(truth, path.with_name(path.name.replace(".fit.json", ".fit.estimates.npz"))) for path in fits]
    base = per_fit[0]
    short = [i for i, (iou, true, est, _) in base.items() if iou < 0.5 and est < SHORT * true]
    large = [i for i, (iou, true, est, _) in base.items() if est > LARGE * true]
    rows = {}
    for name, group in (("short", short), ("too large", large)):
        print(f"{name} in {fits[0].name} ({len(group)}): true, peak SNR, true area | IoU / est area per fit")
        for i in sorted(group, key=lambda i: base[i][0]):
            cells = [f"{m[i][0]:.2f} / {m[i][2]}" if i in m else "unmatched" for m in per_fit]
            rows.setdefault(name, []).append({"true": i, "snr": float(truth["peak_snr"][i]), "area_true": base[i][1],
                                              "fits": [list(m[i]) if i in m else None for m in per_fit]})
            print(f"  t{i:<4} {truth['peak_snr'][i]:5.2f} {base[i][1]:5d} | " + " | ".join(cells))
    return {"fits": [str(path) for path in fits], "summary": [{n: r.get(n) for n in SUMMARY} for r in records],
            "matches": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path, help="the realistic movie (.npy), its .truth.npz beside it")
    parser.add_argument("fits", type=Path, nargs="+", help=".fit.json files; the first is the base")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args(argv)
    out = report(args.movie, args.fits)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
