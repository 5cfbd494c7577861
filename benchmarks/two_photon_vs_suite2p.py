"""cnmflow's 2P fit against suite2p on the same simulated movie: time, CPU and accuracy; and where
cnmflow's CPU time goes (``--profile``).

The movie is the engine benchmark's 2P case (``engine_benchmark.simulate``: Gaussian neurons,
rank-2 background, 30 Hz, decay 0.4 s), cached under ``benchmarks/results``. cnmflow fits it with
``engine_benchmark``'s 2P parameters in a fresh process; suite2p (a separate installation, never a
dependency of cnmflow) runs on a TIFF copy of it in a subprocess of its own Python, without
registration, with ``tau``/``fs``/``diameter`` matched to the simulation. Both are scored against
the ground truth with ``cnmflow.scoring.score`` (F1, median trace r) and
``cnmflow.shape_scoring.shape_score`` (F1 at IoU 0.5). CPU time counts every process a run starts.

    .venv/bin/python benchmarks/two_photon_vs_suite2p.py                     # both, 256x256x2000:60
    .venv/bin/python benchmarks/two_photon_vs_suite2p.py --no-suite2p        # cnmflow only
    .venv/bin/python benchmarks/two_photon_vs_suite2p.py --profile 30        # per-stage CPU table + cProfile
    CNMFLOW_BENCH_SUITE2P_PYTHON=/path/to/python ... or --suite2p-python /path/to/python

suite2p installs into a virtual environment of its own (it brings torch):
``python3 -m venv /tmp/s2p && /tmp/s2p/bin/pip install torch==2.13.0 suite2p``; without one
(default ``/tmp/s2p/bin/python``) it is skipped with a message. ``--profile`` fits with one process
and one BLAS/FFT thread, so its CPU seconds are the algorithm's own (a shared machine changes wall
time, far less CPU time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_benchmark import DEFAULT_PARAMS, RESULTS, simulate  # noqa: E402

SUITE2P_PYTHON = "/tmp/s2p/bin/python"
#: The simulation's 2P settings (engine_benchmark.simulate): frame rate, decay time, neuron sd.
FR, DECAY_TIME, GSIG = 30.0, 0.4, 4.0
#: suite2p's cell diameter: the width of a Gaussian neuron of sd GSIG at ~30% of its peak.
DIAMETER = 3 * GSIG
#: Neuropil coefficients the suite2p traces are scored with (0.7: suite2p's default).
NEUROPIL_COEFFICIENTS = (0.7, 1.0)
#: Functions whose cumulative CPU time the profile table shows (name, defining file's tail).
PROFILED = [
    ("run_patch_jobs", "executors.py"), ("fit_patch_low_rank", "two_photon.py"),
    ("_noise_and_downsampled", "two_photon.py"), ("pixel_noise", "noise.py"),
    ("downsample_in_chunks", "box_io.py"), ("initialize_greedy_roi", "greedy_roi.py"),
    ("_pixel_scale", "greedy_roi.py"), ("_smooth_background", "greedy_roi.py"), ("_residual", "greedy_roi.py"),
    ("__init__", "greedy_roi.py"), ("_greedy_components", "greedy_roi.py"), ("subtract", "greedy_roi.py"),
    ("_rank1", "greedy_roi.py"), ("fit_background", "low_rank.py"), ("refine_hals", "low_rank.py"),
    ("correlation_pnr", "summary_images.py"), ("_patches_on_the_field_of_view", "fitting.py"),
    ("settle_traces", "low_rank_background.py"), ("merge_duplicates", "merging.py"), ("_merge", "fitting.py"),
    ("_full_rate_traces", "fitting.py"), ("solve_traces", "traces.py"), ("refine_footprints", "traces.py"),
    ("deconvolve_traces", "deconvolution.py"), ("evaluate_components", "quality.py"),
]

SUITE2P_SCRIPT = r"""
import json, sys, time, numpy as np
tiff, folder, out, settings_json = sys.argv[1:5]
from suite2p import default_settings, default_db, run_s2p
settings = default_settings()
for key, value in json.loads(settings_json).items():
    if isinstance(value, dict):
        settings[key].update(value)
    else:
        settings[key] = value
db = {**default_db(), "data_path": [str(__import__("pathlib").Path(tiff).parent)], "file_list": [tiff],
      "save_path0": folder, "fast_disk": folder, "force_sktiff": True}
started = time.perf_counter()
run_s2p(db=db, settings=settings)
wall = time.perf_counter() - started
plane = __import__("pathlib").Path(folder) / "suite2p" / "plane0"
stat = np.load(plane / "stat.npy", allow_pickle=True)
settings_out = np.load(plane / "ops.npy", allow_pickle=True).item()
Ly, Lx = settings_out["Ly"], settings_out["Lx"]
footprints = np.zeros((len(stat), Ly, Lx), np.float32)
for k, s in enumerate(stat):
    footprints[k, s["ypix"], s["xpix"]] = s["lam"]
np.savez(out, footprints=footprints, F=np.load(plane / "F.npy"), Fneu=np.load(plane / "Fneu.npy"),
         spks=np.load(plane / "spks.npy"), iscell=np.load(plane / "iscell.npy"), wall=wall)
"""


def suite2p_settings(diameter: float = DIAMETER, *, fs: float = FR, tau: float = DECAY_TIME) -> dict:
    """suite2p's settings for the simulated movie: no registration, its rate, decay and cell size."""
    return {"torch_device": "cpu", "fs": fs, "tau": tau, "diameter": [diameter, diameter],
            "run": {"do_registration": 0, "do_regmetrics": False}, "io": {"save_ops_orig": True}}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def accuracy(truth, footprints, traces) -> dict:
    """F1, precision, recall, median trace r (cnmflow.scoring) and F1 at IoU 0.5 (shape_scoring)."""
    from cnmflow.scoring import score
    from cnmflow.shape_scoring import shape_score

    kwargs = dict(truth_traces=truth["calcium"], estimated_traces=traces)
    found = score(truth["footprints"], footprints, **kwargs)
    shapes = shape_score(truth["footprints"], footprints, **kwargs)
    return {"K": int(found.n_estimated), "precision": round(found.precision, 3), "recall": round(found.recall, 3),
            "f1": round(found.f1, 3), "median_trace_corr": round(float(found.median_trace_corr), 3),
            "f1_iou50": round(shapes.f1_iou50, 3)}


def fit_params(n_processes: int) -> dict:
    from cnmflow.params import PRESETS

    params = {**DEFAULT_PARAMS["2p"], "n_processes": n_processes}
    return {**PRESETS[params.pop("preset")], **params}


def run_cnmflow(movie_path: Path, out: Path, n_processes: int) -> None:
    """In a fresh process: fit, time (wall; CPU of this process and its workers), score."""
    from cnmflow.engine import fit
    from cnmflow.params import build_params

    movie = np.load(movie_path, mmap_mode="r")
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    params = build_params(fit_params(n_processes))
    main_cpu, workers_cpu, started = time.process_time(), children_cpu(), time.perf_counter()
    estimates = fit(movie, params)
    wall = time.perf_counter() - started
    main_cpu, workers_cpu = time.process_time() - main_cpu, children_cpu() - workers_cpu
    record = {"tool": "cnmflow", "wall_s": round(wall, 2), "cpu_s": round(main_cpu + workers_cpu, 2),
              "cpu_main_s": round(main_cpu, 2), "cpu_workers_s": round(workers_cpu, 2), "n_processes": n_processes,
              "stages_wall_s": {k: round(v, 2) for k, v in estimates.timings.items()},
              **accuracy(truth, estimates.footprints(), estimates.C)}
    out.write_text(json.dumps(record))


def profile_cnmflow(movie_path: Path, out: Path, top: int) -> None:
    """In a fresh process: the fit with one process and one thread under cProfile (CPU timer)."""
    import cProfile
    import pstats

    from cnmflow.engine import fit
    from cnmflow.engine.threads import use_single_thread
    from cnmflow.params import build_params

    use_single_thread()
    movie = np.load(movie_path, mmap_mode="r")
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    params = build_params(fit_params(1))
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    estimates = profiler.runcall(fit, movie, params)
    cpu = time.process_time() - started
    stats = pstats.Stats(profiler)
    stages = {f"{name} ({tail})": round(stage_cpu(stats, name, tail), 2) for name, tail in PROFILED}
    record = {"tool": "cnmflow profile", "cpu_s": round(cpu, 2), "stages_cpu_s": stages,
              **accuracy(truth, estimates.footprints(), estimates.C)}
    out.write_text(json.dumps(record))
    profiler.dump_stats(str(out.with_suffix(".pstats")))
    if top:
        stats.sort_stats("tottime").print_stats(top)


def stage_cpu(stats, name: str, tail: str) -> float:
    """Cumulative CPU seconds of the function ``name`` defined in a file ending in ``tail``."""
    return sum(row[3] for (path, _, function), row in stats.stats.items()
               if function == name and path.endswith(tail))


def run_suite2p(movie_path: Path, python: str, out: Path, diameter: float = DIAMETER, *, fs: float = FR,
                tau: float = DECAY_TIME) -> dict | None:
    """suite2p on a TIFF copy of the movie, in its own Python; None (with a message) without one.

    The movie's ``.truth.npz`` holds ``footprints`` and ``calcium`` (engine_benchmark, realistic_2p_benchmark)."""
    if not Path(python).exists():
        print(f"suite2p skipped: no Python at {python} (see the module docstring to install one)")
        return None
    import shutil

    from cnmflow.synthetic.writers import write_tiff

    tiff = movie_path.with_name(movie_path.stem + "_tiff") / (movie_path.stem + ".tif")
    if not tiff.exists():
        tiff.parent.mkdir(exist_ok=True)
        write_tiff(tiff, np.load(movie_path, mmap_mode="r"), fr=fs)
    folder = movie_path.with_name(movie_path.stem + "_suite2p")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    cpu, started = children_cpu(), time.perf_counter()
    subprocess.run([python, "-c", SUITE2P_SCRIPT, str(tiff), str(folder), str(out),
                    json.dumps(suite2p_settings(diameter, fs=fs, tau=tau))], check=True)
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    saved = np.load(out)
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    cells = saved["iscell"][:, 0] > 0
    record = {"tool": "suite2p", "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "diameter": diameter,
              "pipeline_wall_s": round(float(saved["wall"]), 2)}
    # suite2p's neuropil-corrected fluorescence with its default coefficient, and with 1 (the
    # simulation has no neuropil: the surround holds only the smooth background)
    for coefficient in NEUROPIL_COEFFICIENTS:
        traces = saved["F"] - coefficient * saved["Fneu"]
        record[f"all_rois F-{coefficient}Fneu"] = accuracy(truth, saved["footprints"], traces)
        record[f"iscell F-{coefficient}Fneu"] = accuracy(truth, saved["footprints"][cells], traces[cells])
    return record


def in_fresh_process(script: Path, *arguments: str) -> None:
    subprocess.run([sys.executable, str(script), *arguments], check=True)


def print_table(records: list[dict]) -> None:
    print(f"{'run':<32}{'wall s':>8}{'CPU s':>8}{'K':>5}{'P':>7}{'R':>7}{'F1':>7}{'F1@.5':>7}{'r':>7}")
    for record in records:
        rows = ([(record["tool"], record)] if "f1" in record else
                [(f"{record['tool']} {part}", value) for part, value in record.items() if isinstance(value, dict)])
        for label, a in rows:
            print(f"{label:<32}{record.get('wall_s', '-'):>8}{record['cpu_s']:>8}{a['K']:>5}{a['precision']:>7}"
                  f"{a['recall']:>7}{a['f1']:>7}{a['f1_iou50']:>7}{a['median_trace_corr']:>7}")
    for record in records:
        if "pipeline_wall_s" in record:
            print(f"suite2p: {record['pipeline_wall_s']} s in run_s2p, the rest of its wall time is Python and torch "
                  "starting")
        if "cpu_main_s" in record:
            print(f"{record['tool']} CPU s: main process {record['cpu_main_s']}, worker processes "
                  f"{record['cpu_workers_s']}")
        for key in ("stages_wall_s", "stages_cpu_s"):
            if key in record:
                print(f"{record['tool']} {key}:")
                for stage, seconds in record[key].items():
                    print(f"  {stage:<52}{seconds:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256x2000:60", help="ROWSxCOLSxFRAMES:NEURONS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-processes", type=int, default=DEFAULT_PARAMS["2p"]["n_processes"])
    parser.add_argument("--suite2p-python", default=os.environ.get("CNMFLOW_BENCH_SUITE2P_PYTHON", SUITE2P_PYTHON),
                        help="the Python of suite2p's own environment (env CNMFLOW_BENCH_SUITE2P_PYTHON)")
    parser.add_argument("--diameter", type=float, default=DIAMETER, help="suite2p's cell diameter in pixels")
    parser.add_argument("--no-suite2p", action="store_true", help="fit with cnmflow only")
    parser.add_argument("--no-cnmflow", action="store_true", help="run suite2p only")
    parser.add_argument("--profile", type=int, metavar="N", help="profile cnmflow instead (one process, one "
                                                                 "thread): per-stage CPU and cProfile's top N")
    parser.add_argument("--job", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        kind, movie, out = args.job
        if kind == "fit":
            run_cnmflow(Path(movie), Path(out), args.n_processes)
        else:
            profile_cnmflow(Path(movie), Path(out), int(kind.split(":")[1]))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    in_fresh_process(Path(__file__).with_name("engine_benchmark.py"), "--simulate-only", args.size,
                     "--seed", str(args.seed), "--kind", "2p")
    movie_path = simulate(args.size, RESULTS, args.seed, "2p")
    records = []
    if args.profile is not None:
        out = RESULTS / f"{movie_path.stem}.profile.json"
        in_fresh_process(Path(__file__), "--job", f"profile:{args.profile}", str(movie_path), str(out))
        records.append(json.loads(out.read_text()))
    elif not args.no_cnmflow:
        out = RESULTS / f"{movie_path.stem}.cnmflow.json"
        in_fresh_process(Path(__file__), "--job", "fit", str(movie_path), str(out), "--n-processes", str(args.n_processes))
        records.append(json.loads(out.read_text()))
    if args.profile is None and not args.no_suite2p:
        suite2p = run_suite2p(movie_path, args.suite2p_python, RESULTS / f"{movie_path.stem}.suite2p.npz",
                              args.diameter)
        records += [suite2p] if suite2p else []
    (RESULTS / "two_photon_vs_suite2p.json").write_text(json.dumps(records, indent=1))
    print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
