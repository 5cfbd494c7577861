"""auto's radius and values as a run reads them (TIFF → ``estimate_parameters``, tsub 2) on 75 movies, for whichever
``cnmflow`` is first on PYTHONPATH: run it once on main and once on a branch, and ``--diff`` the two files to see
which movies an estimator change moves at all (issue #18, h17lowsnr). The movies: pnr_ceiling.py's 32 training
movies, CA1 / cortex SNR 1–4 at fresh training seeds 81–90, held-out cortex SNR 0.8–3 s14 / 34 / 38 and the held-out
configurations at seeds 51–70. No fits (~4 min). ``--movies fresh91``: CA1 / cortex SNR 1–4 at seeds 91–100
(h18reach's fresh training check); ``--movies held71``: the held-out configurations at seeds 71–90 (``held121``: at
121–140, h18mode's final check; ``held141``: at 141–160, h18gsizr's; ``fresh101`` / ``held161``: seeds 101–110 /
161–180, h18blob's; ``fresh111`` / ``held181``: seeds 111–120 / 181–200, h20radius's; ``held201``: seeds 201–220,
h21kstep's; ``held221`` / ``held241`` / ``held261`` / ``held281``: seeds 221–240 / 241–260 / 261–280 / 281–300,
auto_grid_replicates.py's). A record holds gSiz too (older files without it took gsiz_for(gSig)). ``--fit BEFORE
AFTER``: fit both files' values on each movie whose values differ (F1@0.5, F1, K; ~1 min a movie). ``--realistic
[SEED ...]``: the 256² realistic movies of both configurations instead (seeds 1–12, from ``/work/movies*``; no
fits), read from the sample a run takes (the middle block of at most ``SAMPLE_BYTES``, tsub 2, then
``estimate_from_movie``: runs do not read ``.npy``), with gSig's factor, the margins' argmax, each factor's margin
and bootstrap share (h18mode's ``auto_values_256.py``, folded in here).

    PYTHONPATH=/work/main .venv/bin/python benchmarks/auto_values_check.py --out results/values_main.json
    PYTHONPATH=. .venv/bin/python benchmarks/auto_values_check.py --out results/values_branch.json
    .venv/bin/python benchmarks/auto_values_check.py --diff results/values_main.json results/values_branch.json
    PYTHONPATH=. .venv/bin/python benchmarks/auto_values_check.py --fit results/values_main.json results/values_branch.json --out results/fits.json
    PYTHONPATH=. .venv/bin/python benchmarks/auto_values_check.py --realistic --out results/values256_branch.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (HELD_OUT, MOVIES, TSUB, estimate_auto, fit_and_score, fit_params,  # noqa: E402
                                   median_true_radius, reseeded, save_runs, simulate)
from pnr_ceiling import TRAINING  # noqa: E402


def movies() -> list:
    """The 75 movies: training (32 + 20 fresh low-SNR), then held out (3 read before + 20 fresh)."""
    extra = [m for s in range(81, 91) for m in reseeded(MOVIES, [s] * 4) if "peak_snr" in m.overrides]
    held = [reseeded(HELD_OUT, [s] * 4)[3] for s in (14, 34, 38)] + list(reseeded(HELD_OUT, list(range(51, 71))))
    return list(TRAINING) + extra + held


#: Sets besides the 75 (``--movies``): fresh seeds no estimator change was tuned on.
EXTRA_SETS = {
    "fresh91": lambda: [m for s in range(91, 101) for m in reseeded(MOVIES, [s] * 4) if "peak_snr" in m.overrides],
    "held71": lambda: list(reseeded(HELD_OUT, list(range(71, 91)))),
    "held121": lambda: list(reseeded(HELD_OUT, list(range(121, 141)))),  # h18mode's one-shot check
    "held141": lambda: list(reseeded(HELD_OUT, list(range(141, 161)))),  # h18gsizr's one-shot check
    "fresh101": lambda: [m for s in range(101, 111) for m in reseeded(MOVIES, [s] * 4) if "peak_snr" in m.overrides],
    "held161": lambda: list(reseeded(HELD_OUT, list(range(161, 181)))),  # h18blob's one-shot checks
    "fresh111": lambda: [m for s in range(111, 121) for m in reseeded(MOVIES, [s] * 4) if "peak_snr" in m.overrides],
    "held181": lambda: list(reseeded(HELD_OUT, list(range(181, 201)))),  # h20radius's one-shot checks
    "held201": lambda: list(reseeded(HELD_OUT, list(range(201, 221)))),  # h21kstep's one-shot check
    "held221": lambda: list(reseeded(HELD_OUT, list(range(221, 241)))),  # the 128² bar with replicates (session 26)
    "held241": lambda: list(reseeded(HELD_OUT, list(range(241, 261)))),  # its fresh check (read: session 27)
    "held261": lambda: list(reseeded(HELD_OUT, list(range(261, 281)))),  # FAINT_MIN_SCALE's check (read: session 28)
    "held281": lambda: list(reseeded(HELD_OUT, list(range(281, 301)))),  # the next change's check (fitted, unread)
}


def run_values(run: dict) -> list:
    """A record's [gSig, min_corr, min_pnr, gSiz]; files written before gSiz was recorded took gsiz_for(gSig)."""
    from cnmflow.auto_params import gsiz_for

    return [*run["values"][:3], run.get("gSiz", gsiz_for(run["values"][0]))]


def fit_moved(before: Path, after: Path, out: Path) -> int:
    """Fit both files' auto values (their gSiz) on every movie whose values or gSiz differ."""
    old = {r["movie"]: r for r in json.loads(before.read_text())["runs"]}
    new = {r["movie"]: r for r in json.loads(after.read_text())["runs"]}
    pool = movies() + [m for make in EXTRA_SETS.values() for m in make()]
    records = []
    for movie in pool:
        name = movie.name
        if name not in old or name not in new or run_values(old[name]) == run_values(new[name]):
            continue
        sim, record_ = simulate(movie), {"movie": name}
        for label, values in (("before", old[name]), ("after", new[name])):
            gsig, corr, pnr, gsiz = run_values(values)
            record_[label] = {"values": values["values"], "gSiz": gsiz, "err": values["err"],
                              **fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, gsig, gsiz, corr, pnr))}
        print(json.dumps({"movie": name, **{k: [record_[k][f] for f in ("err", "K", "f1_iou50", "f1_score")]
                                            for k in ("before", "after")}}), flush=True)
        records.append(record_)
        save_runs(out, records)
    return 0


def record(movie) -> dict:
    sim = simulate(movie)
    with tempfile.TemporaryDirectory() as folder:
        auto, _ = estimate_auto(sim.movie, Path(folder), repeats=1)
    return {"movie": movie.name, "radius": auto["radius"],
            "err": round(auto["radius"] / median_true_radius(sim.truth) - 1, 3),
            "values": [auto["gSig"], auto["min_corr"], auto["min_pnr"]], "gSiz": auto["gSiz"], "cpu_s": auto["cpu_s"]}


#: Where the 256² realistic movies of ``--realistic`` lie; seeds ≥ 13 were the lead's fresh checks, not read here.
REALISTIC_FOLDERS = {range(1, 10): Path("/work/movies"), range(10, 13): Path("/work/movies_fresh")}
REALISTIC_CONFIGS = ("ca1_256x256x1000", "cortex_l23_256x256x1200")


def realistic_paths(seeds: list[int]) -> list[Path]:
    """The realistic movies of both configurations at ``seeds`` (none ≥ 13)."""
    paths = []
    for seed in seeds:
        folder = next((f for span, f in REALISTIC_FOLDERS.items() if seed in span), None)
        if folder is None:
            raise SystemExit(f"seed {seed}: only seeds 1–12 are read here")
        paths += [folder / f"realistic_{config}_seed{seed}.npy" for config in REALISTIC_CONFIGS]
    return paths


def realistic_record(path: Path) -> dict:
    """The estimate's gSig choice, values and CPU on one realistic movie, from the sample a run takes."""
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
            "values": [est.gSig, est.min_corr, est.min_pnr], "gSiz": est.gSiz, "cpu_s": round(cpu, 2)}


def diff(before: Path, after: Path) -> int:
    """Print the movies whose values differ, and how many do not."""
    old = {r["movie"]: r for r in json.loads(before.read_text())["runs"]}
    new = {r["movie"]: r for r in json.loads(after.read_text())["runs"]}
    moved = [name for name in old if name in new and run_values(old[name]) != run_values(new[name])]
    for name in moved:
        factor = (f"  k {old[name]['factor']:g} → {new[name]['factor']:g} (wins {new[name]['wins']})"
                  if "factor" in old[name] and "factor" in new[name] else "")
        print(f"{name:<58} radius err {old[name]['err']:+.3f} → {new[name]['err']:+.3f}  "
              f"values (gSig, min_corr, min_pnr, gSiz) {run_values(old[name])} → {run_values(new[name])}{factor}")
    print(f"{len(moved)} of {len(set(old) & set(new))} movies moved")
    return 0


def main(argv: list[str] | None = None) -> int:
    import cnmflow

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--diff", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--fit", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--movies", choices=sorted(EXTRA_SETS), help="another set instead of the 75")
    parser.add_argument("--realistic", type=int, nargs="*", metavar="SEED",
                        help="the 256² realistic movies at these seeds (all of 1–12 when none given) instead")
    args = parser.parse_args(argv)
    if args.diff:
        return diff(*args.diff)
    if args.out is None:
        parser.error("--out or --diff")
    if args.fit:
        return fit_moved(*args.fit, args.out)
    records = []
    if args.realistic is not None:
        pool, make = realistic_paths(args.realistic or list(range(1, 13))), realistic_record
    else:
        pool, make = (EXTRA_SETS[args.movies]() if args.movies else movies()), record
    for movie in pool:
        records.append(make(movie))
        print(json.dumps(records[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cnmflow": cnmflow.__file__, "runs": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
