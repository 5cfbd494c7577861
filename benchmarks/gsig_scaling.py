"""How the 1P (CNMF-E) fit's cost grows with the cell size gSig, with its accuracy alongside (issue #22).

One realistic CA1 movie (256²×1000 @10 Hz, ``realistic_benchmark``'s simulator, cached under the
results folder) is fitted at every gSig asked for (gSiz = 4·gSig + 1, CaImAn's rule; min_corr /
min_pnr fixed at the CA1 benchmark's 0.6 / 7; rf 64, stride 32), each fit in a fresh process with
``n_processes=1`` and one BLAS/FFT thread, so the CPU time is the fit's own: on a shared machine
CPU seconds compare, wall seconds do not. Per fit: wall and CPU time, the CPU time of each stage
of ``fit`` (its stage clock read as CPU time), K, and F1@IoU0.5 / median IoU / median trace r
against the truth (``cnmflow.shape_scoring``). Then one patch job (the central box) at each
``--profile-gsig`` is profiled with ``patch_profile.py`` and the CPU seconds of the patch job's
parts are tabulated side by side.

    .venv/bin/python benchmarks/gsig_scaling.py                             # gSig 2..8, ~20 CPU min
    .venv/bin/python benchmarks/gsig_scaling.py --gsig 3 6 --label after    # two fits
    .venv/bin/python benchmarks/gsig_scaling.py --gsig --profile-gsig 3 6   # only the patch profiles
    .venv/bin/python benchmarks/gsig_scaling.py --gsig 3 6 --profile-gsig --processes 2 --label wall  # default run

Writes ``gsig_scaling_<label>.json`` to the results folder and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import pstats
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realistic_benchmark import CONFIGS, RESULTS, simulate  # noqa: E402

CONFIG = "ca1"
#: the fit parameters besides gSig / gSiz: the CA1 benchmark's, one process
BASE_PARAMS = {**CONFIGS[CONFIG]["params"], "n_processes": 1}
#: the patch job's parts whose cumulative CPU time the profile table shows (file suffix, function)
PARTS = (
    ("patch job", "patch_job/one_photon.py", "fit_patch_corr_pnr"),
    ("  noise + downsample", "patch_job/one_photon.py"),  # the patch job less _fit_downsampled
    ("  corr/PNR init (both passes)", "init/corr_pnr.py", "initialize_corr_pnr"),
    ("    filter + images", "init/corr_pnr.py", "__init__"),
    ("    per-seed init", "init/corr_pnr.py", "_init_one"),
    ("    per-seed removal", "init/corr_pnr.py", "remove"),
    ("  ring fits", "engine/background.py", "fit_ring_model"),
    ("    box residuals", "engine/background.py", "_box_residual"),
    ("    box Gram (or its temporal scores)", "engine/background.py", "_centred_gram", "_centred_scores"),
    ("    ring solves", "engine/background.py", "_solve_block_weights"),
    ("  residual in/out", "patch_job/one_photon.py", "_residual_in_place", "_undo_residual_in_place"),
    ("  HALS refinement", "patch_job/one_photon.py", "_refine"),
)


def gsiz_of(gsig: int) -> int:
    return 4 * int(gsig) + 1


def fit_params(gsig: int, processes: int = 1) -> dict:
    return {**BASE_PARAMS, "gSig": int(gsig), "gSiz": gsiz_of(gsig), "n_processes": int(processes)}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def fit_and_score(movie_path: Path, gsig: int, out: Path, processes: int = 1) -> None:
    """In a fresh process: one fit at ``gsig``, its wall / CPU time (per stage too) and its scores.

    One process pins one BLAS/FFT thread (a worker's setting); more run as a default run does."""
    import cnmflow.engine.fitting as fitting
    from cnmflow.engine import fit
    from cnmflow.engine.threads import use_single_thread
    from cnmflow.params import build_params
    from cnmflow.shape_scoring import shape_score

    if processes == 1:
        use_single_thread()
    fitting.time = types.SimpleNamespace(perf_counter=cpu_seconds)  # fit's stage clock, read as CPU time
    movie = np.load(movie_path, mmap_mode="r")
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    params = fit_params(gsig, processes)
    wall, cpu = time.perf_counter(), cpu_seconds()
    estimates = fit(movie, build_params(dict(params)))
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    shapes = shape_score(truth["footprints"], estimates.footprints(), truth_traces=truth["calcium"],
                         estimated_traces=estimates.C)
    summary = shapes.summary()
    record = {"gSig": gsig, "gSiz": params["gSiz"], "n_processes": processes, "wall_s": round(wall, 1),
              "cpu_s": round(cpu, 1),
              "stages_cpu_s": {stage: round(seconds, 1) for stage, seconds in estimates.timings.items()},
              "K": estimates.K, "n_true": summary["n_true"], "f1_iou50": round(summary["f1_iou50"], 3),
              "median_iou": round(summary["median_iou"], 3),
              "median_trace_corr": round(summary["median_trace_corr"], 3),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    out.write_text(json.dumps(record))


def profile_patch(movie_path: Path, gsig: int, label: str) -> dict:
    """One central patch job at ``gsig`` under ``patch_profile.py``: its CPU time and its parts'."""
    stats_path = RESULTS / f"gsig_scaling_{label}_patch_g{gsig}.pstats"
    settings = [f"{name}={json.dumps(value)}" for name, value in fit_params(gsig).items() if name != "n_processes"]
    subprocess.run([sys.executable, str(Path(__file__).with_name("patch_profile.py")), "--movie", str(movie_path),
                    "--boxes", "1", "--pstats", str(stats_path), "--set", *settings], check=True)
    return part_seconds(pstats.Stats(str(stats_path)))


def part_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative CPU seconds of each of ``PARTS`` (summed over the functions a part names)."""
    cumulative = {}
    for (filename, _, function), (_, _, _, cum, _) in stats.stats.items():
        cumulative[(filename, function)] = cumulative.get((filename, function), 0.0) + cum
    parts = {}
    for name, suffix, *functions in PARTS:
        found = [seconds for (filename, function), seconds in cumulative.items()
                 if filename.endswith(suffix) and function in functions]
        parts[name.strip()] = round(sum(found), 2)
    parts["noise + downsample"] = round(parts["patch job"] - _cumulative(cumulative, "_fit_downsampled"), 2)
    return parts


def _cumulative(cumulative: dict, function: str) -> float:
    return sum(seconds for (_, name), seconds in cumulative.items() if name == function)


def print_tables(fits: list[dict], profiles: dict[str, dict]) -> None:
    if fits:
        stages = list(fits[0]["stages_cpu_s"])
        print(f"{'gSig/gSiz':>10}{'wall s':>8}{'CPU s':>8}" + "".join(f"{s[:14]:>16}" for s in stages)
              + f"{'K':>5}{'F1@.5':>7}{'mIoU':>7}{'trace r':>8}")
        for f in fits:
            print(f"{f['gSig']:>5}/{f['gSiz']:<4}{f['wall_s']:>8}{f['cpu_s']:>8}"
                  + "".join(f"{f['stages_cpu_s'][s]:>16}" for s in stages)
                  + f"{f['K']:>5}{f['f1_iou50']:>7}{f['median_iou']:>7}{f['median_trace_corr']:>8}")
    if profiles:
        print("\npatch job (central box), CPU s by part:")
        print(f"{'':<30}" + "".join(f"{'gSig ' + g:>10}" for g in profiles))
        for name, *_ in PARTS:
            print(f"{name:<30}" + "".join(f"{p[name.strip()]:>10}" for p in profiles.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsig", type=int, nargs="*", default=list(range(2, 9)), help="gSig values to fit")
    parser.add_argument("--profile-gsig", type=int, nargs="*", default=[3, 6], help="gSig values to profile")
    parser.add_argument("--label", default="now", help="names the output file (e.g. before / after)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1,
                        help="n_processes of the fits (1: CPU time of one process and thread; 2: a default run)")
    parser.add_argument("--fit-only", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit_only:
        fit_and_score(Path(args.fit_only[0]), int(args.fit_only[1]), Path(args.fit_only[2]), int(args.fit_only[3]))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(Path(__file__).with_name("realistic_benchmark.py")), "--simulate-only",
                    CONFIG, "--seed", str(args.seed)], check=True)
    movie_path = simulate(CONFIG, CONFIGS[CONFIG]["frames"], RESULTS, args.seed)
    fits = []
    for gsig in args.gsig:
        out = RESULTS / f"gsig_scaling_{args.label}_g{gsig}.json"
        subprocess.run([sys.executable, __file__, "--fit-only", str(movie_path), str(gsig), str(out),
                        str(args.processes)], check=True)
        fits.append(json.loads(out.read_text()))
        print(json.dumps(fits[-1]), flush=True)
    profiles = {str(g): profile_patch(movie_path, g, args.label) for g in args.profile_gsig}
    (RESULTS / f"gsig_scaling_{args.label}.json").write_text(json.dumps({"fits": fits, "patch_profiles": profiles},
                                                                         indent=1))
    print_tables(fits, profiles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
