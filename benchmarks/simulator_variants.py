"""The product on movies unlike the ones it was tuned on: the realistic simulators' presets (1P CA1 and cortex,
2P cortex) with one property pushed (another indicator, busier cells, dimmer cells, denser packing, stronger
neuropil, more cells off the focal plane, another frame rate), each run through ``cnmflow run`` as a user runs it
and scored against the truth.

    PYTHONPATH=. .venv/bin/python benchmarks/simulator_variants.py --configs ca1 cortex_l23 --seeds 41
    PYTHONPATH=. .venv/bin/python benchmarks/simulator_variants.py --mode table --variants default neuropil
    PYTHONPATH=. .venv/bin/python benchmarks/simulator_variants.py --configs cortex_l23_2p --seeds 41

``--mode auto`` sets gSig, min_corr and min_pnr to "auto" (the watch-folder deployment's values; 2P: gSig and K);
``--mode table`` sets the values a user would type for the preset's cells (:data:`FAMILIES`: 1P, CaImAn's own
thresholds on the held-out check of issue #16; 2P, the README's recipe). A variant that changes the indicator also
sets ``decay_time``, as a user who knows the indicator does. Scoring is :func:`cnmflow.shape_scoring.shape_score` on
the accepted components of the run's ``caiman_output.hdf5`` (findings/simulator_variants.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assignments import parse_assignments  # noqa: E402

#: What each variant changes in a simulator's preset (its config's fields; ``*_x``: a multiple of the preset's).
VARIANTS_1P: dict[str, dict] = {
    "default": {},
    "gcamp6s": {"decay_time": 1.0},   # a slow indicator (GCaMP6s: ~1 s decay, Chen et al. 2013)
    "active": {"rate_hz": 1.0},       # busy cells: 1 event/s against the presets' 0.15-0.2
    "dim": {"peak_snr": (1.0, 4.0)},  # most cells near the noise
    "dense": {"n_neurons_x": 1.8},    # 1.8× the cells in the field, at the preset's least spacing
    "neuropil": {"neuropil_level_x": 3.0},
    "oof2": {"n_out_of_focus_x": 2.0},
    "fr30": {"fr": 30.0},
}
VARIANTS_2P: dict[str, dict] = {
    "default": {},
    "gcamp6f": {"decay_time": 0.4},   # a fast indicator against the preset's GCaMP6s
    "active": {"rate_hz": 1.0},
    "dim": {"peak_dff": (0.2, 1.0)},  # small transients
    "dense": {"n_neurons_x": 1.8},
    "neuropil": {"neuropil_level_x": 2.0},
    "grazing2": {"n_grazing_x": 2.0},  # twice the cells only grazing the plane
    "fr15": {"fr": 15.0},              # a slower scan
    "nohaze": {"neuropil_haze": 0.0},  # somata free of out-of-focus neuropil: the preset before December 8 2026
}


@dataclass(frozen=True)
class Family:
    """How one simulator's movies are made and run: its variants, the preset a run names, the values typed in
    each mode, and how its photon counts are written to uint16."""

    variants: dict[str, dict]
    preset: str
    auto_values: dict
    table_values: dict
    tiff_scale: float | str


#: gSig matching the somata and CaImAn's thresholds (1P, issue #16's held-out check); 2P: the README's recipe.
FAMILIES = {
    "ca1": Family(VARIANTS_1P, "1p", dict(gSig="auto", min_corr="auto", min_pnr="auto"),
                  dict(gSig=6, gSiz=25, min_corr=0.6, min_pnr=7), 1.0),
    "cortex_l23": Family(VARIANTS_1P, "1p", dict(gSig="auto", min_corr="auto", min_pnr="auto"),
                         dict(gSig=3, gSiz=13, min_corr=0.7, min_pnr=5), 1.0),
    # two-photon photon counts are a few per pixel: scaled to the uint16 range as a PMT's gain would
    "cortex_l23_2p": Family(VARIANTS_2P, "2p", dict(gSig="auto", K="auto"), dict(gSig=5, gSiz=11, K="auto"), "auto"),
}
#: The scores kept, with their column labels.
SCORES = {"f1_iou50": "F1@.5", "f1_iou30": "F1@.3", "precision_iou30": "P@.3", "recall_iou30": "R@.3",
          "median_iou": "IoU", "median_trace_corr": "r", "n_multiply_covered": "twice"}


def _preset_config(config: str):
    from cnmflow.synthetic.realistic import PRESETS
    from cnmflow.synthetic.realistic_2p import PRESETS_2P

    return {**PRESETS, **PRESETS_2P}[config]


def simulator_settings(config: str, variant: str) -> dict:
    """The variant's simulator overrides, multiples turned into values of the preset."""
    settings = {}
    for name, value in FAMILIES[config].variants[variant].items():
        if name.endswith("_x"):
            field = name[:-2]
            base = getattr(_preset_config(config), field)
            settings[field] = type(base)(base * value)
        else:
            settings[name] = value
    return settings


def simulate(config: str, variant: str, seed: int, shape: tuple[int, int], frames: int, folder: Path) -> Path:
    """A uint16 TIFF (as a camera writes it) and its truth beside it; reused when both exist."""
    from cnmflow.synthetic import simulate_realistic_1p, simulate_realistic_2p
    from cnmflow.synthetic.writers import write_tiff

    tif = folder / f"{config}_{variant}_{shape[0]}x{shape[1]}x{frames}_s{seed}.tif"
    truth_path = tif.with_suffix(".truth.npz")
    if tif.exists() and truth_path.exists():
        return tif
    family = FAMILIES[config]
    simulator = simulate_realistic_2p if family.preset == "2p" else simulate_realistic_1p
    sim = simulator(config, shape=shape, n_frames=frames, rng=seed, **simulator_settings(config, variant))
    truth = sim.truth
    np.savez_compressed(truth_path, footprints=truth.footprints, calcium=truth.calcium, peak_snr=truth.peak_snr)
    write_tiff(tif, sim.movie, fr=truth.fr, dtype="uint16", scale=family.tiff_scale)
    return tif


def run_values(config: str, variant: str, mode: str, extra: dict) -> dict:
    """The ``--set`` values of one run."""
    family = FAMILIES[config]
    values = dict(family.auto_values if mode == "auto" else family.table_values)
    if "decay_time" in family.variants[variant]:
        values["decay_time"] = family.variants[variant]["decay_time"]
    return {**values, **extra}


def run_cli(tif: Path, out: Path, preset: str, values: dict) -> float:
    """``cnmflow run`` on the movie, as a user types it; wall seconds. Its extraction cache is a fresh folder, so an
    earlier run of the same movie and values (the same seed renders the same movie) is not reused."""
    args = [str(Path(sys.executable).with_name("cnmflow")), "run", str(tif), "--output-dir", str(out), "--preset",
            preset, "--no-progress", "--no-nwb", "--no-track", "--overwrite"]
    for name, value in values.items():
        args += ["--set", f"{name}={value}"]
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "CNMFLOW_CACHE_DIR": cache})
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"cnmflow run failed on {tif.name}:\n{done.stderr[-3000:]}")
    return wall


def score_run(out: Path, truth_path: Path) -> dict:
    """The shape scores of the run's accepted components, as a user reads the file."""
    from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5
    from cnmflow.shape_scoring import shape_score

    estimates = read_caiman_hdf5(out / "caiman_output.hdf5")
    accepted = estimates.accepted
    with np.load(truth_path) as truth:
        result = shape_score(truth["footprints"], estimates.footprints()[accepted], truth_traces=truth["calcium"],
                             estimated_traces=estimates.C[accepted])
    summary = result.summary()
    return {"K": int(accepted.size), "n_true": summary["n_true"],
            **{name: round(summary[name], 3) for name in SCORES}}


def measure(config: str, variant: str, seed: int, args: argparse.Namespace) -> dict:
    tif = simulate(config, variant, seed, tuple(args.shape), args.frames, args.results)
    values = run_values(config, variant, args.mode, args.set)
    out = args.results / f"{tif.stem}_{args.mode}"
    wall = run_cli(tif, out, FAMILIES[config].preset, values)
    return {"config": config, "variant": variant, "seed": seed, "mode": args.mode, "values": values,
            "wall_s": round(wall, 1), **score_run(out, tif.with_suffix(".truth.npz"))}


def print_row(row: dict) -> None:
    print(f"{row['config']:<14}{row['variant']:<10}{row['seed']:>5}{row['K']:>5}{row['n_true']:>6}"
          + "".join(f"{row[name]:>8}" for name in SCORES) + f"{row['wall_s']:>8}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["ca1", "cortex_l23"], choices=list(FAMILIES))
    parser.add_argument("--variants", nargs="+", help="default: all of each config's (VARIANTS_1P, VARIANTS_2P)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[41])
    parser.add_argument("--shape", nargs=2, type=int, default=[256, 256])
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--mode", choices=("auto", "table"), default="auto")
    parser.add_argument("--set", nargs="*", default=[], help="more parameters for every run, NAME=VALUE (JSON)")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "simulator_variants")
    args = parser.parse_args(argv)
    args.set = parse_assignments(args.set)
    for config in args.configs:
        unknown = set(args.variants or ()) - set(FAMILIES[config].variants)
        if unknown:
            parser.error(f"{config} has no variant {sorted(unknown)}: choose from {list(FAMILIES[config].variants)}")
    args.results.mkdir(parents=True, exist_ok=True)
    print(f"{'config':<14}{'variant':<10}{'seed':>5}{'K':>5}{'true':>6}"
          + "".join(f"{label:>8}" for label in SCORES.values()) + f"{'wall s':>8}")
    for config in args.configs:
        for seed in args.seeds:
            for variant in args.variants or FAMILIES[config].variants:
                row = measure(config, variant, seed, args)
                print_row(row)
                with open(args.results / "rows.jsonl", "a") as rows:
                    rows.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
