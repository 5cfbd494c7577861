"""Accuracy, speed and memory of ``cnmflow.motion.correct_motion`` on movies with known motion.

- accuracy: shift error RMS (px) for rigid motion up to 10 px on a simulated 1P movie (with
  ``gSig_filt``) and on a plain texture, and for a smooth non-rigid field (piecewise patch shifts);
- speed: frames/s (wall) and frames per CPU-second (all processes; what 1 idle core would do,
  ~x2 for 2 idle cores) of rigid and piecewise correction of a 256x256 float32 file into a float32
  file (the work copy), with 1 and 2 worker processes;
- memory: peak RSS of a correction in a fresh process at two movie lengths (flat in frames);
- with ``--extraction``: F1 of the engine on the realistic simulator without motion, with brain
  motion, and with the motion corrected (issue #17's "within 0.02 F1 of the motion-free movie").

    .venv/bin/python benchmarks/motion_benchmark.py                       # 1000 frames; RSS at 1000 and 4000
    .venv/bin/python benchmarks/motion_benchmark.py --frames 500 --rss-frames 500 2000
    .venv/bin/python benchmarks/motion_benchmark.py --extraction --skip-speed --skip-accuracy   # F1 only

Writes ``benchmarks/results/motion_benchmark.json`` and prints a table. On a shared machine
every number is a lower bound: note the load average printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = (256, 256)
RIGID = dict(motion_correction="rigid", max_shifts=12, gSig_filt=3)
PIECEWISE = dict(motion_correction="piecewise_rigid", max_shifts=12, gSig_filt=3, strides=96, overlaps=32,
                 max_deviation_rigid=3)


def _shift(frames: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.shift(f, d, order=3, mode="nearest") for f, d in zip(frames, shifts)]).astype(np.float32)


def _error_rms(estimated: np.ndarray, true: np.ndarray) -> float:
    error = np.asarray(estimated, np.float64) + true
    error -= error.mean(axis=tuple(range(error.ndim - 1)))
    return float(np.sqrt(np.mean(error ** 2)))


def accuracy(seed: int) -> dict:
    from cnmflow.motion import correct_motion, motion_params
    from cnmflow.synthetic import simulate_1p

    rng = np.random.default_rng(seed)
    sim = simulate_1p(shape=SHAPE, n_frames=300, n_neurons=150, gsig=3, rng=seed, vessel=True, peak_snr=(4, 10))
    true = rng.uniform(-10, 10, size=(300, 2))
    one_photon = correct_motion(_shift(sim.movie, true), None, params=motion_params(RIGID))
    texture = (100 + 20 * ndimage.gaussian_filter(rng.normal(size=SHAPE), 2)).astype(np.float32)
    moving = _shift(np.repeat(texture[None], 100, axis=0), true[:100]) + rng.normal(0, 1, (100,) + SHAPE).astype(np.float32)
    textured = correct_motion(moving, None, params=motion_params(motion_correction="rigid", max_shifts=12))
    # smooth non-rigid field: half a sine across the frame, amplitude varying in time (up to 3 px)
    rows, cols = np.indices(SHAPE, dtype=np.float64)
    amplitudes = 3.0 * np.sin(np.linspace(0, 4 * np.pi, 100))
    fields = [np.stack([a * np.sin(np.pi * cols / (SHAPE[1] - 1)), a * np.cos(np.pi * rows / (SHAPE[0] - 1))])
              for a in amplitudes]
    warped = np.stack([ndimage.map_coordinates(texture, [rows - f[0], cols - f[1]], order=3, mode="nearest")
                       for f in fields]).astype(np.float32)
    params = motion_params(motion_correction="piecewise_rigid", max_shifts=6, strides=48, overlaps=24,
                           max_deviation_rigid=4)
    pw = correct_motion(warped, None, params=params)
    centres = np.rint(pw.grid.centers()).astype(int)
    true_patch = np.stack([f[:, centres[:, 0], centres[:, 1]].T for f in fields])
    rigid_only = correct_motion(warped, None, params=motion_params(motion_correction="rigid", max_shifts=6))
    return {
        "rigid_1p_rms_px": round(_error_rms(one_photon.shifts_rig, true), 3),
        "rigid_texture_rms_px": round(_error_rms(textured.shifts_rig, true[:100]), 3),
        "piecewise_patch_rms_px": round(_error_rms(pw.shifts_els, true_patch), 3),
        "rigid_on_nonrigid_patch_rms_px": round(_error_rms(
            np.repeat(rigid_only.shifts_rig[:, None, :], centres.shape[0], axis=1), true_patch), 3),
    }


#: The realistic cortex preset with the parameters a user sets for it (as benchmarks/realistic_benchmark.py).
EXTRACTION_PARAMS = dict(fr=20.0, gSig=3, gSiz=13, min_corr=0.7, min_pnr=5, rf=40, stride=20, n_processes=2)


def extraction(seed: int, *, n_frames: int = 1200, motion_px: float = 1.1) -> dict:
    """F1 of the engine on the realistic simulator: still, moving, and moving after rigid correction."""
    from cnmflow.engine import fit
    from cnmflow.motion import correct_motion, motion_params
    from cnmflow.params import build_params
    from cnmflow.scoring import score
    from cnmflow.synthetic import simulate_realistic_1p

    def fitted(movie: np.ndarray, truth) -> dict:
        start = time.perf_counter()
        estimates = fit(movie, build_params(EXTRACTION_PARAMS))
        found = score(truth.footprints, estimates.footprints(), truth_traces=truth.calcium,
                      estimated_traces=estimates.C)
        return {"K": int(estimates.K), "f1": round(found.f1, 3), "precision": round(found.precision, 3),
                "recall": round(found.recall, 3), "fit_s": round(time.perf_counter() - start, 1)}

    record: dict = {"movie": f"cortex_l23 256x256x{n_frames}, motion sd {motion_px} px"}
    still = simulate_realistic_1p("cortex_l23", n_frames=n_frames, rng=seed)
    record["no_motion"] = fitted(still.movie, still.truth)
    del still
    moving = simulate_realistic_1p("cortex_l23", n_frames=n_frames, rng=seed, motion_px=motion_px)
    record["motion_uncorrected"] = fitted(moving.movie, moving.truth)
    corrected = np.empty_like(moving.movie)
    start = time.perf_counter()
    result = correct_motion(moving.movie, corrected, params=motion_params(RIGID, max_shifts=8, border_nan="copy"))
    record["correction_s"] = round(time.perf_counter() - start, 2)
    record["shift_rms_px"] = round(_error_rms(result.shifts_rig, moving.truth.shifts), 3)
    record["motion_corrected"] = fitted(corrected, moving.truth)
    return record


def write_movie(path: Path, n_frames: int, seed: int) -> Path:
    """A 256x256 float32 raw file: 200 simulated 1P frames repeated with random shifts (<= 8 px)."""
    from cnmflow.synthetic import simulate_1p

    if path.exists() and path.stat().st_size == 4 * n_frames * SHAPE[0] * SHAPE[1]:
        return path
    rng = np.random.default_rng(seed)
    base = simulate_1p(shape=SHAPE, n_frames=200, n_neurons=150, gsig=3, rng=seed, vessel=True).movie
    with open(path, "wb") as handle:
        for first in range(0, n_frames, 200):
            n = min(200, n_frames - first)
            handle.write(_shift(base[:n], rng.uniform(-8, 8, size=(n, 2))).tobytes())
    return path


def _vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a live process (VmHWM), MB. Unlike ru_maxrss it starts afresh at
    exec, so a child does not inherit the benchmark parent's peak."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _WorkerPeak:
    """Samples the VmHWM of this process's children (the worker processes) every 0.2 s."""

    def __init__(self):
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            try:
                children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
            except OSError:
                children = []
            for pid in children:
                self.peak = max(self.peak, _vm_hwm_mb(pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_child(movie: Path, n_frames: int, values: dict, n_processes: int, chunk_frames: int) -> dict:
    """One correction in this (fresh) process: wall time, frames/s and peak RSS."""
    from cnmflow.motion import correct_motion, motion_params

    source = np.memmap(movie, dtype=np.float32, mode="r", shape=(n_frames,) + SHAPE)
    cpu_before = sum(getattr(resource.getrusage(resource.RUSAGE_SELF), field) for field in ("ru_utime", "ru_stime"))
    with tempfile.TemporaryDirectory(dir=movie.parent) as folder:
        out = np.memmap(Path(folder) / "corrected.f32", dtype=np.float32, mode="w+", shape=source.shape)
        workers = _WorkerPeak()
        start = time.perf_counter()
        result = correct_motion(source, out, params=motion_params(values), chunk_frames=chunk_frames,
                                n_processes=n_processes)
        wall = time.perf_counter() - start
        worker_peak = workers.stop()
        del out
    cpu = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime")) - cpu_before
    return {"frames": n_frames, "method": values["motion_correction"], "n_processes": n_processes,
            "wall_s": round(wall, 2), "frames_per_s": round(n_frames / wall, 1), "cpu_s": round(cpu, 2),
            "frames_per_cpu_s": round(n_frames / cpu, 1),
            "peak_rss_mb": round(_vm_hwm_mb(), 1), "peak_rss_worker_mb": round(worker_peak, 1),
            "max_shift_px": round(result.max_shift(), 2)}


def in_fresh_process(movie: Path, n_frames: int, values: dict, n_processes: int, chunk_frames: int) -> dict:
    command = [sys.executable, __file__, "--child", str(movie), "--frames", str(n_frames), "--values",
               json.dumps(values), "--processes", str(n_processes), "--chunk-frames", str(chunk_frames)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames of the speed runs")
    parser.add_argument("--rss-frames", type=int, nargs="+", default=[1000, 4000], help="movie lengths for peak RSS")
    parser.add_argument("--chunk-frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true", help="no speed or memory runs")
    parser.add_argument("--extraction", action="store_true",
                        help="also fit the realistic simulator still / moving / corrected (~2 min)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--values", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.child:
        print(json.dumps(run_child(Path(args.child), args.frames, json.loads(args.values), args.processes,
                                   args.chunk_frames)))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary: dict = {"machine": platform.platform(), "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    if not args.skip_accuracy:
        summary["accuracy"] = accuracy(args.seed)
    if args.extraction:
        summary["extraction"] = extraction(args.seed + 1)
    runs = []
    with tempfile.TemporaryDirectory(dir=RESULTS) as folder:
        if args.skip_speed:
            args.rss_frames, values_for_speed = [], ()
        else:
            values_for_speed = (RIGID, PIECEWISE)
        longest = max([args.frames, *args.rss_frames])
        movie = write_movie(Path(folder) / f"motion_{longest}.f32", longest, args.seed) if values_for_speed else None
        for values in values_for_speed:
            for n_processes in (1, 2):
                runs.append({"kind": "speed", **in_fresh_process(movie, args.frames, values, n_processes,
                                                                  args.chunk_frames)})
        for n_frames in args.rss_frames:
            for values in (RIGID, PIECEWISE):
                runs.append({"kind": "memory", **in_fresh_process(movie, n_frames, values, 1, args.chunk_frames)})
    summary["runs"] = runs
    summary["load_avg_end"] = os.getloadavg()
    (RESULTS / "motion_benchmark.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({name: summary[name] for name in ("accuracy", "extraction") if name in summary}, indent=1))
    print(f"{'kind':<8}{'method':<17}{'frames':>7}{'procs':>6}{'wall_s':>8}{'fps':>8}{'cpu_s':>8}{'f/cpu_s':>8}"
          f"{'rss_mb':>8}{'worker_mb':>10}")
    for r in runs:
        print(f"{r['kind']:<8}{r['method']:<17}{r['frames']:>7}{r['n_processes']:>6}{r['wall_s']:>8}"
              f"{r['frames_per_s']:>8}{r['cpu_s']:>8}{r['frames_per_cpu_s']:>8}{r['peak_rss_mb']:>8}"
              f"{r['peak_rss_worker_mb']:>10}")
    print(f"load average {summary['load_avg_start']} -> {summary['load_avg_end']} on {summary['cpus']} cores")


if __name__ == "__main__":
    main()
