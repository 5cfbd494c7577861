"""The 2P preset on the realistic two-photon simulator: footprints, traces and the neuropil components.

Simulates ``cnmflow.synthetic.simulate_realistic_2p`` once per seed (cached under the results folder as a
memory-mappable ``.npy`` plus a ``.truth.npz``), fits it in a fresh process with each named variant of the
parameters, and scores the accepted components with ``cnmflow.shape_scoring.shape_score`` (90%-energy masks,
Hungarian matching): F1 / precision / recall at IoU > 0.3, F1 at IoU >= 0.5, median IoU, median trace r. The
variants: ``untested`` (the seed's 2P preset with gSig matched to the cells, ``compact_thr`` 0: every component
kept), ``preset`` (the preset as a run gets it: components that took up the neuropil rejected by the compactness test,
engine/soma_compactness) and ``recipe`` (also ``nb_patch`` 2: a patch background that follows two neuropil modes).
benchmarks/findings/two_photon_realistic.md has the numbers.

    .venv/bin/python benchmarks/realistic_2p_benchmark.py --seeds 7 8 9
    .venv/bin/python benchmarks/realistic_2p_benchmark.py --seeds 1 --variants preset --set gSig=4 gSiz=9
    .venv/bin/python benchmarks/realistic_2p_benchmark.py --seeds 7 --suite2p-python /tmp/s2p/bin/python

With ``--suite2p-python`` suite2p (its own installation: see two_photon_vs_suite2p.py) runs on a TIFF copy of each
movie too, without registration, with the simulation's rate, decay and a 12 px cell diameter; its ROIs classified as
cells are scored with their traces F − 0.7·Fneu (suite2p's default neuropil coefficient).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignments import parse_assignments  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: What a user sets for these movies (cells of radius ~5.5 px, GCaMP6s at 30 Hz), on top of the 2P preset.
PARAMS = dict(fr=30.0, decay_time=0.8, gSig=5, gSiz=11, rf=25, stride=12, K=5, n_processes=2)
VARIANTS = {"untested": dict(compact_thr=0.0), "preset": {}, "recipe": dict(nb_patch=2)}
COLUMNS = ("K", "f1_iou30", "precision_iou30", "recall_iou30", "f1_iou50", "median_iou", "median_trace_corr")
#: suite2p's cell diameter (px) for the simulator's somata (radius ~5.5 px) and its neuropil coefficient.
SUITE2P_DIAMETER, SUITE2P_NEUROPIL = 12.0, 0.7


def simulate(seed: int, frames: int, shape: tuple[int, int], folder: Path) -> Path:
    """Render the movie straight into a ``.npy`` memmap (once); save the truth next to it."""
    from cnmflow.synthetic import simulate_realistic_2p

    movie_path = folder / f"realistic2p_{shape[0]}x{shape[1]}x{frames}_seed{seed}.npy"
    truth_path = movie_path.with_suffix(".truth.npz")
    if movie_path.exists() and truth_path.exists():
        return movie_path
    out = np.lib.format.open_memmap(movie_path, mode="w+", dtype=np.float32, shape=(frames, *shape))
    truth = simulate_realistic_2p(shape=shape, n_frames=frames, rng=seed, out=out).truth
    out.flush()
    np.savez_compressed(truth_path, footprints=truth.footprints, calcium=truth.calcium, peak_snr=truth.peak_snr)
    return movie_path


def fit_and_score(movie_path: Path, params: dict) -> dict:
    """Runs in a fresh process: the fit of the memory-mapped movie, its accepted components scored."""
    from cnmflow.engine import fit
    from cnmflow.params import PRESETS, build_params
    from cnmflow.shape_scoring import shape_score

    movie = np.load(movie_path, mmap_mode="r")
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    estimates = fit(movie, build_params({**PRESETS["2p"], **params}))
    accepted = np.setdiff1d(np.arange(estimates.K), estimates.idx_components_bad)
    scored = shape_score(truth["footprints"], estimates.footprints()[accepted], truth_traces=truth["calcium"],
                         estimated_traces=estimates.C[accepted])
    return {"K": int(accepted.size), "K_rejected": int(estimates.K - accepted.size), **scored.summary()}


def suite2p_scores(movie_path: Path, python: str) -> dict | None:
    """suite2p's cells on the movie, scored as the fits are; None (with a message) without its Python."""
    from two_photon_vs_suite2p import run_suite2p

    from cnmflow.shape_scoring import shape_score

    out = movie_path.with_suffix(".suite2p.npz")
    if run_suite2p(movie_path, python, out, SUITE2P_DIAMETER, fs=PARAMS["fr"], tau=PARAMS["decay_time"]) is None:
        return None
    saved, truth = np.load(out), np.load(movie_path.with_suffix(".truth.npz"))
    cells = saved["iscell"][:, 0] > 0
    traces = (saved["F"] - SUITE2P_NEUROPIL * saved["Fneu"])[cells]
    scored = shape_score(truth["footprints"], saved["footprints"][cells], truth_traces=truth["calcium"],
                         estimated_traces=traces)
    return {"K": int(cells.sum()), **scored.summary()}


def _row(seed: int, name: str, record: dict) -> str:
    return f"{seed:>4} {name:>8} " + " ".join(f"{record[c]:>17.3f}" if isinstance(record[c], float)
                                            else f"{record[c]:>17}" for c in COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[7, 8, 9])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--shape", type=int, nargs=2, default=(256, 256))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="fit parameters for every variant")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--suite2p-python", help="a Python with suite2p installed: run it on each movie too")
    parser.add_argument("--fit-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit_only:   # the child process: one fit, its scores as JSON on the last line
        print(json.dumps(fit_and_score(args.fit_only, json.loads(args.params_json))))
        return 0
    args.results.mkdir(parents=True, exist_ok=True)
    print(f"{'seed':>4} {'variant':>8} " + " ".join(f"{c:>17}" for c in COLUMNS))
    for seed in args.seeds:
        movie = simulate(seed, args.frames, tuple(args.shape), args.results)
        for variant in args.variants:
            params = {**PARAMS, **VARIANTS[variant], **parse_assignments(args.set)}
            done = subprocess.run([sys.executable, __file__, "--fit-only", str(movie), "--params-json",
                                   json.dumps(params)], check=True, capture_output=True, text=True)
            print(_row(seed, variant, json.loads(done.stdout.strip().splitlines()[-1])), flush=True)
        if args.suite2p_python:
            record = suite2p_scores(movie, args.suite2p_python)
            if record is not None:
                print(_row(seed, "suite2p", record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
