"""auto's PNR cut against gSig across the seed kernel's size steps, and the cut interpolated between two kernel
sizes (issue #18, h18step; lead (b) of h18fb / h18corr).

On training movies only (the benchmark's four, ``DENSE`` 17–20, ``SMALL_SOMA`` 21–24; never the held-out 11–14):

- ``--values``: at gSig = auto's ± 1 px in 0.05 px steps, the flipped-null PNR cut (full rate, as auto reads it at a
  given gSig), the number of null maxima, the true cells' median PNR and the visible blobs' median PNR (no fits);
- default: at auto's own gSig, the cut interpolated linearly in gSig between the middles of the kernel's steps — the
  own kernel's cut and that of the nearer neighbour size (gSig ± 0.5), weight |position in the step − ½|, both
  nulls read over gSig's own seed windows ("interp"), and the same on the cut / visible blobs' PNR ratio ("ratio");
  fits at auto's gSig, gSiz and min_corr with auto's cut, interp, ratio and 7 (F1@0.5 of the accepted components);
- ``--mirror``: the control, fits with auto's cut moved as far as interp moves it but the other way.

    PYTHONPATH=. .venv/bin/python benchmarks/cut_step.py [--values] [--no-fit] [--mirror]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import (DENSE, MOVIES, RESULTS, SMALL_SOMA, TSUB, Movie, cell_peak_values,  # noqa: E402
                                   downsampled, fit_and_score, fit_params, save_runs, simulate)

REDUCTION = float(np.sqrt(TSUB))  # pnr_reduction(TSUB, 1): the cuts below are full-rate PNRs


def cut_at(spectra, gsig_images: float, gsig_window: float, blobs: np.ndarray, footprints: np.ndarray) -> dict:
    """The flipped-null cut of the images filtered at ``gsig_images``, its maxima read over ``gsig_window``'s seed
    windows, with the visible blobs' and the true cells' median PNR there (full rate)."""
    from cnmflow.auto_params.cuts import noise_floor_cut, noise_k, null_maxima
    from cnmflow.auto_params.seed_images import images_of_filtered

    images = images_of_filtered(spectra.filtered([gsig_images], center_psf=True)[0], correlation=False)
    maxima = null_maxima(images.flipped_pnr, gsig_window)
    cut = noise_floor_cut(maxima, name="PNR", null="", k=noise_k(len(maxima)))
    pnr = images.pnr / REDUCTION
    return {"cut": cut.cut / REDUCTION, "n_maxima": len(maxima), "blobs": float(np.median(pnr[blobs[:, 0], blobs[:, 1]])),
            "cells": float(np.median(cell_peak_values([pnr], footprints)[:, 0]))}


def auto_of(movie: Movie):
    """The simulation, its tsub-2 sample, auto's estimate, the unrounded gSig it read its cut at, and the visible
    blobs (the strongest MIN_BLOBS when fewer are visible, as choose_gsig reads them)."""
    from cnmflow.auto_params import estimate_from_movie
    from cnmflow.auto_params.radius import MIN_BLOBS

    sim = simulate(movie)
    sample = downsampled(sim.movie)
    est = estimate_from_movie(sample, tsub=TSUB)
    blobs = np.asarray(est.radius.blobs[:max(est.radius.n_visible, MIN_BLOBS)], dtype=int)
    return sim, sample, est, est.gsig_choice.factor * est.radius.radius, blobs


def values_record(movie: Movie) -> dict:
    """The cut, null maxima, cells' and blobs' PNR on a 0.05 px gSig grid around auto's gSig."""
    from cnmflow.auto_params.seed_images import FrameSpectra
    from cnmflow.engine.summary_images import filter_kernel

    sim, sample, est, _, blobs = auto_of(movie)
    grid = np.round(np.arange(est.gSig - 1.0, est.gSig + 1.0001, 0.05), 3)
    spectra = FrameSpectra(sample, filter_kernel(grid.max(), center_psf=True).shape[0] // 2)
    rows = [{"gSig": float(g), "kernel": 2 * int(2 * g) + 1, **cut_at(spectra, g, g, blobs, sim.truth.footprints)}
            for g in grid]
    return {"movie": movie.name, "gSig": est.gSig, "min_pnr": est.min_pnr, "n_visible": est.radius.n_visible,
            "rows": rows}


def trial_record(movie: Movie, fit: bool, keys: tuple = ("auto", "interp", "ratio", 7.0)) -> dict:
    """auto's cut, the interpolated cuts at auto's gSig, and (``fit``) the fits with each of ``keys`` (7: a fixed
    cut; "mirror": auto's cut moved as far as interp moves it, the other way — a control for F1@0.5's roughness)."""
    from cnmflow.auto_params.seed_images import FrameSpectra
    from cnmflow.engine.summary_images import filter_kernel

    sim, sample, est, g, blobs = auto_of(movie)
    position = 2 * g - int(2 * g)
    other, weight = (g - 0.5 if position < 0.5 else g + 0.5), abs(position - 0.5)
    spectra = FrameSpectra(sample, filter_kernel(g + 0.5, center_psf=True).shape[0] // 2)
    own, near = (cut_at(spectra, x, g, blobs, sim.truth.footprints) for x in (g, other))
    interp = (1 - weight) * own["cut"] + weight * near["cut"]
    ratio = own["blobs"] * ((1 - weight) * own["cut"] / own["blobs"] + weight * near["cut"] / near["blobs"])
    record = {"movie": movie.name, "gSig": est.gSig, "kernel": 2 * int(2 * g) + 1, "position": round(position, 2),
              "neighbour_kernel": 2 * int(2 * other) + 1, "weight": round(weight, 2), "min_corr": est.min_corr,
              "auto": est.min_pnr, "own": round(own["cut"], 2), "neighbour": round(near["cut"], 2),
              "cells": round(own["cells"], 2), "interp": round(interp, 2), "ratio": round(ratio, 2)}
    record["mirror"] = round(2 * est.min_pnr - record["interp"], 2)  # interp's move from auto's, the other way
    if fit:
        for key in keys:
            cut = key if isinstance(key, float) else record[key]
            record[f"fit_{key:g}" if isinstance(key, float) else f"fit_{key}"] = fit_and_score(
                sim.movie, sim.truth, fit_params(movie.fr, est.gSig, est.gSiz, est.min_corr, cut))
    print(json.dumps({k: (v["f1_iou50"], v["K"]) if k.startswith("fit") else v for k, v in record.items()}), flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", action="store_true", help="the cut on a 0.05 px gSig grid (no fits)")
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--mirror", action="store_true", help="fit only the control: interp's move the other way")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    movies = MOVIES + DENSE + SMALL_SOMA
    runs = [values_record(m) for m in movies] if args.values else [
        trial_record(m, not args.no_fit, ("mirror",) if args.mirror else ("auto", "interp", "ratio", 7.0)) for m in movies]
    out = args.out or RESULTS / f"cut_step{'_values' if args.values else '_mirror' if args.mirror else ''}.json"
    save_runs(out, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
