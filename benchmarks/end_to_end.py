"""End to end, as a user runs it: ``cnmflow run`` on a uint16 TIFF, against ``fit`` alone on the same movie.

The engine benchmark times ``fit`` on a ready float32 movie; a user times ``cnmflow run`` — reading
the TIFF, the work copy, the fit, the exports. This benchmark measures both on the same movie:

- the movie: simulated 1P (``cnmflow.synthetic.simulate_1p``, Gaussian neurons) as one block of at
  most ``BLOCK_BYTES`` of float32, repeated in time with fresh noise and written as a uint16 TIFF
  frame by frame (never more than one block in memory), cached under ``benchmarks/results/``;
- ``cnmflow run`` in a subprocess (gSig 3, min_corr 0.8, min_pnr 10, fr 10; no MLflow tracking,
  everything else the defaults, NWB included) while a sampler reads, every 0.2 s, the resident set
  of the whole process tree (RSS, and its anonymous / file / shmem parts from ``/proc``) and the bytes
  in the run's work folder; the stage seconds the run records (the manifest's ``timings_s``, plus the
  export and the whole-process overhead from the wall time);
- ``fit`` alone on the TIFF memory-mapped in place (the "developer" number), in a fresh process,
  with the run's effective parameters read back from its manifest.

    .venv/bin/python benchmarks/end_to_end.py                                  # 256x256x8000
    .venv/bin/python benchmarks/end_to_end.py --sizes 256x256x8000 256x256x20000 512x512x10000:240
    .venv/bin/python benchmarks/end_to_end.py --sizes 128x128x2000:20 --no-fit  # a quick check

Writes ``end_to_end.json`` (one record per movie) to ``benchmarks/results/`` and prints a table.
On a shared machine every number is noisy: compare CPU-bound stages on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CNMFLOW = Path(sys.executable).with_name("cnmflow")
DEFAULT_SIZES = ("256x256x8000:80",)
#: What the issue's user sets (1P, CNMF-E): everything else is the preset's default.
RUN_SETTINGS = {"gSig": 3, "min_corr": 0.8, "min_pnr": 10, "fr": 10}
#: Float32 bytes of the simulated block that is repeated in time.
BLOCK_BYTES = 512 * 2 ** 20
#: Seconds between samples of memory and work-folder bytes.
SAMPLE_S = 0.2
#: Baseline added before the uint16 conversion (the simulated movie's background is positive).
UINT16_FLOOR = 100.0
#: Standard deviation of the fresh noise added to each repeat of the block.
REPEAT_NOISE_SD = 5.0


def parse_size(text: str) -> tuple[int, int, int, int]:
    shape, _, neurons = text.partition(":")
    rows, cols, frames = (int(v) for v in shape.split("x"))
    return rows, cols, frames, int(neurons or 80)


def movie_path(size: str, seed: int) -> Path:
    rows, cols, frames, neurons = parse_size(size)
    return RESULTS / f"e2e_{rows}x{cols}x{frames}_{neurons}_seed{seed}.tif"


def block_frames(rows: int, cols: int, frames: int) -> int:
    return max(1, min(frames, BLOCK_BYTES // (4 * rows * cols)))


def repeated_frames(block: np.ndarray, frames: int, seed: int):
    """``frames`` uint16 frames: the block again and again, each repeat with fresh noise."""
    rng = np.random.default_rng(seed + 1)
    floor = float(block.min()) - UINT16_FLOOR
    written = 0
    while written < frames:
        n = min(block.shape[0], frames - written)
        for start in range(0, n, 64):
            chunk = block[start:min(start + 64, n)]
            noisy = chunk + REPEAT_NOISE_SD * rng.standard_normal(chunk.shape, dtype=np.float32) if written else chunk
            yield from np.clip(np.rint(noisy - floor), 0, 65535).astype(np.uint16)
        written += n


def write_movie(size: str, seed: int) -> Path:
    """Simulate one block and write the repeated movie as a uint16 TIFF (BigTIFF past 4 GB), atomically."""
    import tifffile

    from cnmflow.synthetic import simulate_1p

    path = movie_path(size, seed)
    rows, cols, frames, neurons = parse_size(size)
    block = simulate_1p(shape=(rows, cols), n_frames=block_frames(rows, cols, frames), n_neurons=neurons,
                        gsig=3.0, fr=10.0, rng=seed).movie
    big = 2 * rows * cols * frames > 2 ** 32 - 2 ** 25
    tmp = path.with_name(path.name + ".writing")
    tifffile.imwrite(tmp, repeated_frames(block, frames, seed), shape=(frames, rows, cols), dtype=np.uint16,
                     bigtiff=big, imagej=not big, metadata={"axes": "TYX", **({} if big else {"finterval": 0.1})})
    os.replace(tmp, path)
    return path


def ensure_movie(size: str, seed: int) -> Path:
    """The cached movie, simulated in a process of its own (its memory is not the run's)."""
    path = movie_path(size, seed)
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--write-only", size, "--seed", str(seed)], check=True)
    return path


@dataclass
class Samples:
    """Peaks over the run's process tree (MiB) and of its work folder (bytes)."""

    rss_mb: float = 0.0
    anon_mb: float = 0.0
    file_mb: float = 0.0
    shmem_mb: float = 0.0
    largest_process_mb: float = 0.0
    work_bytes: int = 0
    n: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def proc_memory_mb(pid: int) -> dict[str, float]:
    """RssAnon / RssFile / RssShmem of one process from /proc (MiB); empty when it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                    name, value, _ = line.split()
                    out[name[3:-1].lower()] = int(value) / 1024
    except OSError:
        return {}
    return out


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def sample(pid: int, work: Path, samples: Samples) -> None:
    """Every SAMPLE_S: the tree's memory (sum over processes) and the work folder's allocated bytes."""
    import psutil

    root = psutil.Process(pid)
    while not samples.stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        parts = [proc_memory_mb(p.pid) for p in procs]
        parts = [p for p in parts if p]
        tree = {k: sum(p.get(k, 0.0) for p in parts) for k in ("anon", "file", "shmem")}
        samples.rss_mb = max(samples.rss_mb, sum(tree.values()))
        samples.anon_mb = max(samples.anon_mb, tree["anon"])
        samples.file_mb = max(samples.file_mb, tree["file"])
        samples.shmem_mb = max(samples.shmem_mb, tree["shmem"])
        samples.largest_process_mb = max([samples.largest_process_mb, *(sum(p.values()) for p in parts)])
        samples.work_bytes = max(samples.work_bytes, folder_bytes(work))
        samples.n += 1
        samples.stop.wait(SAMPLE_S)


def task_seconds(log: Path) -> dict[str, float]:
    """Seconds of each Prefect task, from the finish times in the run's log (start: the flow's start)."""
    stamps, started = {}, None
    for line in log.read_text(errors="replace").splitlines():
        when = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") if re.match(r"\d{4}-", line) else None
        if when is None:
            continue
        if "Beginning flow run" in line and started is None:
            started = when
        found = re.search(r"Task run '([a-z_]+)-[0-9a-f]+' - Finished", line)
        if found:
            stamps[found.group(1)] = when
    seconds, previous = {}, started
    for task, when in sorted(stamps.items(), key=lambda item: item[1]):
        seconds[task] = round((when - previous).total_seconds(), 2) if previous else None
        previous = when
    return seconds


def run_cli(movie: Path, out: Path) -> dict:
    """``cnmflow run`` on the movie, sampled; its wall time, peaks and recorded stage seconds."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(CNMFLOW), "run", str(movie), "--output-dir", str(out), "--no-track", "--no-progress"]
    for name, value in RUN_SETTINGS.items():
        command += ["--set", f"{name}={value}"]
    samples = Samples()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    cache = out.with_name(out.name + ".cache")   # a private extraction cache: never a result of an earlier run
    shutil.rmtree(cache, ignore_errors=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "CNMFLOW_CACHE_DIR": str(cache)})
    sampler = threading.Thread(target=sample, args=(process.pid, out / ".cnmflow-work", samples), daemon=True)
    sampler.start()
    output, _ = process.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)   # the run and every process it waited for
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    samples.stop.set()
    sampler.join()
    shutil.rmtree(cache, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"cnmflow run failed ({process.returncode}):\n{output}")
    run = json.loads((out / "manifest.json").read_text())["run"]
    logs = sorted((out / ".cnmflow-logs").glob("*.log"))
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1), "timings_s": run["timings_s"], "tasks_s": task_seconds(logs[-1]) if logs else {},
            "peak_rss_tree_mb": round(samples.rss_mb), "peak_anon_tree_mb": round(samples.anon_mb),
            "peak_file_tree_mb": round(samples.file_mb), "peak_shmem_tree_mb": round(samples.shmem_mb),
            "peak_rss_one_process_mb": round(samples.largest_process_mb), "manifest_peak_rss_mb": run.get("peak_rss_mb"),
            "work_folder_peak_mb": round(samples.work_bytes / 2 ** 20), "samples": samples.n,
            "K": run["n_components"], "parameters": _parameters(out)}


def _parameters(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    return {name: spec["value"] for name, spec in manifest["parameters"].items()}


def fit_alone(movie: Path, parameters: dict, out_json: Path) -> None:
    """Runs in a fresh process: ``fit`` on the TIFF mapped in place, with the run's parameters."""
    import tifffile

    from cnmflow.engine import fit
    from cnmflow.params import build_params

    mapped = tifffile.memmap(str(movie), mode="r")
    started, cpu = time.perf_counter(), time.process_time()
    estimates = fit(mapped, build_params(parameters))
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out_json.write_text(json.dumps({
        "wall_s": round(wall, 2), "frames_per_s": round(mapped.shape[0] / wall, 1), "K": estimates.K,
        "cpu_s": round(time.process_time() - cpu + children.ru_utime + children.ru_stime, 1),
        "stages_s": {stage: round(seconds, 2) for stage, seconds in estimates.timings.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_worker_mb": round(children.ru_maxrss / 1024)}))


def measure(size: str, seed: int, *, with_fit: bool) -> dict:
    movie = ensure_movie(size, seed)
    rows, cols, frames, _ = parse_size(size)
    record = {"movie": movie.name, "shape": [frames, rows, cols], "movie_mb": round(movie.stat().st_size / 2 ** 20)}
    record["run"] = run_cli(movie, RESULTS / f"{movie.stem}.run")
    record["run"]["frames_per_s"] = round(frames / record["run"]["wall_s"], 1)
    if with_fit:
        out = RESULTS / f"{movie.stem}.fit_alone.json"
        subprocess.run([sys.executable, __file__, "--fit-only", str(movie), "--params-json",
                        json.dumps(record["run"]["parameters"]), "--out", str(out)], check=True)
        record["fit"] = json.loads(out.read_text())
    shutil.rmtree(RESULTS / f"{movie.stem}.run", ignore_errors=True)
    return record


def print_table(records: list[dict]) -> None:
    print(f"{'movie':<18}{'fit s':>8}{'fit fr/s':>9}{'fit cpu':>8}{'run s':>8}{'run fr/s':>9}{'run cpu':>8}"
          f"{'tree RSS':>9}{'anon':>7}{'file':>7}{'shmem':>7}{'work MB':>8}{'K':>5}")
    for r in records:
        fit, run = r.get("fit", {}), r["run"]
        print(f"{'x'.join(map(str, r['shape'])):<18}{fit.get('wall_s', '-'):>8}{fit.get('frames_per_s', '-'):>9}"
              f"{fit.get('cpu_s', '-'):>8}{run['wall_s']:>8}{run['frames_per_s']:>9}{run['cpu_s']:>8}"
              f"{run['peak_rss_tree_mb']:>9}{run['peak_anon_tree_mb']:>7}"
              f"{run['peak_file_tree_mb']:>7}{run['peak_shmem_tree_mb']:>7}{run['work_folder_peak_mb']:>8}{run['K']:>5}")
        print("   run stages:", run["timings_s"], "tasks:", run["tasks_s"])
        if fit:
            print("   fit stages:", fit["stages_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="ROWSxCOLSxFRAMES[:NEURONS]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-fit", action="store_true", help="skip timing fit alone")
    parser.add_argument("--out", type=Path, help="JSON file (default: results/end_to_end.json)")
    parser.add_argument("--write-only", help=argparse.SUPPRESS)
    parser.add_argument("--fit-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.write_only:
        write_movie(args.write_only, args.seed)
        return 0
    if args.fit_only:
        fit_alone(args.fit_only, json.loads(args.params_json), args.out)
        return 0
    records = [measure(size, args.seed, with_fit=not args.no_fit) for size in args.sizes]
    summary = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform(), "load_avg": os.getloadavg()}, "runs": records}
    (args.out or RESULTS / "end_to_end.json").write_text(json.dumps(summary, indent=1))
    print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
