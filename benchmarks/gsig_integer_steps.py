"""Which integer the engine derives from gSig / gSiz makes F1 jump across a small gSig step (issues #18, #16, h18kstep).

``--table`` prints every integer the 1P engine derives from gSig or gSiz (auto's gSiz = ``gsiz_for(gSig)``) at the
given gSigs, computed with the engine's own expressions and constants. ``--fit`` fits one movie at a low and a high
gSig and at the low gSig with ONE integer forced to its high-gSig value at a time (a monkeypatch of the engine's
module attributes for the fit's duration; the movie is fitted in this process, as an in-memory array is), and prints
K accepted (rejected), F1@0.5, F1@0.3, median IoU, F1 (IoU > 0) and the seeds the patches' first and residual
searches initialised. The engine is not edited.

    PYTHONPATH=. .venv/bin/python benchmarks/gsig_integer_steps.py --table
    PYTHONPATH=. .venv/bin/python benchmarks/gsig_integer_steps.py --fit --seed 36 --low 5.7 --high 5.8 \
        --cuts 0.814 5.08 --out benchmarks/results/gsig_integer_steps_s36.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_params_benchmark import HELD_OUT, RESULTS, TSUB, fit_params, process_tree_cpu, simulate  # noqa: E402
from stage_probes import overridden  # noqa: E402


def integers(gsig: float, gsiz: int, dims: tuple[int, int] = (128, 128)) -> dict[str, int]:
    """Every integer the 1P engine derives from (gSig, gSiz) at ssub 1, ssub_B 2, ring_size_factor 1.4, halo_thr 0."""
    from cnmflow.engine import background, in_focus, smooth_field
    from cnmflow.engine.init import corr_pnr
    from cnmflow.engine.patch_job import one_photon

    ring = background.ring_radius(gsiz=gsiz, ring_size_factor=1.4, ssub_B=2)
    pool_sigma = corr_pnr.FOOTPRINT_POOL_SIGMA * gsig
    return {
        "gSiz (auto: int(round(2 gSig)) + 1)": gsiz,
        "seed kernel size 2 int(2 gSig) + 1": 2 * int(2 * gsig) + 1,
        "seed maxima window round(gSiz / 4)": max(1, int(round(gsiz / 4))),
        "init box half-width gSiz (box 2 gSiz + 1)": gsiz,
        "halo-seed check distance <= gSiz": gsiz,
        "seed exclusion disc: pixels dy²+dx² <= (gSig/2)²": int(np.sum(_disc(max(1.0, gsig / 2)))),
        "ring radius round(1.4 gSiz / 2) (ssub_B grid)": ring,
        "ring offsets (pixels on the ring)": len(background.ring_offsets(ring)),
        "edge ring radius round(0.5 r)": max(1, int(np.floor(background.EDGE_RING_FRACTION * ring + 0.5))),
        "ring reduced rank (None = exact)": background.reduced_rank(gsiz=gsiz, ring_size_factor=1.4, ssub_B=2) or 0,
        "refine growth radius round(2 gSig)": max(int(round(one_photon.GROWTH_FACTOR * gsig)), 1),
        "refine null distance round(2 gSig)": max(int(round(one_photon.NULL_DISTANCE_FACTOR * gsig)), 1),
        "footprint pooling Gaussian radius int(4·0.5 gSig + 0.5)": int(4.0 * pool_sigma + 0.5),
        "trace-round footprint dilation round(gSig)": max(int(round(gsig)), 1),
        "focus window radius ceil(4 gSig)": int(np.ceil(in_focus.WINDOW_GSIG * gsig)),
        "focus edge margin ceil(2 gSig)": int(np.ceil(in_focus.EDGE_JUDGED_GSIG * gsig)),
        "wide tent spacing round(6 gSig)": smooth_field.tent_spacing(gsig, dims),
        "local tent spacing round(3 gSig)": smooth_field.tent_spacing(gsig, dims, smooth_field.LOCAL_TENT_SPACING_GSIG),
    }


def _disc(radius: float) -> np.ndarray:
    er = int(np.ceil(radius))
    dy, dx = np.mgrid[-er:er + 1, -er:er + 1]
    return (dy ** 2 + dx ** 2) <= radius ** 2


def forced(step: str, low: float, high: float) -> contextlib.AbstractContextManager:
    """A context in which the fit at gSig ``low`` (gSiz ``gsiz_for(low)``) uses ``high``'s value of one integer."""
    from cnmflow.auto_params import gsiz_for
    from cnmflow.engine import background, in_focus, traces
    from cnmflow.engine.init import corr_pnr
    from cnmflow.engine.patch_job import one_photon

    gsiz_high = gsiz_for(high)
    if "+" in step or step == "all":
        stack = contextlib.ExitStack()
        for one in (STEPS[1:] if step == "all" else step.split("+")):
            stack.enter_context(forced(one, low, high))
        return stack
    if step == "box":
        init_one = corr_pnr._init_one

        def box_init_one(st, r, c, gsiz):
            return init_one(st, r, c, gsiz_high)
        return overridden(corr_pnr, "_init_one", box_init_one)
    if step == "halo_check":
        on_found_halo = corr_pnr._on_found_halo

        def halo_check(trace, seed, traces, centers, gsiz):
            return on_found_halo(trace, seed, traces, centers, gsiz_high)
        return overridden(corr_pnr, "_on_found_halo", halo_check)
    if step == "ring":
        radius = background.ring_radius

        def ring_radius(*, gsiz, ring_size_factor, ssub_B):
            return radius(gsiz=gsiz_high if gsiz == gsiz_for(low) else gsiz, ring_size_factor=ring_size_factor,
                          ssub_B=ssub_B)
        return overridden(background, "ring_radius", ring_radius)
    if step == "seed_gsiz":
        initialize = corr_pnr.initialize

        def seed_initialize(frames, section, **kwargs):
            return initialize(frames, replace(section, gSiz=gsiz_high), **kwargs)
        return overridden(corr_pnr, "initialize", seed_initialize)
    if step == "growth":
        return overridden(one_photon, "GROWTH_FACTOR", (round(2 * high) - 0.1) / low)
    if step == "null_distance":
        return overridden(one_photon, "NULL_DISTANCE_FACTOR", (round(2 * high) - 0.1) / low)
    if step == "focus_window":
        return overridden(in_focus, "WINDOW_GSIG", (math.ceil(4 * high) - 0.01) / low)
    if step == "tents":
        spacing = traces.tent_spacing

        def tent_spacing(gsig, dims, spacing_gsig=6.0):
            return spacing(high if spacing_gsig == 6.0 else gsig, dims, spacing_gsig)
        return overridden(traces, "tent_spacing", tent_spacing)
    raise SystemExit(f"unknown step {step!r}")


STEPS = ("gsiz", "ring", "seed_gsiz", "growth", "null_distance", "focus_window", "tents")
#: ``--steps all``: every step above at once (gSiz = ring + seed_gsiz); the footprint pooling Gaussian's
#: truncation radius is not forced (its last tap weighs e^-8 of the centre). seed_gsiz splits into ``box`` (the
#: seed's 2·gSiz+1 init box) and ``halo_check`` (the halo-seed rule's distance); ``a+b`` forces several at once


@contextlib.contextmanager
def seed_counter(counts: list[int]) -> Iterator[None]:
    """Appends the components each corr_pnr search of each patch initialised (first, residual, first, ...)."""
    from cnmflow.engine.init import corr_pnr

    initialize = corr_pnr.initialize

    def counted(frames, section, **kwargs):
        found = initialize(frames, section, **kwargs)
        counts.append(int(found.A.shape[1]))
        return found
    with overridden(corr_pnr, "initialize", counted):
        yield


def fit_scored(frames: np.ndarray, truth, params: dict, context: Callable[[], contextlib.AbstractContextManager]):
    """One fit under ``context``, scored as realistic_benchmark.py scores (the rejected components left out)."""
    from cnmflow.engine import fit
    from cnmflow.params import build_params
    from cnmflow.scoring import score
    from cnmflow.shape_scoring import shape_score

    counts: list[int] = []
    cpu = process_tree_cpu()
    with context(), seed_counter(counts):
        est = fit(frames, build_params(dict(params)))
    cpu = process_tree_cpu() - cpu
    accepted = np.setdiff1d(np.arange(est.K), est.idx_components_bad)
    shapes = shape_score(truth.footprints, est.footprints()[accepted])
    ious = np.sort(shapes.ious)
    return {"n_true": int(shapes.n_true), "matched_50": int(np.sum(ious >= 0.5)),
            "ious_0.4-0.5": int(np.sum((ious >= 0.4) & (ious < 0.5))),
            "ious_0.5-0.6": int(np.sum((ious >= 0.5) & (ious < 0.6))),"K": int(accepted.size), "rejected": int(est.K - accepted.size), "f1_50": round(float(shapes.f1_iou50), 3),
            "f1_30": round(float(shapes.f1_iou30), 3), "median_iou": round(float(shapes.median_iou), 3),
            "f1": round(float(score(truth.footprints, est.footprints()[accepted]).f1), 3),
            "seeds_first": int(sum(counts[0::2])), "seeds_residual": int(sum(counts[1::2])), "cpu_s": round(cpu, 1),
            "ious": [round(float(x), 3) for x in ious]}


def main(argv: list[str] | None = None) -> int:
    from cnmflow.auto_params import gsiz_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--gsigs", type=float, nargs="+", default=[5.5, 5.6, 5.7, 5.8, 5.9])
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--seed", type=int, default=36, help="seed of held-out CA1 6.5 µm (seed 12's configuration)")
    parser.add_argument("--low", type=float, default=5.7)
    parser.add_argument("--high", type=float, default=5.8)
    parser.add_argument("--cuts", type=float, nargs=2, default=[0.814, 5.08], metavar=("MIN_CORR", "MIN_PNR"))
    parser.add_argument("--steps", nargs="+", default=list(STEPS),
                        help=f"any of {', '.join(STEPS)}, box, halo_check, all, or several joined by '+'")
    parser.add_argument("--plain", nargs="*", default=[], metavar="GSIG:GSIZ",
                        help="further fits at these (gSig, gSiz), nothing forced (e.g. 5.8:12, the reverse step)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gsig_integer_steps.json")
    args = parser.parse_args(argv)
    if args.table:
        rows = {g: integers(g, gsiz_for(g)) for g in args.gsigs}
        print("integer | " + " | ".join(f"gSig {g}" for g in args.gsigs))
        for name in rows[args.gsigs[0]]:
            print(f"{name} | " + " | ".join(str(rows[g][name]) for g in args.gsigs))
    if args.fit:
        movie = replace(HELD_OUT[1], seed=args.seed)
        sim = simulate(movie)
        runs = []
        plain = [("low", args.low, gsiz_for(args.low), None), ("high", args.high, gsiz_for(args.high), None)]
        for step in args.steps:
            if step == "gsiz":
                plain.append(("low, gSiz forced", args.low, gsiz_for(args.high), None))
            else:
                plain.append((f"low, {step} forced", args.low, gsiz_for(args.low), step))
        for pair in args.plain:
            gsig, gsiz = pair.split(":")
            plain.append((f"{gsig} / gSiz {gsiz}", float(gsig), int(gsiz), None))
        for label, gsig, gsiz, step in plain:
            params = fit_params(movie.fr, gsig, gsiz, *args.cuts)
            context = (lambda: contextlib.nullcontext()) if step is None else (
                lambda s=step: forced(s, args.low, args.high))
            record = {"label": label, "gSig": gsig, "gSiz": gsiz, **fit_scored(sim.movie, sim.truth, params, context)}
            print(json.dumps({k: v for k, v in record.items() if k != "ious"}), flush=True)
            runs.append(record)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"movie": movie.name, "cuts": args.cuts, "tsub": TSUB, "runs": runs},
                                           indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
