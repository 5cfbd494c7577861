"""Speed, memory and accuracy of ``cnmflow.engine.fit`` on simulated 1P or 2P movies with ground truth.

Each size is simulated once (cached under the results folder), then fitted in a fresh process
that memory-maps the movie, so peak RSS is the fit's own (parent and worker processes reported
separately). Writes ``engine_benchmark.json`` and prints a table.

    .venv/bin/python benchmarks/engine_benchmark.py                 # 256x256x2000 and 512x512x3000
    .venv/bin/python benchmarks/engine_benchmark.py --sizes 128x128x1000:30
    .venv/bin/python benchmarks/engine_benchmark.py --kind 2p       # 2P preset, 256x256x2000, 60 neurons
    .venv/bin/python benchmarks/engine_benchmark.py --kind 2p --set K=8     # how 2P time scales with K
    # how time and memory scale with the recording's length (needs ~20 GB of disk for the movies):
    .venv/bin/python benchmarks/engine_benchmark.py --sizes 256x256x2000:80 256x256x8000:80 \
        256x256x20000:80 512x512x3000:240 512x512x10000:240

Each run is also logged to MLflow (experiment "benchmarks": wall time, frames/s, peak RSS,
precision/recall/F1, trace correlation) unless ``--no-track``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignments import parse_assignments  # noqa: E402

DEFAULT_SIZES = {"1p": ("256x256x2000:80", "512x512x3000:240"), "2p": ("256x256x2000:60",)}
#: What a user sets for each kind of movie. 1P: min_corr / min_pnr read off the images (off-neuron
#: PNR stays below ~3.5 here, on the PNR image the threshold applies to, CaImAn's convention).
#: 2P: the 2P preset with patches of ~2-3 neurons and K set a little above that.
DEFAULT_PARAMS = {
    "1p": dict(fr=10.0, gSig=3, gSiz=13, min_corr=0.8, min_pnr=4, rf=40, stride=20, n_processes=2),
    "2p": dict(preset="2p", fr=30.0, gSig=4, gSiz=9, rf=20, stride=10, K=5, n_processes=2),
}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_size(text: str) -> tuple[int, int, int, int]:
    shape, _, neurons = text.partition(":")
    rows, cols, frames = (int(v) for v in shape.split("x"))
    return rows, cols, frames, int(neurons or 60)


def simulate(size: str, folder: Path, seed: int, kind: str = "1p") -> Path:
    """Simulate once; the movie goes to a raw float32 file the fit can memory-map."""
    from cnmflow.synthetic import simulate_1p, simulate_2p

    rows, cols, frames, neurons = parse_size(size)
    prefix = "movie" if kind == "1p" else "movie2p"
    movie_path = folder / f"{prefix}_{rows}x{cols}x{frames}_{neurons}_seed{seed}.npy"
    truth_path = movie_path.with_suffix(".truth.npz")
    if movie_path.exists() and truth_path.exists():
        return movie_path
    if kind == "1p":
        simulated = simulate_1p(shape=(rows, cols), n_frames=frames, n_neurons=neurons, gsig=3.0, fr=10.0, rng=seed)
    else:
        simulated = simulate_2p(shape=(rows, cols), n_frames=frames, n_neurons=neurons, gsig=4.0, fr=30.0, nb=2,
                                rng=seed)
    np.save(movie_path, simulated.movie)
    truth = simulated.truth
    np.savez_compressed(truth_path, footprints=truth.footprints, calcium=truth.calcium, centers=truth.centers)
    return movie_path


def fit_and_score(movie_path: Path, params: dict, out_json: Path) -> None:
    """Runs in a fresh process: fit the memory-mapped movie, score it, record time and memory."""
    import resource

    from cnmflow.engine import fit
    from cnmflow.params import PRESETS, build_params
    from cnmflow.scoring import score

    movie = np.load(movie_path, mmap_mode="r")
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    started = time.perf_counter()
    preset = PRESETS[params.pop("preset")] if "preset" in params else {}
    estimates = fit(movie, build_params({**preset, **params}))
    wall = time.perf_counter() - started
    fit_peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before scoring densifies A
    accepted = np.setdiff1d(np.arange(estimates.K), estimates.idx_components_bad)  # as a CaImAn user reads them
    accuracy = score(truth["footprints"], estimates.footprints()[accepted], truth_traces=truth["calcium"],
                     estimated_traces=estimates.C[accepted])
    record = {
        "movie": movie_path.name, "shape": list(movie.shape), "params": params, "wall_s": round(wall, 2),
        "frames_per_s": round(movie.shape[0] / wall, 1),
        "stages_s": {stage: round(seconds, 2) for stage, seconds in estimates.timings.items()},
        "peak_rss_mb": round(fit_peak_rss_mb, 1),
        "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "movie_mb": round(movie.nbytes / 2 ** 20, 1),
        "K": estimates.K, "n_rejected": int(estimates.K - accepted.size), "n_true": int(truth["footprints"].shape[0]),
        "precision": round(accuracy.precision, 3), "recall": round(accuracy.recall, 3), "f1": round(accuracy.f1, 3),
        "median_trace_corr": round(float(accuracy.median_trace_corr), 3),
    }
    out_json.write_text(json.dumps(record, indent=1))


def log_to_mlflow(records: list[dict], tracking_uri: str | None) -> None:
    """One MLflow run per benchmarked movie in experiment "benchmarks", so runs compare across commits."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from cnmflow.lineage import code_version
    from cnmflow.tracking.uri import tracking_uri as default_uri

    uri = tracking_uri or default_uri(RESULTS)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("benchmarks")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("benchmarks")
    code = code_version()
    for record in records:
        run = client.create_run(experiment_id, run_name=record["movie"],
                                tags={"cnmflow.version": code["cnmflow"], "git.commit": str(code["git_commit"]),
                                      "movie": "x".join(map(str, record["shape"]))})
        now = int(time.time() * 1000)
        metrics = {name: record[name] for name in ("wall_s", "frames_per_s", "peak_rss_mb", "peak_rss_worker_mb", "K",
                                                   "n_true", "precision", "recall", "f1", "median_trace_corr")}
        metrics.update({f"runtime_{stage}_s": seconds for stage, seconds in record["stages_s"].items()})
        client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in record["params"].items()])
        client.set_terminated(run.info.run_id)
    print(f"MLflow: experiment 'benchmarks' at {uri}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(DEFAULT_PARAMS), default="1p", help="1P (CNMF-E) or 2P (CNMF) movies")
    parser.add_argument("--sizes", nargs="+", help="ROWSxCOLSxFRAMES:NEURONS (default: per kind)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="extra fit parameters")
    parser.add_argument("--fit-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params-json", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--simulate-only", help=argparse.SUPPRESS)
    parser.add_argument("--no-track", action="store_true", help="do not log the runs to MLflow")
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
                                               "sqlite:///benchmarks/results/mlflow.db)")
    args = parser.parse_args(argv)
    if args.simulate_only:
        simulate(args.simulate_only, RESULTS, args.seed, args.kind)
        return 0
    if args.fit_only:
        fit_and_score(args.fit_only, json.loads(args.params_json), args.out)
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    params = {**DEFAULT_PARAMS[args.kind], **parse_assignments(args.set)}
    records = []
    for size in args.sizes or DEFAULT_SIZES[args.kind]:
        # Simulate in a process of its own: on Linux a child's ru_maxrss starts from its parent's
        # peak (it survives fork + exec), so a parent that held a simulated movie would inflate
        # every fit's peak memory by the movie's size.
        subprocess.run([sys.executable, __file__, "--simulate-only", size, "--seed", str(args.seed), "--kind", args.kind],
                       check=True)
        movie_path = simulate(size, RESULTS, args.seed, args.kind)  # cached now: returns the path
        out = RESULTS / f"{movie_path.stem}.fit.json"
        subprocess.run([sys.executable, __file__, "--fit-only", str(movie_path), "--params-json", json.dumps(params),
                        "--out", str(out)], check=True)
        records.append(json.loads(out.read_text()))
    summary = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()}, "runs": records}
    (RESULTS / "engine_benchmark.json").write_text(json.dumps(summary, indent=1))
    if not args.no_track:
        log_to_mlflow(records, args.tracking_uri)
    header = f"{'movie':<28}{'wall s':>8}{'fr/s':>8}{'RSS MB':>8}{'wkr MB':>8}{'K':>5}{'P':>7}{'R':>7}{'F1':>7}{'corr':>7}"
    print(header)
    for r in records:
        print(f"{'x'.join(map(str, r['shape'])):<28}{r['wall_s']:>8}{r['frames_per_s']:>8}{r['peak_rss_mb']:>8}"
              f"{r['peak_rss_worker_mb']:>8}{r['K']:>5}{r['precision']:>7}{r['recall']:>7}{r['f1']:>7}"
              f"{r['median_trace_corr']:>7}")
        print("   stages:", r["stages_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
