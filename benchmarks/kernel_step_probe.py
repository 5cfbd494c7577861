"""Is auto's loss just below a seed-kernel step the kernel's size, or gSig itself? (issue #18, h21kstep)

The seed search filters each frame with a kernel of ``summary_images.kernel_size(gSig)`` = 2·int(2·gSig)+1 px, so
gSig 6.20–6.49 share a 25 px kernel and 6.50–6.99 a 27 px one. Each point fits one 256² realistic movie at auto's
values (read as a run reads them: the sample ``auto_values_check.realistic_record`` takes) with one thing changed:
``gsig=X`` (gSig X, everything else auto's: the kernel and every other integer that follows gSig move with it) or
``step=N`` (gSig auto's, the kernel N size steps larger, ``kernel_size`` patched for the fit's duration: only the
seed search's filter moves). The fit runs in this process (n_processes 1, which changes the speed, not the result)
so the patch reaches every patch job. Scored as ``realistic_benchmark.py`` scores (accepted components, 90%-energy
masks): F1@0.5, F1@0.3, median IoU, K.

    PYTHONPATH=. .venv/bin/python benchmarks/kernel_step_probe.py \
        --movie results/realistic_ca1_256x256x1000_seed19.npy \
        --points auto step=1 gsig=6.9 --out results/h21kstep/probe_ca1_s19.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_values_check import realistic_record  # noqa: E402
from realistic_benchmark import CONFIGS  # noqa: E402
from stage_probes import overridden  # noqa: E402


def kernel_steps(step: int):
    """``summary_images.kernel_size`` ``step`` odd sizes larger (negative: smaller) while inside."""
    from cnmflow.engine import summary_images

    original = summary_images.kernel_size
    return overridden(summary_images, "kernel_size", lambda gsig: max(1, original(gsig) + 2 * step))


def config_of(movie: Path) -> str:
    return next(name for name in CONFIGS if f"realistic_{name}_" in movie.name)


def fit_point(movie: Path, values: dict, point: str) -> dict:
    """One fit at auto's values with the point's one change, scored against the truth."""
    from cnmflow.engine import fit
    from cnmflow.engine import summary_images
    from cnmflow.params import build_params
    from cnmflow.shape_scoring import shape_score

    params = {**CONFIGS[config_of(movie)]["params"], **values, "n_processes": 1}
    step = 0
    if point.startswith("gsig="):
        params["gSig"] = float(point.split("=")[1])
    elif point.startswith("step="):
        step = int(point.split("=")[1])
    frames = np.load(movie, mmap_mode="r")
    truth = np.load(movie.with_suffix(".truth.npz"))
    started = time.process_time()
    with kernel_steps(step):
        size = summary_images.kernel_size(params["gSig"])
        est = fit(frames, build_params(dict(params)))
    accepted = np.setdiff1d(np.arange(est.K), est.idx_components_bad)
    shapes = shape_score(truth["footprints"], est.footprints()[accepted])
    summary = shapes.summary()
    return {"point": point, "gSig": params["gSig"], "kernel_px": int(size), "K": int(accepted.size),
            "n_rejected": int(est.K - accepted.size),
            **{k: round(float(summary[k]), 3) for k in ("f1_iou50", "f1_iou30", "median_iou")},
            "cpu_s": round(time.process_time() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movie", type=Path, required=True)
    parser.add_argument("--points", nargs="+", default=["auto", "step=1"], help="auto, step=N, gsig=X")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    auto = realistic_record(args.movie)
    gsig, min_corr, min_pnr = auto["values"]
    values = {"gSig": gsig, "gSiz": auto["gSiz"], "min_corr": min_corr, "min_pnr": min_pnr}
    print(json.dumps({"movie": args.movie.name, "auto": values, "radius_err": auto["err"]}), flush=True)
    record = {"movie": args.movie.name, "auto": auto, "fits": []}
    for point in args.points:
        record["fits"].append(fit_point(args.movie, values, point))
        print(json.dumps(record["fits"][-1]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
