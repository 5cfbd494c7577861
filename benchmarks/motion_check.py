"""The pre-fit motion check (``cnmflow.motion.movement``): what it reads on still and moving movies, and what a run
that leaves the motion uncorrected loses against one that corrects it.

    PYTHONPATH=. .venv/bin/python benchmarks/motion_check.py --readings        # still and moving: sd, largest
    PYTHONPATH=. .venv/bin/python benchmarks/motion_check.py --fits --seeds 3 6  # F1 uncorrected vs rigid
    PYTHONPATH=. .venv/bin/python benchmarks/motion_check.py --fits --drift --motions 0 1 2 3  # slow drift, px in all

Movies: the realistic simulator (CA1, cortex L2/3; 128² at the given frames, rigid brain motion of sd ``motion`` px
per axis), the Gaussian simulator's still movies (bright cells on a smooth background: nothing fixed to register
on), and the real samples where ``../shared`` holds them. Readings are compared with the simulator's true shifts
over the same frames.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

#: Parameters a user sets for each realistic configuration (as the fidelity benchmarks' picks).
FIT_PARAMS = {"cortex_l23": dict(fr=20.0, gSig=3, gSiz=13, min_corr=0.6, min_pnr=4, rf=40, stride=20, n_processes=1),
              "ca1": dict(fr=10.0, gSig=6, gSiz=25, min_corr=0.6, min_pnr=6, rf=64, stride=32, n_processes=1)}
MOTIONS = (0.0, 0.15, 0.3, 0.45, 0.6, 1.1)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _reading(path: Path, gsig: float) -> dict:
    from cnmflow.motion.movement import movement
    from cnmflow.movies import validate_series

    found = movement(validate_series([path]), gsig_filt=gsig, max_shift=6)
    return {"sd_px": None if found is None else round(found.sd_px, 3),
            "largest_px": None if found is None else round(found.largest_px, 2)}


def readings(folder: Path, seeds: list[int]) -> list[dict]:
    """The check's sd and largest shift on each movie, with the truth's over the frames it reads."""
    import tifffile

    from cnmflow.motion.movement import SAMPLE_FRAMES
    from cnmflow.synthetic.gaussian import simulate_1p
    from cnmflow.synthetic.realistic import simulate_realistic_1p

    rows = []
    for seed in seeds:
        for config in FIT_PARAMS:
            for motion in MOTIONS:
                sim = simulate_realistic_1p(config, shape=(128, 128), n_frames=SAMPLE_FRAMES, motion_px=motion,
                                            rng=seed)
                path = folder / f"{config}_{motion}_{seed}.tif"
                tifffile.imwrite(path, sim.movie.astype(np.float32))
                shifts = sim.truth.shifts
                rows.append({"movie": f"{config} motion {motion} seed {seed}",
                             "true_sd_px": round(float(np.sqrt(shifts.var(axis=0).sum())), 3),
                             **_reading(path, FIT_PARAMS[config]["gSig"])})
        path = folder / f"gaussian_{seed}.tif"
        tifffile.imwrite(path, simulate_1p(shape=(128, 128), n_frames=600, rng=seed).movie.astype(np.float32))
        rows.append({"movie": f"gaussian still seed {seed}", "true_sd_px": 0.0, **_reading(path, 3.0)})
    for name in ("ideas/movie_part1_108x122x200.avi", "ideas/movie_part3.isxd", "caiman-reference/synth1p_128.tif"):
        if (SHARED / name).exists():
            rows.append({"movie": name, "true_sd_px": None, **_reading(SHARED / name, 3.0)})
    return rows


def fits(seeds: list[int], motions: list[float], *, drift: bool = False) -> list[dict]:
    """F1 (IoU > 0.3) of the accepted components of a run that leaves the motion uncorrected and of one that corrects
    it (rigid; the components on the edge the shifts exposed rejected, as a run does). Until December 7 2026 (session
    33) every component was scored, rejected ones included, and the edge was not judged. ``drift``:
    each value is a slow drift over the movie (px, first frame to last) instead of the motion's sd."""
    from cnmflow.engine import fit
    from cnmflow.motion import correct_motion, motion_params
    from cnmflow.motion.exposed_edge import reject_on_exposed_edge
    from cnmflow.params import build_params
    from cnmflow.scoring import score
    from cnmflow.synthetic.realistic import simulate_realistic_1p

    rows = []
    for config, values in FIT_PARAMS.items():
        for seed in seeds:
            for motion in motions:
                moves = {"drift_px": motion} if drift else {"motion_px": motion}
                sim = simulate_realistic_1p(config, shape=(128, 128), n_frames=800, rng=seed, **moves)
                corrected = np.empty_like(sim.movie)
                result = correct_motion(sim.movie, corrected, params=motion_params(
                    {"motion_correction": "rigid", "gSig_filt": (3, 3)}, max_shifts=8, border_nan="copy"))
                row = {"config": config, "seed": seed, "drift" if drift else "motion": motion}
                for name, movie in (("none", sim.movie), ("rigid", corrected)):
                    estimates = fit(movie, build_params(values))
                    if name == "rigid":   # as a corrected run does (pipeline.fit_series)
                        reject_on_exposed_edge(estimates, result.crop)
                    cells = estimates.accepted   # as a user reads a run: the rejected components left out
                    found = score(sim.truth.footprints, estimates.footprints()[cells],
                                  truth_traces=sim.truth.calcium, estimated_traces=estimates.C[cells])
                    row[name] = {"K": int(cells.size), "f1": round(found.f1, 3)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", action="store_true")
    parser.add_argument("--fits", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--motions", type=float, nargs="+", default=[0.0, 0.15, 0.3, 0.45, 0.6])
    parser.add_argument("--drift", action="store_true", help="--motions are slow drifts (px over the movie)")
    args = parser.parse_args()
    if args.readings:
        with tempfile.TemporaryDirectory() as folder:
            for row in readings(Path(folder), args.seeds):
                print(json.dumps(row), flush=True)
    if args.fits:
        fits(args.seeds, args.motions, drift=args.drift)


if __name__ == "__main__":
    main()
