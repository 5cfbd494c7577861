"""Two components or one, judged in the data: what one rank-1 component loses against a pair (issue #16, h16model).

A diagnostic, not part of the product. For every pair of components whose peaks each lie on the other's footprint
(at least ``--min-share`` of its maximum), on the union of their supports ``S``:

    X = (Y − B − Σ_{k∉pair} a_k c_k)[S] + a_i c_i + a_j c_j,   rows divided by the pixel's noise sd

is fitted by (2) the pair, footprints and traces re-fitted by HALS from the fit's, and (1) ONE non-negative rank-1
component started from the pair's sum. ``ΔRSS = RSS₁ − RSS₂`` is in noise-variance units; when the pair is one
signal plus noise, ΔRSS ~ χ² with about ``|S| + T`` degrees of freedom (the second component's footprint and
trace), so ``z = (ΔRSS − df) / √(2 df)`` is ~N(0, 1). The *joint* form also lets every other component reaching
``S`` re-fit its trace (footprint fixed) in both models: a contaminant another component already carries then
costs the merge nothing. ``weak`` = ΔRSS over the weaker member's activity energy (its trace minus its median).

Each pair is labelled from the simulator's truth: ``copy`` when both members' traces follow one neuron at
r ≥ 0.5 (``covered_twice_sources.MIN_R``). The fit is the benchmark's (``realistic_benchmark.CONFIGS``, ``--set``).

    PYTHONPATH=. .venv/bin/python benchmarks/pair_rank_loss.py \\
        benchmarks/results/realistic_cortex_l23_256x256x1200_seed4.npy cortex_l23 --set min_corr=0.6 min_pnr=4 \\
        halo_thr=1.8 --out /tmp/pairs_cortex_s4.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cnmflow.engine import fit
from cnmflow.engine.background import RingModel, ring_residual
from cnmflow.engine.estimates import Estimates
from cnmflow.params import build_params
from cnmflow.pixel_order import frames_to_pixels, pixels_to_frames
from assignments import parse_assignments
from covered_twice_sources import MIN_R
from realistic_benchmark import CONFIGS

#: HALS sweeps for each model (from the fit's components for the pair, from the pair's sum for the rank-1 one).
SWEEPS = 10


def residual(movie, est: Estimates, chunk: int = 200) -> np.ndarray:
    """``Y − AC − B`` of the whole movie, pixels × frames float32 (Fortran pixel order), every component's part
    taken out as the fit modelled it (rejected ones too)."""
    T = movie.shape[0]
    ring = RingModel(W=est.W, b0=est.b0, dims=est.dims, ssub_B=est.ssub_B, radius=0)
    out = np.empty((est.A.shape[0], T), np.float32)
    for start in range(0, T, chunk):
        stop = min(T, start + chunk)
        frames = np.asarray(movie[start:stop], np.float32)
        AC = pixels_to_frames(np.asarray((est.A @ est.C[:, start:stop]).T, np.float32), est.dims)
        out[:, start:stop] = frames_to_pixels(ring_residual(ring, frames, AC)).T
    return out


def hals(X: np.ndarray, A: np.ndarray, C: np.ndarray, free: list[int], sweeps: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative ``X ≈ A C``: every trace updated, only the footprints in ``free``."""
    A, C = A.copy(), C.copy()
    for _ in range(sweeps):
        AtX, AtA = A.T @ X, A.T @ A
        for k in range(A.shape[1]):
            if AtA[k, k] > 0:
                C[k] = np.maximum(C[k] + (AtX[k] - AtA[k] @ C) / AtA[k, k], 0)
        XCt, CCt = X @ C.T, C @ C.T
        for k in free:
            if CCt[k, k] > 0:
                A[:, k] = np.maximum(A[:, k] + (XCt[:, k] - A @ CCt[:, k]) / CCt[k, k], 0)
    return A, C


def _rss(X: np.ndarray, A: np.ndarray, C: np.ndarray) -> float:
    E = X - A @ C
    return float(np.einsum("ij,ij->", E, E))


def merge_loss(R: np.ndarray, est: Estimates, i: int, j: int, *, joint: bool) -> dict:
    """z, weak and ΔRSS per pixel-frame of replacing the pair (i, j) by one rank-1 component (module docstring)."""
    A = sp.csc_matrix(est.A)
    ai, aj = A[:, i].toarray().ravel(), A[:, j].toarray().ravel()
    S = np.flatnonzero((ai > 0) | (aj > 0))
    w = 1.0 / np.maximum(est.sn[S], 1e-6)
    AS = A[S].tocsc()
    reaching = np.flatnonzero(np.asarray((AS != 0).sum(axis=0)).ravel())
    others = [int(k) for k in reaching if k not in (i, j)] if joint else []
    members = [i, j, *others]
    X = (R[S].astype(np.float64) + AS[:, members].toarray() @ est.C[members].astype(np.float64)) * w[:, None]
    Ao = AS[:, others].toarray() * w[:, None]
    Co = np.maximum(est.C[others].astype(np.float64), 0)
    pair_A = np.column_stack([ai[S] * w, aj[S] * w])
    pair_C = np.maximum(est.C[[i, j]].astype(np.float64), 0)
    A2, C2 = hals(X, np.column_stack([pair_A, Ao]), np.vstack([pair_C, Co]), [0, 1], SWEEPS)
    summed = pair_A @ np.linalg.norm(pair_C, axis=1)
    start = np.maximum(summed @ X / float(summed @ summed), 0)
    A1, C1 = hals(X, np.column_stack([summed, Ao]), np.vstack([start, Co]), [0], SWEEPS)
    n, T = X.shape
    gain = _rss(X, A1, C1) - _rss(X, A2, C2)
    activity = [float(np.sum(np.outer(A2[:, k], C2[k] - np.median(C2[k])) ** 2)) for k in range(2)]
    df = n + T
    return {"z": (gain - df) / np.sqrt(2 * df), "weak": gain / max(min(activity), 1e-12), "per_pixel_frame": gain / (n * T),
            "n_pixels": int(n), "n_others": len(others)}


def peak_shares(est: Estimates) -> np.ndarray:
    """(K, K): footprint k's value at component j's peak over footprint k's maximum."""
    A = sp.csc_matrix(est.A)
    peaks = np.asarray(A.argmax(axis=0)).ravel()
    maxima = A.max(axis=0).toarray().ravel()
    return (A[peaks].toarray() / np.where(maxima > 0, maxima, np.inf)[None, :]).T


def pair_rows(movie, est: Estimates, truth, *, min_share: float) -> list[dict]:
    """Every pair whose peaks each lie on the other's footprint at ≥ ``min_share``, or that is a copy."""
    R = residual(movie, est)
    share = peak_shares(est)
    calcium = truth["calcium"]
    z_true = (calcium - calcium.mean(1, keepdims=True)) / calcium.std(1, keepdims=True)
    z_est = (est.C - est.C.mean(1, keepdims=True)) / np.maximum(est.C.std(1, keepdims=True), 1e-12)
    follows = z_est @ z_true.T / calcium.shape[1]         # (K, neurons) trace r
    rejected = set(int(k) for k in est.idx_components_bad)
    rows = []
    for i in range(est.K):
        for j in range(i + 1, est.K):
            common = int(np.argmax(np.minimum(follows[i], follows[j])))
            copy = bool(min(follows[i, common], follows[j, common]) >= MIN_R)
            if not copy and min(share[i, j], share[j, i]) < min_share:
                continue
            rows.append({"pair": [i, j], "rejected": [i in rejected, j in rejected], "copy": copy,
                         "shares": [round(float(share[i, j]), 3), round(float(share[j, i]), 3)],
                         "neurons": [[int(np.argmax(follows[k])), round(float(follows[k].max()), 3)] for k in (i, j)],
                         "alone": merge_loss(R, est, i, j, joint=False), "joint": merge_loss(R, est, i, j, joint=True)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path, help="realistic movie .npy beside its .truth.npz")
    parser.add_argument("config", choices=list(CONFIGS))
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--min-share", type=float, default=0.3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    params = {**CONFIGS[args.config]["params"], **parse_assignments(args.set)}
    movie = np.load(args.movie, mmap_mode="r")
    est = fit(movie, build_params(params))
    rows = pair_rows(movie, est, np.load(args.movie.with_suffix(".truth.npz")), min_share=args.min_share)
    args.out.write_text(json.dumps({"movie": args.movie.name, "params": params, "pairs": rows}, indent=1))
    for row in sorted(rows, key=lambda r: r["joint"]["z"]):
        print(f"{row['pair']} rejected {row['rejected']} copy {row['copy']} shares {row['shares']} neurons "
              f"{row['neurons']} z {row['alone']['z']:.1f} joint z {row['joint']['z']:.1f} weak {row['joint']['weak']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
