"""auto's gSig against the seed kernel's size steps: a rule read on the 52 training movies (issue #18, h21kstep).

The seed kernel is ``summary_images.kernel_size(gSig)`` = 2·int(2·gSig)+1 px: a step every 0.5 px of gSig. Rules:

- ``round``: the kernel from round(2·gSig) instead of int(2·gSig) (``kernel_size`` patched for the estimate and
  the fit: the engine's change, seen by auto's factor choice and cuts too); moves only gSig whose 2·gSig has a
  fractional part ≥ 0.5.
- ``up:D``: auto's gSig raised to the next step (the next multiple of 0.5) where it lies less than D px below it;
  the cuts re-read at the raised gSig, gSiz auto's (from the radius), the engine as it is.

"main" here is the estimator without the raise (h21kstep merged it as ``gsig_choice.on_kernel_step``; it is
patched to leave gSig as chosen, so the rules are measured against the same baseline on any checkout). Each movie
is simulated, estimated as a run reads it (TIFF, tsub 2) and fitted at auto's values; where a rule moves the values
or the kernel, fitted again under the rule (F1@0.5, F1, K). ``--set`` as ``pnr_shrink.py``'s.

    PYTHONPATH=. .venv/bin/python benchmarks/kernel_rule_check.py --rules round up:0.25 up:0.1 \
        --out results/h21kstep/train.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnmflow.auto_params.gsig_choice import on_kernel_step  # noqa: E402
from auto_params_benchmark import TSUB, fit_and_score, fit_params, simulate  # noqa: E402
from pnr_shrink import run_set, set_arguments  # noqa: E402
from stage_probes import overridden  # noqa: E402


def rounded_kernels():
    """The seed kernel 2·round(2·gSig)+1 px (halves up) while inside."""
    from cnmflow.engine import summary_images

    return overridden(summary_images, "kernel_size", lambda gsig: 2 * math.floor(2 * float(gsig) + 0.5) + 1)


def unraised():
    """auto's gSig left as its factor choice gives it (``on_kernel_step`` made the identity where it is imported)."""
    from contextlib import ExitStack

    from cnmflow.auto_params import estimate as estimate_module
    from cnmflow.auto_params import gsig_choice

    stack = ExitStack()
    for module in (estimate_module, gsig_choice):
        if hasattr(module, "on_kernel_step"):
            stack.enter_context(overridden(module, "on_kernel_step", lambda gsig, **_: float(gsig)))
    return stack


def estimate(frames, gsig: float | None = None) -> dict:
    """auto's values from a TIFF as a run reads it (gSig fixed where given, the cuts read there), without the raise
    onto a kernel step (:func:`unraised`)."""
    import tifffile

    from cnmflow.auto_params import estimate_parameters

    with tempfile.TemporaryDirectory() as folder, unraised():
        path = Path(folder) / "movie.tif"
        tifffile.imwrite(path, frames)
        est = estimate_parameters([path], tsub=TSUB, ssub=1, gsig=gsig)
    return {"gSig": est.gSig, "gSiz": est.gSiz, "min_corr": est.min_corr, "min_pnr": est.min_pnr}


def rule_values(rule: str, frames, main: dict) -> tuple[dict, bool]:
    """The rule's values and whether the rule's fit differs from main's (values or kernel)."""
    from cnmflow.engine import summary_images

    if rule == "round":
        with rounded_kernels():
            values = estimate(frames)
            kernel = summary_images.kernel_size(values["gSig"])
        return values, values != main or kernel != summary_images.kernel_size(main["gSig"])
    delta = float(rule.split(":")[1])
    gsig = on_kernel_step(main["gSig"], reach=delta)
    if gsig == main["gSig"]:
        return main, False
    return {**estimate(frames, gsig=gsig), "gSiz": main["gSiz"]}, True


def movie_record(movie, rules: list[str]) -> dict:
    sim = simulate(movie)
    main = estimate(sim.movie)

    done: dict[tuple, dict] = {}  # one fit per distinct (values, kernel rule)

    def fitted(values: dict, rule: str | None = None) -> dict:
        key = (*values.values(), rule == "round")
        if key not in done:
            with rounded_kernels() if rule == "round" else nullcontext():
                done[key] = {"values": values, **fit_and_score(sim.movie, sim.truth, fit_params(
                    movie.fr, values["gSig"], values["gSiz"], values["min_corr"], values["min_pnr"]))}
        return done[key]

    moves = {rule: rule_values(rule, sim.movie, main) for rule in rules}
    record = {"movie": movie.name, "main": {"values": main}, "rules": {}}
    if any(moved for _, moved in moves.values()):  # main's own fit only where some rule moves it
        record["main"] = fitted(main)
    for rule, (values, moved) in moves.items():
        record["rules"][rule] = fitted(values, rule) if moved else None
    print(json.dumps({"movie": movie.name, "main": [main["gSig"], record["main"].get("f1_iou50")],
                      **{r: (f["values"]["gSig"], f["values"]["min_pnr"], f["f1_iou50"]) if f else None
                         for r, f in record["rules"].items()}}), flush=True)
    return record


def summary(records: list[dict], rules: list[str]) -> dict:
    """Per rule: moved movies, mean ΔF1@0.5 over all, losses and gains > 0.02, the worst loss."""
    out = {}
    for rule in rules:
        deltas = [(r["rules"][rule]["f1_iou50"] - r["main"]["f1_iou50"]) if r["rules"].get(rule) else 0.0
                  for r in records]
        moved = [d for r, d in zip(records, deltas) if r["rules"].get(rule)]
        out[rule] = {"n": len(records), "moved": len(moved), "mean_delta": round(sum(deltas) / len(deltas), 4),
                     "down_002": sum(d < -0.02 for d in moved), "up_002": sum(d > 0.02 for d in moved),
                     "worst": round(min(moved, default=0.0), 3), "best": round(max(moved, default=0.0), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = set_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--rules", nargs="+", default=["round", "up:0.25"])
    args = parser.parse_args(argv)
    records = run_set(args, lambda movie: movie_record(movie, args.rules))
    print(json.dumps(summary(records, args.rules), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
