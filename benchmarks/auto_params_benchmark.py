"""gSig / min_corr / min_pnr = "auto" against a grid, on the realistic 1P simulator (issue #18).

For a few small movies of ``cnmflow.synthetic.simulate_realistic_1p`` (CA1-like and cortex-L2/3-like,
sizes and peak SNRs varied) it

- estimates the three values the way a run with "auto" does (the movie written as a TIFF, read back by
  :func:`cnmflow.auto_params.estimate_parameters` with the run's tsub/ssub, as ``resolve_auto`` does),
  timed in wall and CPU seconds (the extraction's too, its worker processes included: a shared machine's wall clock
  is noisy);
- fits the movie with ``cnmflow.engine.fit`` once with the auto values (gSiz as auto sets it) and once per
  grid point: gSig in round(r)−1 … round(r)+2 (r the true half-max radius) at (0.7, 7), then the other
  threshold pairs at the gSig that did best; gSiz by auto's rule (2·gSig+1: with 4·gSig+1 the grid's best
  F1@0.5 on CA1 was 0.77 against auto's 0.83);
- scores every fit with ``shape_scoring.shape_score`` (F1 at IoU >= 0.5 of 90%-energy masks) and
  ``scoring.score`` (F1 of 20%-of-max masks, IoU > 0.3);
- compares the estimated radius (before gSig = k·r, k by choose_gsig) with the true median half-max radius,
  measured on the true footprints as the estimator defines it (the azimuthal mean profile around the
  peak falls to half the peak).

Writes ``results/auto_params_benchmark.json`` and prints one row per movie. The issue's targets: auto's
F1 within 0.02 of the grid's best, never zero cells on a movie with cells, radius within 20%, auto's
seconds <= 10% of the extraction's.

    .venv/bin/python benchmarks/auto_params_benchmark.py              # ~15 min on 2 cores
    .venv/bin/python benchmarks/auto_params_benchmark.py --auto-only  # the estimates only, seconds
    .venv/bin/python benchmarks/auto_params_benchmark.py --full-grid  # all 9 threshold pairs at the best gSig
    .venv/bin/python benchmarks/auto_params_benchmark.py --held-out   # four movies no rule was read from
    .venv/bin/python benchmarks/auto_params_benchmark.py --gsig-sweep # F1 at gSig = k x r_true
    .venv/bin/python benchmarks/auto_params_benchmark.py --reference   # auto vs hand-tuned files and CaImAn
    .venv/bin/python benchmarks/auto_params_benchmark.py --grid-from results/OLD.json  # fit auto's values only
    .venv/bin/python benchmarks/auto_params_benchmark.py --candidates  # what the seeds above the cuts lie on
    .venv/bin/python benchmarks/auto_params_benchmark.py --decompose --grid-from results/auto_params_benchmark.json
    .venv/bin/python benchmarks/auto_params_benchmark.py --sweep-auto  # auto vs gSig = 1.15·r on the sweep movies
    .venv/bin/python benchmarks/auto_params_benchmark.py --kernel-steps --small-soma  # cuts vs cells across kernel sizes
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TSUB = 2  # the 1P preset's


@dataclass(frozen=True)
class Movie:
    """One simulated movie: configuration, frame size, frames, seed and simulator overrides."""

    configuration: str
    shape: tuple[int, int]
    frames: int
    seed: int
    overrides: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        snr = self.overrides.get("peak_snr")
        tag = f"_snr{snr[0]:g}-{snr[1]:g}" if snr else ""
        tag += "".join(f"_{key}{value:g}" for key, value in sorted(self.overrides.items()) if key != "peak_snr")
        return f"{self.configuration}_{self.shape[0]}x{self.shape[1]}x{self.frames}{tag}_seed{self.seed}"

    @property
    def fr(self) -> float:
        from cnmflow.synthetic.realistic import PRESETS

        return PRESETS[self.configuration].fr


MOVIES = (
    Movie("ca1", (128, 128), 800, 1),
    Movie("ca1", (128, 128), 800, 2, {"peak_snr": (1.0, 4.0)}),
    Movie("cortex_l23", (160, 160), 800, 1),
    Movie("cortex_l23", (128, 128), 800, 2, {"peak_snr": (1.0, 4.0)}),
)
#: Movies the gSig/r relation was read from (``--gsig-sweep``; seeds 5–7, none of the others').
SWEEP = (
    Movie("ca1", (128, 128), 800, 5),
    Movie("ca1", (128, 128), 800, 6, {"peak_snr": (1.0, 4.0)}),
    Movie("cortex_l23", (128, 128), 800, 5),
    Movie("cortex_l23", (128, 128), 800, 6, {"peak_snr": (1.0, 4.0)}),
    Movie("ca1", (128, 128), 800, 7, {"soma_radius_um": 6.0, "peak_snr": (1.0, 6.0)}),
    Movie("cortex_l23", (128, 128), 800, 7, {"soma_radius_um": 8.0}),
)
#: gSig / true half-max radius tried by ``--gsig-sweep``, at one threshold pair.
SWEEP_FACTORS, SWEEP_THRESHOLDS = (1.0, 1.15, 1.3, 1.5), (0.75, 8)
#: Movies no rule was read from (``--held-out``): other seeds, densities, cell sizes and SNRs.
HELD_OUT = (
    Movie("ca1", (128, 128), 800, 11, {"n_neurons": 240}),
    Movie("ca1", (128, 128), 800, 12, {"soma_radius_um": 6.5, "peak_snr": (1.0, 6.0)}),
    Movie("cortex_l23", (128, 128), 800, 13, {"soma_radius_um": 8.0, "n_neurons": 100}),
    Movie("cortex_l23", (128, 128), 800, 14, {"peak_snr": (0.8, 3.0)}),
)
#: Training analogues of held-out seed 11 (dense CA1, 240 cells per 128²; ``--dense``): what auto's PNR cut does on
#: dense movies is read on these, never on seed 11.
DENSE = tuple(Movie("ca1", (128, 128), 800, seed, {"n_neurons": 240}) for seed in (17, 18, 19, 20))
#: Training analogues of held-out seed 12 (CA1, 6.5 µm somata, peak SNR 1–6; ``--small-soma``), read instead of it.
SMALL_SOMA = tuple(Movie("ca1", (128, 128), 800, seed, {"soma_radius_um": 6.5, "peak_snr": (1.0, 6.0)})
                   for seed in (21, 22, 23, 24))


def save_runs(path: Path, runs: list) -> None:
    """Write a script's records as ``{"runs": [...]}`` (its folder made first); the scripts call it after each movie,
    so a run cut short keeps what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}, indent=1))


def reseeded(movies: tuple[Movie, ...], seeds: list[int]) -> tuple[Movie, ...]:
    """The same configurations with other seeds (``--seeds``): fresh movies that no session has read. The seeds go
    to the configurations in order, cycling (eight seeds give each of four configurations two movies)."""
    if not seeds or len(seeds) % len(movies):
        raise SystemExit(f"--seeds: give a multiple of {len(movies)} seeds (one per configuration), got {len(seeds)}")
    return tuple(replace(movies[i % len(movies)], seed=seed) for i, seed in enumerate(seeds))


#: (min_corr, min_pnr) of the default grid, a cross through (0.7, 7): the centre at every gSig, the other two
#: pairs at the gSig that did best at the centre (a shared 2-core machine runs ~6 fits per movie).
CENTRE, OTHERS = (0.7, 7), ((0.6, 5), (0.8, 10))
FULL_THRESHOLDS = tuple((c, p) for c in (0.6, 0.7, 0.8) for p in (5, 7, 10))


def true_half_max_radius(footprint: np.ndarray) -> float:
    """Where the azimuthal mean profile around the footprint's peak first falls to half the peak (px),
    interpolated between half-pixel rings, as :func:`cnmflow.auto_params` measures a blob (its floor is 0:
    a true footprint has no background)."""
    row, col = np.unravel_index(int(np.argmax(footprint)), footprint.shape)
    yy, xx = np.indices(footprint.shape)
    ring = np.floor(np.hypot(yy - row, xx - col).ravel() / 0.5).astype(int)
    counts = np.bincount(ring)
    profile = np.bincount(ring, weights=footprint.ravel().astype(np.float64)) / np.maximum(counts, 1)
    radius = (np.arange(len(profile)) + 0.5) * 0.5
    radius[0] = 0.0
    profile, radius = profile[counts > 0], radius[counts > 0]
    half = 0.5 * profile[0]
    j = int(np.nonzero(profile <= half)[0][0])
    return float(radius[j - 1] + (profile[j - 1] - half) / (profile[j - 1] - profile[j]) * (radius[j] - radius[j - 1]))


def simulate(movie: Movie):
    from cnmflow.synthetic import simulate_realistic_1p

    return simulate_realistic_1p(movie.configuration, shape=movie.shape, n_frames=movie.frames, rng=movie.seed,
                                 **movie.overrides)


#: Times the estimate is run per movie (deterministic: the same values each time); its seconds are the least of
#: them — half a second of CPU on a shared machine moves by ±50% with the load, the extraction's ten by far less.
ESTIMATE_REPEATS = 3


def estimate_auto(frames: np.ndarray, folder: Path, repeats: int = ESTIMATE_REPEATS) -> tuple[dict, float]:
    """The auto values (gSig, gSiz, min_corr, min_pnr) and the estimate's seconds (wall and CPU, each the least of
    ``repeats`` runs), from a TIFF as a run reads it."""
    import tifffile

    from cnmflow.auto_params import estimate_parameters

    path = folder / "movie.tif"
    tifffile.imwrite(path, frames)
    seconds = cpu = math.inf
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        est = estimate_parameters([path], tsub=TSUB, ssub=1)
        seconds = min(seconds, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    values = {"radius": round(est.radius.radius, 2), "factor": est.gsig_choice.factor, "gSig": est.gSig, "gSiz": est.gSiz, "min_corr": est.min_corr, "min_pnr": est.min_pnr,
              "n_seeds": int(len(est.seeds)), "cpu_s": round(cpu, 3), "relaxed": est.relaxed, "radius_iqr": np.percentile(est.radius.blob_radii, [25, 75]).round(2).tolist()}
    return values, seconds


def fit_params(fr: float, gsig: float, gsiz: int, min_corr: float, min_pnr: float) -> dict:
    """A 1P fit's parameters; patches of 32 or 40 px (a cell and its ring background fit in one)."""
    rf = 32 if gsig < 5 else 40
    return dict(fr=fr, gSig=gsig, gSiz=int(gsiz), min_corr=min_corr, min_pnr=min_pnr, tsub=TSUB, rf=rf,
                stride=rf // 2, n_processes=2)


def process_tree_cpu() -> float:
    """CPU seconds (user + sys) of this process and its reaped children: the extraction's worker processes too
    (small movies run their patches in-process, where this equals ``time.process_time``)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def fit_and_score(frames: np.ndarray, truth, params: dict) -> dict:
    """Fit, then F1@IoU0.5 (shape_scoring) and F1 (scoring) against the true footprints."""
    from cnmflow.engine import fit
    from cnmflow.params import build_params
    from cnmflow.scoring import score
    from cnmflow.shape_scoring import shape_score

    started, cpu = time.perf_counter(), process_tree_cpu()
    est = fit(frames, build_params(dict(params)))
    seconds, cpu = time.perf_counter() - started, process_tree_cpu() - cpu
    # scored as a CaImAn user reads a fit (and as realistic_benchmark.py scores): the components the engine
    # rejected (idx_components_bad, e.g. out of focus) left out
    accepted = np.setdiff1d(np.arange(est.K), est.idx_components_bad)
    footprints = est.footprints()[accepted]
    shapes = shape_score(truth.footprints, footprints)
    found = score(truth.footprints, footprints)
    return {"params": {k: params[k] for k in ("gSig", "gSiz", "min_corr", "min_pnr")}, "K": int(accepted.size),
            "n_rejected": int(est.K - accepted.size),
            "f1_iou50": round(float(shapes.f1_iou50), 3), "f1_score": round(float(found.f1), 3),
            "seconds": round(seconds, 1), "cpu_s": round(cpu, 1)}


def grid_sizes(true_radius: float) -> list[int]:
    """gSig in {round(r) − 1, ..., round(r) + 2}: the engine does best a little above the half-max radius r."""
    centre = int(round(true_radius))
    return [g for g in (centre - 1, centre, centre + 1, centre + 2) if g >= 1]


def threshold_points(gsig: int, full: bool) -> list[tuple[int, float, float]]:
    """The (min_corr, min_pnr) pairs tried at one gSig besides the centre (0.7, 7): the cross's two, or all."""
    pairs = FULL_THRESHOLDS if full else (CENTRE, *OTHERS)
    return [(gsig, c, p) for c, p in pairs if (c, p) != CENTRE]


def fit_grid(movie: "Movie", sim, true_radius: float, full: bool, *,
             fit_point: Callable[[dict], dict] | None = None, key: str = "f1_iou50") -> list[dict]:
    """Every gSig at (0.7, 7), then the other thresholds at the gSig that did best there (by ``key`` of each
    point's record; ``fit_point`` fits one point's parameters, one fit on the movie unless given)."""
    from cnmflow.auto_params import gsiz_for

    fit_point = fit_point or (lambda params: fit_and_score(sim.movie, sim.truth, params))
    fr = movie.fr
    grid = [fit_point(fit_params(fr, g, gsiz_for(g), *CENTRE)) for g in grid_sizes(true_radius)]
    best = max(grid, key=lambda r: r[key])["params"]["gSig"]
    grid += [fit_point(fit_params(fr, g, gsiz_for(g), c, p)) for g, c, p in threshold_points(best, full)]
    return grid


def fit_cross(movie: "Movie", sim, true_radius: float, grid: list[dict]) -> list[dict]:
    """Every grid gSig at every pair of the full threshold set (``--cross``), the fits already in ``grid`` reused:
    the same points on every movie, so one fixed setting can be compared with auto across a set of movies."""
    from cnmflow.auto_params import gsiz_for

    fits = {(r["params"]["gSig"], r["params"]["min_corr"], r["params"]["min_pnr"]): r for r in grid}
    for g in grid_sizes(true_radius):
        for c, p in FULL_THRESHOLDS:
            if (g, c, p) not in fits:
                fits[(g, c, p)] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, g, gsiz_for(g), c, p))
    return [fits[(g, c, p)] for g in grid_sizes(true_radius) for c, p in FULL_THRESHOLDS]


def median_true_radius(truth) -> float:
    """The true cells' median half-max radius (px): what auto's radius is judged against."""
    return float(np.median([true_half_max_radius(f) for f in truth.footprints]))


def run_movie(movie: Movie, *, full: bool, auto_only: bool, before: dict | None = None,
              grid: list[dict] | None = None, cross: bool = False) -> dict:
    """Simulate, estimate, fit auto and the grid (or take ``grid``, an earlier run's fits), and compare."""
    sim = simulate(movie)
    truth_r = median_true_radius(sim.truth)
    with tempfile.TemporaryDirectory() as folder:
        auto, auto_s = estimate_auto(sim.movie, Path(folder))
    record = {"movie": movie.name, "n_true": int(len(sim.truth.footprints)), "true_half_max_radius": round(truth_r, 2),
              "auto": auto, "auto_s": round(auto_s, 2), "radius_error": round(auto["radius"] / truth_r - 1, 3)}
    if auto_only:
        return record
    fr = movie.fr
    record["auto_fit"] = fit_and_score(sim.movie, sim.truth, fit_params(fr, auto["gSig"], auto["gSiz"],
                                                                        auto["min_corr"], auto["min_pnr"]))
    if before is not None:  # an earlier estimator's values (an --auto-only record), fitted the same way
        record["auto_before"] = {"auto": before["auto"], "fit": fit_and_score(sim.movie, sim.truth, fit_params(
            fr, before["auto"]["gSig"], before["auto"]["gSiz"], before["auto"]["min_corr"], before["auto"]["min_pnr"]))}
    record["grid"] = grid if grid is not None else fit_grid(movie, sim, truth_r, full)
    best = max(record["grid"], key=lambda r: r["f1_iou50"])
    best_found = max(record["grid"], key=lambda r: r["f1_score"])
    record["best_grid"] = {"f1_iou50": best["f1_iou50"], "params": best["params"],
                           "f1_score": best_found["f1_score"], "params_f1_score": best_found["params"]}
    record["gap_f1_iou50"] = round(best["f1_iou50"] - record["auto_fit"]["f1_iou50"], 3)
    record["gap_f1_score"] = round(best_found["f1_score"] - record["auto_fit"]["f1_score"], 3)
    if cross:  # the full cross beside the grid; "best_grid" stays the grid's, as in earlier runs
        record["cross"] = fit_cross(movie, sim, truth_r, record["grid"])
        record["best_cross"] = max(record["cross"], key=lambda r: r["f1_iou50"])
    record["auto_over_extraction"] = round(auto_s / record["auto_fit"]["seconds"], 3)
    record["auto_over_extraction_cpu"] = round(auto["cpu_s"] / max(record["auto_fit"]["cpu_s"], 1e-9), 3)
    return record


def downsampled(frames: np.ndarray) -> np.ndarray:
    """The movie block-mean downsampled by TSUB in time, as the estimate's sample of a short movie is."""
    frames = frames[: frames.shape[0] // TSUB * TSUB]
    return frames.reshape(-1, TSUB, *frames.shape[1:]).mean(axis=1, dtype=np.float32)


def decompose(movie: Movie, grid: list[dict]) -> dict:
    """How much of auto's gap to the grid's best is the gSig and how much the cuts: F1 at auto's gSig with the
    grid's best cuts, and at the grid's best gSig with the cuts auto computes at that gSig."""
    from cnmflow.auto_params import estimate_from_movie, gsiz_for

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    auto = estimate_from_movie(sample, tsub=TSUB)
    best = max(grid, key=lambda r: r["f1_iou50"])
    g, c, p = (best["params"][k] for k in ("gSig", "min_corr", "min_pnr"))
    at_best = estimate_from_movie(sample, tsub=TSUB, gsig=g)
    points = {"auto": (auto.gSig, auto.gSiz, auto.min_corr, auto.min_pnr),
              "auto_gsig_best_cuts": (auto.gSig, auto.gSiz, c, p),
              "best_gsig_auto_cuts": (g, gsiz_for(g), at_best.min_corr, at_best.min_pnr)}
    record = {"movie": movie.name, "best": best, "factor": auto.gsig_choice.factor, "wins": auto.gsig_choice.wins}
    for key, values in points.items():
        record[key] = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, *values))
    return record


def cell_peak_values(images: np.ndarray, footprints: np.ndarray) -> np.ndarray:
    """Each image's value at each true cell: the largest over the 3×3 pixels around its footprint's peak."""
    values = []
    for footprint in footprints:
        row, col = np.unravel_index(int(np.argmax(footprint)), footprint.shape)
        box = (slice(max(row - 1, 0), row + 2), slice(max(col - 1, 0), col + 2))
        values.append([image[box].max() for image in images])
    return np.asarray(values)


def kernel_step_estimates(movie: Movie):
    """The movie simulated, and auto's estimate at one gSig in each of four consecutive seed-kernel sizes around the
    true radius (``2·int(2·gSig) + 1`` steps at every half pixel; each gSig 0.2 px past a step): ``(sim, [(gSig,
    estimate), ...])``."""
    from cnmflow.auto_params import estimate_from_movie

    sim = simulate(movie)
    truth_r = median_true_radius(sim.truth)
    sample = downsampled(sim.movie)
    gsigs = [round((int(2 * truth_r) + j) / 2 + 0.2, 2) for j in (-1, 0, 1, 2)]
    return sim, [(g, estimate_from_movie(sample, tsub=TSUB, gsig=g)) for g in gsigs]


def kernel_steps(movie: Movie) -> list[dict]:
    """Auto's cuts at one gSig in each of four consecutive seed-kernel sizes around the true radius (the size
    2·int(2·gSig) + 1 steps at every half pixel), against the true cells' PNR there: how far the PNR cut moves with
    the kernel, and how far the cells do."""
    sim, estimates = kernel_step_estimates(movie)
    records = []
    for g, est in estimates:
        cells = cell_peak_values([est.correlation_image, est.pnr_image / est.pnr_reduction], sim.truth.footprints)
        kept = (cells[:, 0] >= est.min_corr) & (cells[:, 1] >= est.min_pnr)
        records.append({"movie": movie.name, "n_true": len(cells), "gSig": g, "kernel": 2 * int(2 * g) + 1,
                        "min_corr": est.min_corr, "min_pnr": est.min_pnr,
                        "null_floor": round(est.pnr.floor / est.pnr_reduction, 2),
                        "null_sd": round(est.pnr.sd / est.pnr_reduction, 2),
                        "cells_median_pnr": round(float(np.median(cells[:, 1])), 2), "cells_above_cuts": int(kept.sum()),
                        "cells_above_0.7_7": int(((cells[:, 0] >= 0.7) & (cells[:, 1] >= 7)).sum())})
        print(json.dumps(records[-1]), flush=True)
    return records


def sweep_auto() -> list[dict]:
    """On the SWEEP movies, auto's values against the fixed rule gSig = 1.15·r it replaced (with auto's cuts at
    that gSig): the check of ``choose_gsig`` on the movies the factor was first read from."""
    from cnmflow.auto_params import estimate_from_movie, gsiz_for

    records = []
    for movie in SWEEP:
        sim = simulate(movie)
        sample = downsampled(sim.movie)
        auto = estimate_from_movie(sample, tsub=TSUB)
        fixed = estimate_from_movie(sample, tsub=TSUB, gsig=round(1.15 * auto.radius.radius, 2))
        records.append({"movie": movie.name, "factor": auto.gsig_choice.factor, "margins": auto.gsig_choice.margins,
                        "wins": auto.gsig_choice.wins,
                        "auto": fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, auto.gSig, auto.gSiz,
                                                                               auto.min_corr, auto.min_pnr)),
                        "fixed_1.15": fit_and_score(sim.movie, sim.truth, fit_params(
                            movie.fr, fixed.gSig, gsiz_for(fixed.gSig), fixed.min_corr, fixed.min_pnr))})
        print(json.dumps(records[-1]), flush=True)
    return records


def gsig_sweep(factors: tuple[float, ...] = SWEEP_FACTORS) -> list[dict]:
    """F1 at gSig = k·r_true (k in ``factors``) on the SWEEP movies: the range :data:`cnmflow.auto_params.GSIG_FACTORS` covers."""
    from cnmflow.auto_params import gsiz_for

    records = []
    for movie in SWEEP:
        sim = simulate(movie)
        truth_r = median_true_radius(sim.truth)
        for k in factors:
            g = round(k * truth_r, 2)
            fitted = fit_and_score(sim.movie, sim.truth, fit_params(movie.fr, g, gsiz_for(g), *SWEEP_THRESHOLDS))
            records.append({"movie": movie.name, "true_half_max_radius": round(truth_r, 2), "k": k, **fitted})
            print(json.dumps(records[-1]), flush=True)
    for k in factors:
        print(f"gSig = {k:g}·r: mean F1@0.5 {np.mean([r['f1_iou50'] for r in records if r['k'] == k]):.3f}")
    return records


#: Movies outside the simulator, each with hand-tuned parameter files and, where computed, CaImAn 1.12.1's own
#: result with the first file (/work/shared/data/caiman-reference, its README): a simulated 1P movie with
#: ground truth (Gaussian footprints; gSig 3, 0.8 / 10 by hand) and short parts of a real Inscopix recording
#: (/work/shared/data/ideas, CC BY-NC: read there; no truth).
CAIMAN_REFERENCE, IDEAS = Path("/work/shared/data/caiman-reference"), Path("/work/shared/data/ideas")
REFERENCE_MOVIES = (
    ("synth1p_128", CAIMAN_REFERENCE / "synth1p_128.tif", (CAIMAN_REFERENCE / "params_synth1p_128.json",)),
    ("part2", IDEAS / "movie_part2_108x123x63.tiff", (CAIMAN_REFERENCE / "params_part2.json",
                                                      IDEAS / "params_source_extraction.json",
                                                      IDEAS / "params_demo_pipeline_cnmfE.json")),
    ("part3", IDEAS / "movie_part3.isxd", (IDEAS / "params_source_extraction.json",
                                           IDEAS / "params_demo_pipeline_cnmfE.json")),
)


def caiman_footprints(name: str, dims: tuple[int, int]) -> np.ndarray | None:
    """CaImAn's footprints ``(K, rows, cols)`` from its saved result (A: pixels × K, Fortran pixel order)."""
    import h5py
    import scipy.sparse

    path = CAIMAN_REFERENCE / f"{name}_caiman.hdf5"
    if not path.exists():
        return None
    with h5py.File(path, "r") as f:
        group = f["estimates/A"]
        a = scipy.sparse.csc_matrix((group["data"][()], group["indices"][()], group["indptr"][()]),
                                    shape=tuple(group["shape"][()]))
    return np.stack([a[:, k].toarray().reshape(dims, order="F") for k in range(a.shape[1])])


def scored(label: str, footprints: np.ndarray, truth: np.ndarray | None) -> dict:
    """K, and F1@0.5 and the matched footprints' median IoU (shape_scoring) and F1 (scoring) against ``truth``
    when there is one: on synth1p_128 the hand file's row and CaImAn's are the same input through both engines."""
    from cnmflow.scoring import score
    from cnmflow.shape_scoring import shape_score

    out = {f"{label}_K": int(len(footprints))}
    if truth is not None:
        shapes = shape_score(truth, footprints)
        out[f"{label}_f1_iou50"] = round(float(shapes.f1_iou50), 3)
        out[f"{label}_median_iou"] = round(float(shapes.median_iou), 3)
        out[f"{label}_f1_score"] = round(float(score(truth, footprints).f1), 3)
    return out


def reference_comparison() -> list[dict]:
    """Auto (all three) against each hand-tuned file on the reference movies, fitted by this engine, and
    CaImAn's own components where saved: counts, and F1 against the truth where there is one (all scored by
    the same code)."""
    from cnmflow.auto_params import estimate_parameters
    from cnmflow.engine import fit
    from cnmflow.movies import validate_series
    from cnmflow.movies.read import read_frames
    from cnmflow.params import build_params
    from cnmflow.params_file import read_params_file

    keys = ("gSig", "gSiz", "min_corr", "min_pnr")
    records = []
    for name, movie_path, params_paths in REFERENCE_MOVIES:
        if not movie_path.exists():
            continue
        info = validate_series([movie_path], min_frames=2).movies[0]
        frames = read_frames(info, 0, info.n_frames)
        hands = [dict(read_params_file(path).values) for path in params_paths]
        est = estimate_parameters([movie_path], tsub=int(hands[0].get("tsub", 1)))
        auto = hands[0] | {key: getattr(est, key) for key in keys}
        truth_path = CAIMAN_REFERENCE / f"{name}_gt.npz"
        truth = np.load(truth_path)["A"] if truth_path.exists() else None
        record = {"movie": name, "frames": int(info.n_frames), "auto": {k: auto[k] for k in keys},
                  **scored("auto", fit(frames, build_params(auto)).footprints(), truth)}
        for path, hand in zip(params_paths, hands):
            record[path.stem] = {k: hand[k] for k in keys} | scored("hand", fit(frames, build_params(hand)).footprints(), truth)
        caiman = caiman_footprints(name, frames.shape[1:])
        if caiman is not None:
            record["caiman"] = scored("caiman", caiman, truth)
        records.append(record)
        print(json.dumps(record), flush=True)
    return records

def auc(values: np.ndarray, positive: np.ndarray) -> float | None:
    """Probability that a positive ranks above a negative by ``values`` (Mann–Whitney; ties count half)."""
    from scipy.stats import rankdata

    ok = np.isfinite(values)
    values, positive = values[ok], positive[ok]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(values)
    return round(float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)), 2)


def seed_sources(truth, seeds: np.ndarray) -> np.ndarray:
    """What each seed lies on: "in focus" (a true footprint > 0.2 of its max there), "out of focus" (an
    out-of-focus cell's image > 0.2) or "other" (vessel, neuropil, between cells)."""
    on_cell = truth.footprints.max(axis=0)[seeds[:, 0], seeds[:, 1]] > 0.2
    oof = [j for j, label in enumerate(truth.background_labels) if label.startswith("cell")]
    on_oof = (truth.background_spatial[oof].max(axis=0)[seeds[:, 0], seeds[:, 1]] > 0.2 if oof
              else np.zeros(len(seeds), bool))
    return np.where(on_cell, "in focus", np.where(on_oof, "out of focus", "other"))


def candidate_record(movie: Movie) -> dict:
    """The distinct seeds above auto's cuts (one per place, see ``distinct_seeds``) by what they lie on, per shape
    class, and how well each feature orders in-focus seeds above the rest (AUC)."""
    from cnmflow.auto_params import estimate_from_movie

    sim = simulate(movie)
    est = estimate_from_movie(downsampled(sim.movie), tsub=TSUB)
    classes = est.seed_classes()
    distinct = est.seed_distinct
    seeds = est.seeds[distinct]
    source = seed_sources(sim.truth, seeds)
    in_focus = source == "in focus"
    features = {"corr": est.correlation_image[seeds[:, 0], seeds[:, 1]], "pnr": est.pnr_image[seeds[:, 0], seeds[:, 1]],
                "scale": -np.abs(est.seed_radii[distinct] / est.radius.radius - 1), "round": est.seed_round[distinct] * 1.0}
    by_class = {name: {src: int((source[mask[distinct]] == src).sum()) for src in ("in focus", "out of focus", "other")}
                for name, mask in classes.items()}
    return {"movie": movie.name, "n_true": int(len(sim.truth.footprints)), "min_corr": est.min_corr,
            "min_pnr": est.min_pnr, "distinct_seeds": int(distinct.sum()), "in_focus": int(in_focus.sum()),
            "by_class": by_class, "auc": {name: auc(np.asarray(v, float), in_focus) for name, v in features.items()}}


def print_candidates(records: list[dict]) -> None:
    print(f"{'movie':<44}{'seeds':>6}{'in':>4} | {'cell (in/oof/other)':>20}{'ridge':>12}{'broader':>12} | "
          "AUC corr  pnr scale round")
    for r in records:
        c = {name: "/".join(str(v) for v in counts.values()) for name, counts in r["by_class"].items()}
        a = r["auc"]
        print(f"{r['movie'][:44]:<44}{r['distinct_seeds']:>6}{r['in_focus']:>4} | {c['cell']:>20}{c['ridge']:>12}"
              f"{c['broader']:>12} |     {a['corr']}  {a['pnr']}  {a['scale']}  {a['round']}")


def print_table(records: list[dict]) -> None:
    head = (f"{'movie':<36}{'true r':>7}{'gSig':>6}{'err%':>6}{'corr':>6}{'pnr':>6}{'auto s':>7}"
            f"{'K':>4}/{'n':<4}{'F1.5':>6}{'best':>6}{'gap':>6}{'F1':>6}{'best':>6}{'gap':>6}{'fit s':>7}{'ratio':>6}")
    print(head)
    for r in records:
        a = r["auto"]
        line = (f"{r['movie']:<36}{r['true_half_max_radius']:>7.2f}{a['gSig']:>6.2f}{100 * r['radius_error']:>6.0f}"
                f"{a['min_corr']:>6.2f}{a['min_pnr']:>6.2f}{r['auto_s']:>7.2f}")
        if "auto_fit" in r:
            f, b = r["auto_fit"], r["best_grid"]
            line += (f"{f['K']:>4}/{r['n_true']:<4}{f['f1_iou50']:>6.3f}{b['f1_iou50']:>6.3f}{r['gap_f1_iou50']:>6.3f}"
                     f"{f['f1_score']:>6.3f}{b['f1_score']:>6.3f}{r['gap_f1_score']:>6.3f}{f['seconds']:>7.1f}"
                     f"{r['auto_over_extraction']:>6.3f}{r['auto_over_extraction_cpu']:>6.3f}")
        print(line)
        if "auto_before" in r:
            a, f = r["auto_before"]["auto"], r["auto_before"]["fit"]
            print(f"{'  before: ' + r['movie'][:26]:<36}{'':>7}{a['gSig']:>6.2f}{'':>6}"
                  f"{a['min_corr']:>6.2f}{a['min_pnr']:>6.2f}{'':>7}{f['K']:>4}/{r['n_true']:<4}{f['f1_iou50']:>6.3f}{'':>12}"
                  f"{f['f1_score']:>6.3f}")


def command_line() -> argparse.ArgumentParser:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auto-only", action="store_true", help="estimate only, no fits")
    parser.add_argument("--full-grid", action="store_true", help="all of {0.6, 0.7, 0.8} x {5, 7, 10}")
    parser.add_argument("--gsig-sweep", action="store_true", help="F1 at gSig = k x the true radius (the range choose_gsig searches)")
    parser.add_argument("--reference", action="store_true",
                        help="auto vs hand-tuned files and CaImAn's own results on movies outside the simulator")
    parser.add_argument("--factors", type=float, nargs="+", help="--gsig-sweep's k (default 1 1.15 1.3 1.5)")
    parser.add_argument("--candidates", action="store_true",
                        help="what the seeds above auto's cuts lie on, by shape class, and each feature's AUC for "
                        "in-focus seeds (SWEEP and the default movies, or --held-out)")
    parser.add_argument("--decompose", action="store_true", help="with --grid-from: F1 at auto's gSig with the grid's "
                        "best cuts and at the grid's best gSig with auto's cuts there (what part of the gap is which)")
    parser.add_argument("--sweep-auto", action="store_true", help="auto against gSig = 1.15·r (auto's cuts) on the "
                        "--gsig-sweep movies")
    parser.add_argument("--held-out", action="store_true", help="the held-out movies instead of the four tuned on")
    parser.add_argument("--dense", action="store_true", help="the dense CA1 training movies (DENSE, seed 11's "
                        "analogues) instead of the four tuned on")
    parser.add_argument("--small-soma", action="store_true", help="the CA1 6.5 µm training movies (SMALL_SOMA, seed "
                        "12's analogues) instead of the four tuned on")
    parser.add_argument("--kernel-steps", action="store_true", help="auto's cuts and the true cells' PNR at one gSig "
                        "in each of four kernel sizes around the true radius (no fits; with --dense / --small-soma)")
    parser.add_argument("--before", type=Path, help="an --auto-only JSON of an earlier estimator: fit its values too")
    parser.add_argument("--grid-from", type=Path, help="an earlier run's JSON: reuse its grid fits (they do not "
                        "depend on the estimator), fit only auto's values")
    parser.add_argument("--cross", action="store_true", help="also every grid gSig x all nine threshold pairs "
                        "(reusing the grid's fits): the points a fixed setting could take on every movie")
    parser.add_argument("--seeds", type=int, nargs="+", help="the chosen set's configurations with these seeds "
                        "instead (fresh movies: one seed per configuration, in order; a multiple of four cycles)")
    parser.add_argument("--out", type=Path, help="default results/auto_params_benchmark[_held_out].json")
    return parser


def chosen_movies(args: argparse.Namespace) -> tuple[Movie, ...]:
    """The movies the options name: the held-out, dense, small-soma or default four, reseeded by ``--seeds``."""
    movies = HELD_OUT if args.held_out else DENSE if args.dense else SMALL_SOMA if args.small_soma else MOVIES
    return reseeded(movies, args.seeds) if args.seeds else movies


def main(argv: list[str] | None = None) -> int:
    parser = command_line()
    args = parser.parse_args(argv)
    if args.reference:
        out = args.out or RESULTS / "auto_params_reference.json"
        save_runs(out, reference_comparison())
        return 0
    if args.gsig_sweep:
        sweep = gsig_sweep(tuple(args.factors or SWEEP_FACTORS))
        out = args.out or RESULTS / "auto_params_gsig_sweep.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"thresholds": SWEEP_THRESHOLDS, "runs": sweep}, indent=1))
        return 0
    if args.sweep_auto or args.decompose:
        if args.decompose and not args.grid_from:
            parser.error("--decompose needs --grid-from (a run's grid fits)")
        grids = {r["movie"]: r["grid"] for r in json.loads(args.grid_from.read_text())["runs"]} if args.decompose else {}
        runs = (sweep_auto() if args.sweep_auto else
                [decompose(m, grids[m.name]) for m in chosen_movies(args) if m.name in grids])
        name = "sweep_auto" if args.sweep_auto else f"decompose{'_held_out' if args.held_out else ''}"
        out = args.out or RESULTS / f"auto_params_{name}.json"
        save_runs(out, runs)
        return 0
    if args.candidates:
        records = [candidate_record(movie) for movie in (HELD_OUT if args.held_out else MOVIES + SWEEP)]
        out = args.out or RESULTS / f"auto_params_candidates{'_held_out' if args.held_out else ''}.json"
        save_runs(out, records)
        print_candidates(records)
        return 0
    which = "_held_out" if args.held_out else "_dense" if args.dense else "_small_soma" if args.small_soma else ""
    which += f"_seeds{'-'.join(map(str, args.seeds))}" if args.seeds else ""
    chosen = chosen_movies(args)
    if args.kernel_steps:
        out = args.out or RESULTS / f"auto_params_kernel_steps{which}.json"
        save_runs(out, [r for movie in chosen for r in kernel_steps(movie)])
        return 0
    args.out = args.out or RESULTS / f"auto_params_benchmark{which}.json"
    before = {r["movie"]: r for r in json.loads(args.before.read_text())["runs"]} if args.before else {}
    grids = {r["movie"]: r["grid"] for r in json.loads(args.grid_from.read_text())["runs"]} if args.grid_from else {}
    records = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for movie in chosen:
        records.append(run_movie(movie, full=args.full_grid, auto_only=args.auto_only, before=before.get(movie.name),
                                 grid=grids.get(movie.name), cross=args.cross))
        print(json.dumps(records[-1]), flush=True)
        summary = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                   "tsub": TSUB, "full_grid": args.full_grid, "runs": records}
        args.out.write_text(json.dumps(summary, indent=1))  # after each movie: a long run's finished movies kept
    print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
