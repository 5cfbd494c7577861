"""What covers each neuron a realistic fit covers twice: a copy of the neuron, a true out-of-focus cell, or other
light (issue #16).

`realistic_benchmark.py` counts a neuron *covered twice* when two accepted components fall on it
(`shape_scoring`), and *trace-following* when a surplus one also follows its trace. This script names the source
behind every covering component, from the simulator's own sources: the neuron (trace r ≥ ``MIN_R`` with its
calcium), an out-of-focus cell (r ≥ ``MIN_R`` with the calcium of one whose 90%-energy mask meets the component's
mask; the footprints are re-simulated, the traces are the saved truth's), or neither (a mixture, neuropil, a
vessel, a fragment). Each neuron covered twice is then put in one class, first that applies:

- ``copy``: two or more of its components follow the neuron — the issue's duplicate;
- ``out_of_focus``: a component that does not follow the neuron follows an out-of-focus cell;
- ``other``: the rest.

    PYTHONPATH=. .venv/bin/python benchmarks/covered_twice_sources.py results/<movie>.fit.estimates.npz ...
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from cnmflow.score_inputs import pearson
from cnmflow.shape_scoring import energy_masks, shape_score
from cnmflow.synthetic import simulate_realistic_1p
from realistic_benchmark import simulator_overrides

#: A component follows a source when its trace correlates with the source's calcium at least this much (the
#: benchmark's trace-following count uses the same 0.5).
MIN_R = 0.5
#: A realistic movie's name: configuration, rows, cols, frames, seed (the simulator draws it again from these).
MOVIE_NAME = re.compile(r"realistic_(ca1|cortex_l23)_(\d+)x(\d+)x(\d+)_seed(\d+)")


def redrawn_truth(truth_path: Path, n_frames: int | None = None):
    """The simulator's truth (background sources included) of the movie whose truth file this is, drawn again
    without rendering the movie: at the movie's length unless ``n_frames`` is given, with the simulator overrides it
    was made with (``realistic_benchmark.py --sim-set``)."""
    config, rows, cols, frames, seed = MOVIE_NAME.search(truth_path.name).groups()
    return simulate_realistic_1p(config, shape=(int(rows), int(cols)), n_frames=n_frames or int(frames),
                                 rng=int(seed), render=False, **simulator_overrides(truth_path)).truth


def out_of_focus_footprints(truth_path: Path) -> np.ndarray:
    """The out-of-focus cells' footprints ``(n, rows, cols)`` of the movie whose truth file this is (drawn before
    any activity: 8 frames do)."""
    truth = redrawn_truth(truth_path, n_frames=8)
    labels = truth.background_labels
    return truth.background_spatial[[i for i, name in enumerate(labels) if name.startswith("cell")]]


def truth_of(estimates: Path) -> Path:
    """The truth file beside a fit's ``<tag>_<movie>.fit.estimates.npz``: ``<movie>.truth.npz``, the movie's name
    whole (with a ``--sim-set`` movie's ``_sim-…`` suffix)."""
    name, found = estimates.name, MOVIE_NAME.search(estimates.name)
    if found is None or not name.endswith(".fit.estimates.npz"):
        raise SystemExit(f"{estimates}: not a realistic fit's <tag>_realistic_<movie>.fit.estimates.npz")
    movie = name[found.start():-len(".fit.estimates.npz")]
    return estimates.parent / f"{movie}.truth.npz"


def classify(estimates: Path) -> dict:
    """Classes of the neurons covered twice in one saved fit (accepted components only)."""
    truth_path = truth_of(estimates)
    truth = np.load(truth_path)
    fit = np.load(estimates)
    accepted = np.setdiff1d(np.arange(len(fit["C"])), fit["idx_components_bad"])
    footprints, traces = fit["footprints"][accepted], fit["C"][accepted]
    score = shape_score(truth["footprints"], footprints)
    oof = out_of_focus_footprints(truth_path)
    oof_masks = energy_masks(oof).tocsc()
    comp_masks = energy_masks(footprints).tocsc()
    meets = (oof_masks.T @ comp_masks).toarray() > 0  # (n_oof, K): masks that share a pixel
    classes: dict[str, list[int]] = {"copy": [], "out_of_focus": [], "other": []}
    for neuron, components in score.covering.items():
        follows = [pearson(truth["calcium"][neuron], traces[j]) >= MIN_R for j in components]
        oof_follow = [any(pearson(truth["out_of_focus_calcium"][o], traces[j]) >= MIN_R
                          for o in np.flatnonzero(meets[:, j])) for j in components]
        if sum(follows) >= 2:
            classes["copy"].append(int(neuron))
        elif any(o and not f for o, f in zip(oof_follow, follows)):
            classes["out_of_focus"].append(int(neuron))
        else:
            classes["other"].append(int(neuron))
    return {"fit": estimates.name, "covered_twice": int(score.n_multiply_covered),
            **{name: len(members) for name, members in classes.items()}, "neurons": classes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("estimates", nargs="+", type=Path, help="<movie>.fit.estimates.npz beside <movie>.truth.npz")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    records = []
    for path in args.estimates:
        record = classify(path)
        records.append(record)
        print(f"{record['fit']}: covered twice {record['covered_twice']} = copy {record['copy']} + out-of-focus "
              f"{record['out_of_focus']} + other {record['other']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
