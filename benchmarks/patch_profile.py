"""CPU time and peak memory of single patch jobs (``fit_patch``), each in a fresh process.

A patch job is what a worker of ``fit`` runs; on a 2-core machine wall times are noisy, so this
reports the job's CPU seconds (one BLAS/FFT thread, as in a worker) and its peak RSS next to the
process's RSS before the job (imports). Movies are simulated once with ``engine_benchmark.simulate``
(cached under ``benchmarks/results``) and patches are the central ``(2·rf+1)²`` boxes.

    .venv/bin/python benchmarks/patch_profile.py                                # 3 boxes of 512x512x3000:240
    .venv/bin/python benchmarks/patch_profile.py --size 162x162x12000:24 --boxes 1
    .venv/bin/python benchmarks/patch_profile.py --boxes 1 --profile 25         # + cProfile, top 25 by own time
    .venv/bin/python benchmarks/patch_profile.py --save before.npz              # keep A, C per box ...
    .venv/bin/python benchmarks/patch_profile.py --compare before.npz           # ... and compare against them
    .venv/bin/python benchmarks/patch_profile.py --kind 2p --size 256x256x2000:60  # 2P (greedy_roi) patch jobs
    # any cached .npy movie, the benchmark's parameters overridden; the profile kept for pstats
    .venv/bin/python benchmarks/patch_profile.py --movie benchmarks/results/realistic_ca1_256x256x1000_seed1.npy \
        --set gSig=6 gSiz=25 min_corr=0.6 min_pnr=7 rf=64 stride=32 --boxes 1 --pstats g6.pstats
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assignments import parse_assignments  # noqa: E402
from engine_benchmark import DEFAULT_PARAMS, RESULTS, simulate  # noqa: E402

PROFILE_SORT = "tottime"


def job_params(kind: str, overrides: dict | None = None) -> dict:
    """The benchmark's fit parameters for ``kind`` (engine_benchmark, its preset applied) with
    ``overrides`` on top, one process."""
    from cnmflow.params import PRESETS

    params = {**DEFAULT_PARAMS[kind], **(overrides or {}), "n_processes": 1}
    preset = PRESETS[params.pop("preset")] if "preset" in params else {}
    return {**preset, **params}


def central_boxes(dims: tuple[int, int], n: int, rf: int, stride: int) -> list:
    """The ``n`` patch boxes nearest the field of view's centre (interior patches first)."""
    from cnmflow.engine.patches import patch_boxes

    boxes = patch_boxes(dims, rf=rf, stride=stride)
    centre = np.array([(dims[0] - 1) / 2, (dims[1] - 1) / 2])
    return sorted(boxes, key=lambda b: (float(np.hypot(*(np.array(b.center) - centre))), b.row0, b.col0))[:n]


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process. Unlike ``ru_maxrss``, the peak starts afresh at
    exec: a child's ``ru_maxrss`` starts from its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_job(movie_path: Path, box_index: int, n_boxes: int, out: Path, profile_top: int, trace: bool,
            kind: str, overrides: dict | None = None, pstats_path: Path | None = None) -> None:
    """In a fresh process: one patch job, its CPU time, peak RSS (and tracemalloc peak), its A and C;
    with ``pstats_path`` the job's CPU-time profile is written there."""
    from cnmflow.engine.movie_source import MovieSource
    from cnmflow.engine.patch_frames import PatchStorage
    from cnmflow.engine.patch_job.dispatch import fit_patch
    from cnmflow.engine.sections import EngineSettings
    from cnmflow.engine.threads import use_single_thread
    from cnmflow.params import build_params
    from cnmflow.settings import load_settings

    use_single_thread()
    movie = np.load(movie_path, mmap_mode="r")
    source = MovieSource.of(movie).without_array()
    params = build_params(job_params(kind, overrides))
    job = EngineSettings.from_params(params).patch_job
    storage = PatchStorage.from_settings(load_settings())
    box = central_boxes(movie.shape[1:], n_boxes, params.rf, params.stride)[box_index]
    del movie
    rss_before = _status_mb("VmRSS")
    if trace:
        import tracemalloc

        tracemalloc.start()
    profiler = None
    if profile_top or pstats_path:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    started = time.process_time()
    result = fit_patch(source, box, job, fov_dims=source.shape[1:], storage=storage)
    cpu = time.process_time() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        if profile_top:
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(PROFILE_SORT).print_stats(profile_top)
        if pstats_path:
            profiler.dump_stats(str(pstats_path))
    record = {"box": [box.row0, box.row1, box.col0, box.col1], "cpu_s": round(cpu, 3), "K": int(result.A.shape[1]),
              "rss_before_mb": round(rss_before, 1),
              "peak_rss_mb": round(_status_mb("VmHWM"), 1)}
    if trace:
        record["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2 ** 20, 1)
    np.savez(out.with_suffix(".npz"), A=result.A, C=result.C, correlation=result.correlation, pnr=result.pnr,
             noise=result.noise)
    out.write_text(json.dumps(record))


def compare(saved: dict[str, np.ndarray], index: int, now: dict[str, np.ndarray]) -> str:
    """How box ``index`` differs from a saved run: K, and the largest change of the images and A·C."""
    before = {name: saved[f"{index}_{name}"] for name in ("A", "C", "correlation", "pnr", "noise")}
    parts = [f"K {before['A'].shape[1]}->{now['A'].shape[1]}"]
    for name in ("correlation", "pnr", "noise"):
        scale = float(np.abs(before[name]).max()) or 1.0
        parts.append(f"{name} {float(np.abs(now[name] - before[name]).max()) / scale:.1e}")
    if before["A"].shape == now["A"].shape:
        ac_before, ac_now = before["A"] @ before["C"], now["A"] @ now["C"]
        parts.append(f"AC {float(np.abs(ac_now - ac_before).max()) / (float(np.abs(ac_before).max()) or 1):.1e}")
    return ", ".join(parts)


def _simulated(size: str, seed: int, kind: str) -> Path:
    """The engine benchmark's movie of ``size`` (simulated in a fresh process once, then cached)."""
    subprocess.run([sys.executable, str(Path(__file__).with_name("engine_benchmark.py")), "--simulate-only",
                    size, "--seed", str(seed), "--kind", kind], check=True)
    return simulate(size, RESULTS, seed, kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x512x3000:240", help="ROWSxCOLSxFRAMES:NEURONS")
    parser.add_argument("--kind", choices=sorted(DEFAULT_PARAMS), default="1p", help="1P (CNMF-E) or 2P (CNMF) patch jobs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--boxes", type=int, default=3, help="how many central patch boxes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per box; the least CPU time is reported "
                                                               "(CPU time too varies on a busy machine)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N (CPU time)")
    parser.add_argument("--trace", action="store_true", help="also report tracemalloc's peak (slower)")
    parser.add_argument("--save", type=Path, help="write every box's A, C and images to this .npz")
    parser.add_argument("--compare", type=Path, help="compare every box with a --save file")
    parser.add_argument("--movie", type=Path, help="profile this cached (frames, rows, cols) .npy movie instead "
                                                   "of simulating one (--size and --seed are then unused)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override fit parameters")
    parser.add_argument("--pstats", type=Path, help="write the (last) box's cProfile to this file")
    parser.add_argument("--job", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        run_job(Path(args.job[0]), int(args.job[1]), int(args.job[2]), args.out, args.profile, args.trace, args.kind,
                parse_assignments(args.set), args.pstats)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    movie_path = args.movie or _simulated(args.size, args.seed, args.kind)
    saved = dict(np.load(args.compare)) if args.compare else None
    kept: dict[str, np.ndarray] = {}
    total = 0.0
    for index in range(args.boxes):
        out = RESULTS / f"patch_profile_{index}.json"
        command = [sys.executable, __file__, "--job", str(movie_path), str(index), str(args.boxes), "--out", str(out),
                   "--profile", str(args.profile), "--kind", args.kind, "--set", *args.set]
        command += (["--trace"] if args.trace else []) + (["--pstats", str(args.pstats)] if args.pstats else [])
        record = None
        for _ in range(args.repeat):
            subprocess.run(command, check=True)
            run = json.loads(out.read_text())
            record = run if record is None or run["cpu_s"] < record["cpu_s"] else record
        arrays = dict(np.load(out.with_suffix(".npz")))
        kept.update({f"{index}_{name}": value for name, value in arrays.items()})
        total += record["cpu_s"]
        line = (f"box {record['box']}: cpu {record['cpu_s']:.2f} s, K {record['K']}, peak RSS {record['peak_rss_mb']} MB "
                f"(+{record['peak_rss_mb'] - record['rss_before_mb']:.0f} over {record['rss_before_mb']} MB)")
        if "tracemalloc_peak_mb" in record:
            line += f", tracemalloc peak {record['tracemalloc_peak_mb']} MB"
        print(line + (f"; vs saved: {compare(saved, index, arrays)}" if saved is not None else ""), flush=True)
    print(f"total cpu {total:.2f} s over {args.boxes} box(es), {total / args.boxes:.2f} s per box")
    if args.save:
        np.savez(args.save, **kept)
    return 0


if __name__ == "__main__":
    sys.exit(main())
