"""auto's gSig choice and values on the 256² realistic movies as a run reads them (the sample a run takes: the
middle block of at most ``SAMPLE_BYTES``, tsub 2, then ``estimate_from_movie``; runs do not read ``.npy``), for whichever ``cnmflow`` is first on PYTHONPATH: the radius and its error against the true cells'
median half-max radius, the factor taken and the margins' argmax, each factor's margin and bootstrap share, the
values and the estimate's CPU. No fits: run it on main and on a branch and ``--diff`` the two files to list the
movies an estimator change moves (issue #18, h18mode). Seeds 1–9 from ``/work/movies``, 10–12 from
``/work/movies_fresh``; seeds ≥ 13 are the lead's fresh check and are not read here.

    PYTHONPATH=/work/main .venv/bin/python benchmarks/auto_values_256.py --out results/values256_main.json
    PYTHONPATH=. .venv/bin/python benchmarks/auto_values_256.py --out results/values256_branch.json
    .venv/bin/python benchmarks/auto_values_256.py --diff results/values256_main.json results/values256_branch.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import TSUB, median_true_radius  # noqa: E402

FOLDERS = {range(1, 10): Path("/work/movies"), range(10, 13): Path("/work/movies_fresh")}
CONFIGS = ("ca1_256x256x1000", "cortex_l23_256x256x1200")


def movie_paths(seeds: list[int]) -> list[Path]:
    """The realistic movies of both configurations at ``seeds`` (none ≥ 13)."""
    paths = []
    for seed in seeds:
        folder = next((f for span, f in FOLDERS.items() if seed in span), None)
        if folder is None:
            raise SystemExit(f"seed {seed}: only seeds 1–12 are read here")
        paths += [folder / f"realistic_{config}_seed{seed}.npy" for config in CONFIGS]
    return paths


def record(path: Path) -> dict:
    """The estimate's gSig choice, values and CPU on one movie."""
    from types import SimpleNamespace

    from cnmflow.auto_params import estimate_from_movie
    from cnmflow.auto_params.sample import MAX_SAMPLE_FRAMES, SAMPLE_BYTES

    frames = np.load(path, mmap_mode="r")
    n_out = int(min(MAX_SAMPLE_FRAMES, SAMPLE_BYTES // (4 * frames[0].size), len(frames) // TSUB))
    first = (len(frames) - n_out * TSUB) // 2
    block = np.asarray(frames[first:first + n_out * TSUB], dtype=np.float32)
    sample = block.reshape(n_out, TSUB, *block.shape[1:]).mean(axis=1, dtype=np.float32)
    started = time.process_time()
    est = estimate_from_movie(sample, tsub=TSUB, ssub=1, n_movie_frames=len(frames) // TSUB)
    cpu = time.process_time() - started
    with np.load(path.with_suffix(".truth.npz")) as z:
        truth_r = median_true_radius(SimpleNamespace(footprints=z["footprints"]))
    choice = est.gsig_choice
    return {"movie": path.stem, "radius": round(est.radius.radius, 2), "err": round(est.radius.radius / truth_r - 1, 3),
            "n_visible": int(est.radius.n_visible), "factor": choice.factor, "argmax": choice.argmax_factor(),
            "margins": [round(m, 3) for m in choice.margins], "wins": [round(w, 3) for w in choice.wins],
            "values": [est.gSig, est.min_corr, est.min_pnr], "cpu_s": round(cpu, 2)}


def diff(before: Path, after: Path) -> int:
    """Print the movies whose values differ, with each side's factor and the bootstrap's shares."""
    old = {r["movie"]: r for r in json.loads(before.read_text())["runs"]}
    new = {r["movie"]: r for r in json.loads(after.read_text())["runs"]}
    moved = [name for name in old if name in new and old[name]["values"] != new[name]["values"]]
    for name in moved:
        print(f"{name:<42} wins {new[name]['wins']} margins {new[name]['margins']}  k {old[name]['factor']:g} → "
              f"{new[name]['factor']:g}  values {old[name]['values']} → {new[name]['values']}")
    print(f"{len(moved)} of {len(set(old) & set(new))} movies moved")
    return 0


def main(argv: list[str] | None = None) -> int:
    import cnmflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--diff", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 13)))
    args = parser.parse_args(argv)
    if args.diff:
        return diff(*args.diff)
    if args.out is None:
        parser.error("--out or --diff")
    records = []
    for path in movie_paths(args.seeds):
        records.append(record(path))
        print(json.dumps(records[-1]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cnmflow": cnmflow.__file__, "runs": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
