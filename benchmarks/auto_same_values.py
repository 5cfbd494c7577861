"""Did a change to auto's estimate change what it returns? Record every field of the estimate on fixed movies, then
compare; and time the estimate of two checkouts side by side (issue #18: auto ≤ 10% of the extraction).

The movies (``MOVIE_SETS``): h18fresh's twelve 128²×800 ones (held-out configurations seeds 31–38, training ones
41–44), the benchmark's four training movies (``auto_params_benchmark.MOVIES``) and two 256² realistic movies from
``/work/movies``; each written once as a float32 TIFF under ``results/auto_values/`` and estimated as a run reads it
(TIFF → ``estimate_parameters``, tsub 2). ``record`` pickles every field of each :class:`AutoEstimate` (arrays,
floats, the nested radius / cut / gSig-choice records) with its printed reasons; ``compare`` estimates again and
exits 1 where any field differs in type, shape or any bit. ``time`` runs each checkout's estimate in a fresh
process per movie (``--repeats`` estimates, CPU = user + sys, and wall), checkouts interleaved movie by movie, and
prints the first (cold) and the least CPU of each; ``fits`` measures the auto fit's CPU and wall (parameters as
``auto_params_benchmark.fit_params`` sets them, n_processes 2; the 256² movies with ``realistic_benchmark.py``'s
configuration).

    .venv/bin/python benchmarks/auto_same_values.py record  /tmp/before.pkl     # on the old commit
    .venv/bin/python benchmarks/auto_same_values.py compare /tmp/before.pkl     # on the new one
    .venv/bin/python benchmarks/auto_same_values.py time --checkouts /tmp/old /work/wt/new --out results/t.json
    .venv/bin/python benchmarks/auto_same_values.py fits --out results/fits.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (HELD_OUT, MOVIES, RESULTS, TSUB, fit_params, process_tree_cpu,  # noqa: E402
                                   reseeded, save_runs, simulate)

FOLDER = RESULTS / "auto_values"
REALISTIC = Path("/work/movies")
#: name -> movie: "fresh" (h18fresh's twelve), "training" (the benchmark's four), "256" (two realistic 256² movies).
MOVIE_SETS = {
    "fresh": reseeded(HELD_OUT, list(range(31, 39))) + reseeded(MOVIES, list(range(41, 45))),
    "training": MOVIES,
    "256": ("realistic_ca1_256x256x1000_seed1", "realistic_cortex_l23_256x256x1200_seed1"),
}


def movie_names(sets: list[str]) -> list[str]:
    """The names of the movies in ``sets``, in order."""
    return [m if isinstance(m, str) else m.name for s in sets for m in MOVIE_SETS[s]]


def tiff_of(name: str) -> Path:
    """The movie's TIFF (written on first use: simulated, or the realistic .npy copied)."""
    import tifffile

    path = FOLDER / f"{name}.tif"
    if path.exists():
        return path
    FOLDER.mkdir(parents=True, exist_ok=True)
    movie = next((m for s in ("fresh", "training") for m in MOVIE_SETS[s] if m.name == name), None)
    frames = simulate(movie).movie if movie is not None else np.load(REALISTIC / f"{name}.npy", mmap_mode="r")
    tifffile.imwrite(path.with_suffix(".part"), np.asarray(frames, np.float32))
    path.with_suffix(".part").rename(path)
    return path


def estimate(name: str):
    """auto's estimate of the movie as a run makes it: from its TIFF, tsub 2."""
    from cnmflow.auto_params import estimate_parameters

    return estimate_parameters([tiff_of(name)], tsub=TSUB, ssub=1)


def plain(value):
    """A dataclass tree as dicts, arrays and builtins (no class of either checkout needed to read it back)."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def fields_of(est) -> dict:
    """Every field of an estimate, with the reasons it prints and its values."""
    return {**plain(est), "reasons": est.reasons(), "values": est.values()}


def differences(old, new, where: str = "") -> list[str]:
    """Where ``new`` differs from ``old``: type, shape, dtype or any bit (NaNs at the same places are equal)."""
    if isinstance(old, dict):
        if not isinstance(new, dict) or old.keys() != new.keys():
            return [f"{where}: keys {sorted(old)} vs {sorted(new) if isinstance(new, dict) else type(new)}"]
        return [d for key in old for d in differences(old[key], new[key], f"{where}.{key}")]
    if isinstance(old, (list, tuple)):
        if type(old) is not type(new) or len(old) != len(new):
            return [f"{where}: {old!r} vs {new!r}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(old, np.ndarray):
        if not isinstance(new, np.ndarray) or old.dtype != new.dtype or old.shape != new.shape:
            return [f"{where}: array {old.dtype}{old.shape} vs {getattr(new, 'dtype', type(new))}{getattr(new, 'shape', '')}"]
        same = np.array_equal(old.view(np.uint8), new.view(np.uint8)) if old.dtype != object else \
            all(not differences(a, b) for a, b in zip(old.ravel(), new.ravel()))
        return [] if same else [f"{where}: {int(np.sum(old != new))} of {old.size} values differ, "
                                f"largest {np.nanmax(np.abs(old.astype(float) - new.astype(float))):.3g}"]
    if type(old) is not type(new):
        return [f"{where}: {type(old).__name__} {old!r} vs {type(new).__name__} {new!r}"]
    if isinstance(old, float):
        return [] if np.float64(old).tobytes() == np.float64(new).tobytes() else [f"{where}: {old!r} vs {new!r}"]
    return [] if old == new else [f"{where}: {old!r} vs {new!r}"]


def record(path: Path, sets: list[str]) -> int:
    """Pickle every field of each movie's estimate to ``path``."""
    out = {}
    for name in movie_names(sets):
        out[name] = fields_of(estimate(name))
        print(name, out[name]["values"], flush=True)
    path.write_bytes(pickle.dumps(out))
    return 0


def compare(path: Path, sets: list[str]) -> int:
    """Estimate again and report each movie identical or where it differs; 1 if any differs."""
    before, failed = pickle.loads(path.read_bytes()), 0
    for name in movie_names(sets):
        if name not in before:
            continue
        found = differences(before[name], fields_of(estimate(name)))
        failed += bool(found)
        print(f"{name}: {'identical' if not found else 'DIFFERS'}", *found[:20], sep="\n  ", flush=True)
    return 1 if failed else 0


def cpu_of_estimates(name: str, repeats: int) -> list[float]:
    """CPU (user + sys) of ``repeats`` estimates in this process, the first a cold one (as a run meets it)."""
    seconds, wall = [], []
    for _ in range(repeats):
        started, clock = time.process_time(), time.perf_counter()
        est = estimate(name)
        seconds.append(round(time.process_time() - started, 4))
        wall.append(round(time.perf_counter() - clock, 4))
    print(json.dumps({"cpu": seconds, "wall": wall, "values": est.values()}))
    return seconds


def time_checkouts(checkouts: list[Path], sets: list[str], repeats: int, out: Path) -> int:
    """Each checkout's estimate CPU per movie, a fresh process each, checkouts interleaved movie by movie."""
    runs = []
    for name in movie_names(sets):
        tiff_of(name)
        for checkout in checkouts:
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            done = subprocess.run([sys.executable, __file__, "_one", name, "--repeats", str(repeats)], env=env,
                                  capture_output=True, text=True, check=True)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append({"movie": name, "checkout": str(checkout), **got, "least": min(got["cpu"])})
            print(json.dumps(runs[-1]), flush=True)
            out.write_text(json.dumps({"repeats": repeats, "runs": runs}, indent=1))
    return 0


def fits(sets: list[str], out: Path) -> int:
    """The auto fit's CPU per movie (this checkout's estimate gives the values)."""
    from cnmflow.engine import fit
    from cnmflow.params import build_params

    runs = []
    for name in movie_names(sets):
        est = estimate(name)
        movie = next((m for s in ("fresh", "training") for m in MOVIE_SETS[s] if m.name == name), None)
        params = (fit_params(movie.fr, est.gSig, est.gSiz, est.min_corr, est.min_pnr) if movie is not None
                  else realistic_params(name, est))
        frames = np.load(REALISTIC / f"{name}.npy", mmap_mode="r") if movie is None else simulate(movie).movie
        cpu, clock = process_tree_cpu(), time.perf_counter()
        result = fit(frames, build_params(params))
        runs.append({"movie": name, "values": est.values(), "K": int(result.K), "fit_cpu_s": round(process_tree_cpu() - cpu, 2),
                     "fit_wall_s": round(time.perf_counter() - clock, 2)})
        print(json.dumps(runs[-1]), flush=True)
        save_runs(out, runs)
    return 0


def realistic_params(name: str, est) -> dict:
    """realistic_benchmark.py's fit parameters for a 256² movie, with auto's four values."""
    from realistic_benchmark import CONFIGS

    params = dict(CONFIGS["ca1" if "_ca1_" in name else "cortex_l23"]["params"])
    params.update(gSig=est.gSig, gSiz=est.gSiz, min_corr=est.min_corr, min_pnr=est.min_pnr)
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("record", "compare", "time", "fits", "_one"))
    parser.add_argument("target", nargs="?", help="record/compare: the pickle; _one: the movie")
    parser.add_argument("--sets", nargs="+", default=list(MOVIE_SETS), choices=list(MOVIE_SETS))
    parser.add_argument("--checkouts", nargs="+", type=Path, help="time: the checkouts to interleave")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "record":
        return record(Path(args.target), args.sets)
    if args.command == "compare":
        return compare(Path(args.target), args.sets)
    if args.command == "_one":
        cpu_of_estimates(args.target, args.repeats)
        return 0
    if args.command == "time":
        return time_checkouts(args.checkouts, args.sets, args.repeats, args.out or RESULTS / "auto_values_time.json")
    return fits(args.sets, args.out or RESULTS / "auto_values_fits.json")


if __name__ == "__main__":
    sys.exit(main())
