"""Did a refactor change what the engine computes? Record every estimate on fixed movies, then compare.

Fits ``cnmflow.engine.fit`` on a handful of small simulated movies that between them take every
engine path (1P ring model in patches and in one patch, 2P greedy_roi and sparse_NMF with their
low-rank backgrounds, spatial/temporal downsampling, AR(2), several worker processes), and saves
every array of the ``Estimates`` (timings excepted). ``compare`` refits and reports the largest
difference per case; it exits 1 when the component count or any array differs beyond ``--tol``.

    .venv/bin/python benchmarks/same_components.py record  /tmp/before.npz   # on the old commit
    .venv/bin/python benchmarks/same_components.py compare /tmp/before.npz   # on the new one
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

#: name -> (simulator, simulator arguments, fit parameters). Small enough for ~1 min on 2 cores.
CASES: dict[str, tuple[str, dict, dict]] = {
    "1p_patches_2proc": ("1p", dict(shape=(96, 96), n_frames=600, n_neurons=25, rng=1),
                         dict(fr=10.0, gSig=3, gSiz=13, min_corr=0.8, min_pnr=4, rf=24, stride=12, n_processes=2)),
    "1p_one_patch_ssub_tsub": ("1p", dict(shape=(64, 64), n_frames=600, n_neurons=12, gsig=4.0, rng=2),
                               dict(fr=10.0, gSig=4, gSiz=17, min_corr=0.7, min_pnr=4, rf=None, ssub=2, tsub=2,
                                    ssub_B=2, n_processes=1)),
    "1p_realistic_p2": ("realistic", dict(shape=(96, 96), n_frames=500, rng=3),
                        dict(fr=10.0, gSig=6, gSiz=25, min_corr=0.6, min_pnr=7, rf=48, stride=24, p=2,
                             n_processes=1)),
    "2p_greedy": ("2p", dict(shape=(96, 96), n_frames=600, n_neurons=25, rng=4),
                  dict(preset="2p", fr=30.0, gSig=4, gSiz=9, rf=20, stride=10, K=5, n_processes=2)),
    "2p_sparse_nmf": ("2p", dict(shape=(64, 64), n_frames=400, n_neurons=10, rng=5),
                      dict(preset="2p", method_init="sparse_NMF", fr=30.0, gSig=4, gSiz=9, rf=None, K=12,
                           n_processes=1)),
}


def _movie(kind: str, arguments: dict) -> np.ndarray:
    from cnmflow.synthetic import simulate_1p, simulate_2p, simulate_realistic_1p

    if kind == "1p":
        return simulate_1p(**arguments).movie
    if kind == "2p":
        return simulate_2p(**arguments).movie
    return simulate_realistic_1p("ca1", **arguments).movie


def _params(values: dict):
    from cnmflow.params import PRESETS, build_params

    values = dict(values)
    preset = values.pop("preset", "1p")
    return build_params({**PRESETS[preset], **values})


def _arrays(estimates) -> dict[str, np.ndarray]:
    """Every array the engine returns, dense, keyed by field name."""
    out = {}
    for name, value in vars(estimates).items():
        if name == "timings" or value is None:
            continue
        if sp.issparse(value):
            value = value.toarray()
        out[name] = np.asarray(value)
    return out


def fit_cases(names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    from cnmflow.engine import fit

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            kind, arguments, values = CASES[name]
            movie = _movie(kind, arguments).astype(np.float32)
            path = Path(folder) / f"{name}.npy"
            np.save(path, movie)
            # A memory-mapped movie is what lets the patches run in worker processes.
            results[name] = _arrays(fit(np.load(path, mmap_mode="r"), _params(values)))
            print(f"{name}: {results[name]['A'].shape[1]} components", flush=True)
    return results


def _largest_difference(before: np.ndarray, after: np.ndarray) -> float:
    """Largest |before − after| over the largest finite |before|; NaN equals NaN (e.g. a focus ratio the test did not
    judge) and inf equals inf, but a NaN or inf in one array and not in the other is an infinite difference (a plain
    ``np.max`` of a difference holding NaN is NaN, which no ``>`` sees)."""
    if before.shape != after.shape:
        return float("inf")
    b, a = before.astype(np.float64), after.astype(np.float64)
    same = (b == a) | (np.isnan(b) & np.isnan(a))
    if same.all():
        return 0.0
    if not (np.isfinite(b[~same]).all() and np.isfinite(a[~same]).all()):
        return float("inf")
    finite = np.abs(b[np.isfinite(b)])
    scale = max(float(finite.max()) if finite.size else 0.0, 1e-12)
    return float(np.max(np.abs(b[~same] - a[~same]))) / scale


def compare(saved: dict[str, np.ndarray], now: dict[str, dict[str, np.ndarray]], tol: float) -> bool:
    same = True
    for case, arrays in now.items():
        worst, where = 0.0, ""
        new = [field for field in arrays if f"{case}/{field}" not in saved]   # fields added since the recording
        for field, value in arrays.items():
            key = f"{case}/{field}"
            difference = _largest_difference(saved[key], value) if key in saved else 0.0
            if difference > worst:
                worst, where = difference, field
        K_before, K_after = saved[f"{case}/A"].shape[1], arrays["A"].shape[1]
        ok = K_before == K_after and worst <= tol
        same &= ok
        print(f"{'same' if ok else 'DIFFERENT':9s} {case:24s} K {K_before} -> {K_after}, "
              f"largest relative difference {worst:.2e}{f' ({where})' if where else ''}"
              f"{f'; new fields, not compared: {new}' if new else ''}")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("file", type=Path, help="the .npz of recorded estimates")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--tol", type=float, default=1e-6, help="largest relative difference that counts as same")
    args = parser.parse_args(argv)
    results = fit_cases(args.cases)
    if args.action == "record":
        np.savez_compressed(args.file, **{f"{case}/{k}": v for case, arrays in results.items()
                                          for k, v in arrays.items()})
        print(f"recorded {len(results)} cases in {args.file}")
        return 0
    with np.load(args.file) as saved:
        return 0 if compare(dict(saved), results, args.tol) else 1


if __name__ == "__main__":
    sys.exit(main())
