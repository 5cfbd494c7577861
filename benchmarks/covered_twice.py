"""Every neuron covered twice on a realistic movie: what each component is and where it was born (issue #16, h16twice2).

A diagnostic, not part of the product. ``shape_scoring`` counts a neuron covered twice when two accepted
components cover it (IoU > 0.3 with its 90%-energy mask, or more than half of the component's mask inside it).
This script fits the movie in-process (``n_processes`` 1; the fit is the benchmark's, bit for bit) through
``realistic_benchmark.fit_and_score`` and records, per patch, the components the first and the residual seed
search hand on (after ``one_photon._neurons_only``) and the components each patch returns. Each final component
is traced back by footprint cosine: final → the patch output it came from → that patch's initial component (its
search and seed). Then, for every covered-twice neuron, each component covering it: whether it is the neuron's
IoU match, its trace r with the neuron, with the best other neuron and the best out-of-focus source, its mask's
IoU with the neuron and share inside it, its focus ratio (NaN: not judged, at the field's edge), its peak's
distance to the edge, its origin; and the pair's mask overlap, trace r and peak distance. The class of the
surplus (the component that is not the match):

- ``duplicate``: its trace follows the neuron (r ≥ 0.5, ``covered_twice_by_followers``);
- ``out_of_focus``: else, its trace follows an out-of-focus source (r ≥ 0.5) better than any other neuron;
- ``neighbour``: else, it is another neuron's IoU match, or its trace follows another neuron (r ≥ 0.5);
- ``mixture``: none of these.

    PYTHONPATH=. .venv/bin/python benchmarks/covered_twice.py \\
        benchmarks/results/realistic_ca1_256x256x1000_seed1.npy ca1 /tmp/twice_ca1_s1.json --set min_pnr=6

``--focus-inputs`` also keeps what the fit handed the focus test (``focus_rerun.py``: re-run it after changing it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cnmflow.engine.patch_job import one_photon
from cnmflow.shape_scoring import energy_masks, shape_score
from assignments import parse_assignments
from focus_rerun import FocusInputs
from stage_probes import Hook, PatchTracker, probes, to_field

FOLLOWS = 0.5   # trace r that counts as following a source


class StageRecorder:
    """Each patch's initial components (first / residual search) and its output, as full-field images."""

    def __init__(self, dims: tuple[int, int]):
        self.dims, self.tracker = dims, PatchTracker()
        self.initial: list[dict] = []
        self.outputs: list[dict] = []

    def _image(self, column: np.ndarray, box, grid: tuple[int, int]) -> np.ndarray:
        return to_field(box, column.reshape(grid, order="F"), self.dims).ravel()

    def _initial(self, out, A, C, dims, gsig, edges) -> None:
        box = self.tracker.box
        for k in range(out[0].shape[1]):
            self.initial.append(dict(box=box, search=self.tracker.search, image=self._image(out[0][:, k], box, dims)))

    def _output(self, result, box, A, C, **kw) -> None:
        for k in range(result.A.shape[1]):
            column = np.asarray(result.A[:, k]).ravel()
            self.outputs.append(dict(box=box, image=self._image(column, box, box.shape)))

    def hooks(self) -> list[Hook]:
        """The patch job's stages wrapped (module attributes: the engine itself is unchanged)."""
        return [*self.tracker.hooks(), Hook(one_photon, "_neurons_only", after=self._initial),
                Hook(one_photon, "patch_result", after=self._output)]


def _unit_rows(images: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(images, axis=1, keepdims=True)
    return images / np.where(norms > 0, norms, 1)


def origins(rec: StageRecorder, footprints: np.ndarray) -> list[dict]:
    """Per final component: the patch (box) it came from, the search that seeded it, the seed's place, and how
    many patch outputs are copies of it (cosine > 0.6)."""
    final = _unit_rows(footprints.reshape(len(footprints), -1).astype(np.float32))
    outputs = _unit_rows(np.array([o["image"] for o in rec.outputs]))
    initial = _unit_rows(np.array([i["image"] for i in rec.initial]))
    to_output, output_to_initial = final @ outputs.T, outputs @ initial.T
    rows = []
    for j in range(len(final)):
        o = int(np.argmax(to_output[j]))
        box = rec.outputs[o]["box"]
        same_box = [n for n, i in enumerate(rec.initial) if i["box"] == box]
        n = same_box[int(np.argmax(output_to_initial[o, same_box]))]
        seed = np.unravel_index(int(np.argmax(rec.initial[n]["image"])), rec.dims)
        rows.append(dict(box=[box.row0, box.col0, box.row1, box.col1], search=rec.initial[n]["search"],
                         seed=[int(seed[0]), int(seed[1])], copies=int((to_output[j] > 0.6).sum())))
    return rows


def _zscored(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64) - np.mean(x, axis=-1, keepdims=True)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def surplus_class(row: dict) -> str:
    """What a surplus component is, from its traces and matches (the module docstring's classes)."""
    if row["r_neuron"] >= FOLLOWS:
        return "duplicate"
    if row["oof_r"] >= FOLLOWS and row["oof_r"] > row["best_other_r"]:
        return "out_of_focus"
    if row["matches_other"] is not None or row["best_other_r"] >= FOLLOWS:
        return "neighbour"
    return "mixture"


def _component_row(k: int, i: int, ctx: dict) -> dict:
    zc, zt, zo, fp, mt, me = ctx["zc"], ctx["zt"], ctx["zo"], ctx["fp"], ctx["mt"], ctx["me"]
    rn, ro = zt @ zc[k], zo @ zc[k]
    others = [n for n in np.argsort(-rn) if n != i]
    peak = np.unravel_index(int(np.argmax(fp[k])), fp.shape[1:])
    inter = float((me[k] & mt[i]).sum())
    owner = ctx["owner_of"].get(k)
    return dict(component=k, match=ctx["match"].get(i) == k, matches_other=owner if owner not in (None, i) else None,
                r_neuron=round(float(rn[i]), 2), best_other=int(others[0]), best_other_r=round(float(rn[others[0]]), 2),
                oof=int(ro.argmax()), oof_r=round(float(ro.max()), 2),
                iou_neuron=round(inter / float((me[k] | mt[i]).sum()), 2), inside=round(inter / float(me[k].sum()), 2),
                focus_ratio=round(float(ctx["ratio"][k]), 2), peak=[int(peak[0]), int(peak[1])],
                edge_px=int(min(*peak, fp.shape[1] - 1 - peak[0], fp.shape[2] - 1 - peak[1])),
                area=int(me[k].sum()), **ctx["origin"][k])


def covered_twice_cases(estimates: dict, truth: dict, origin: list[dict], *, gsig: float) -> list[dict]:
    """Every covered-twice neuron of a fit (``estimates``: footprints, C, idx_components_bad, focus_ratio as the
    benchmark saves them) with its components' rows and the surplus's class."""
    fp, C, ratio = estimates["footprints"], estimates["C"], estimates["focus_ratio"]
    accepted = np.setdiff1d(np.arange(len(fp)), estimates["idx_components_bad"])
    score = shape_score(truth["footprints"], fp[accepted], truth_traces=truth["calcium"], estimated_traces=C[accepted])
    match = {i: int(accepted[j]) for i, j in score.matches}
    ctx = dict(zc=_zscored(C), zt=_zscored(truth["calcium"]), zo=_zscored(truth["out_of_focus_calcium"]), fp=fp,
               mt=energy_masks(truth["footprints"]).toarray().T.astype(bool),
               me=energy_masks(fp).toarray().T.astype(bool), ratio=ratio, match=match,
               owner_of={k: i for i, k in match.items()}, origin=origin)
    cases = []
    for i, js in score.covering.items():
        rows = [_component_row(int(accepted[j]), i, ctx) for j in js]
        a, b = rows[0]["component"], rows[1]["component"]
        me, zc = ctx["me"], ctx["zc"]
        pair = dict(iou=round(float((me[a] & me[b]).sum() / (me[a] | me[b]).sum()), 2),
                    r=round(float(zc[a] @ zc[b]), 2),
                    peak_distance_gsig=round(float(np.hypot(*np.subtract(rows[0]["peak"], rows[1]["peak"]))) / gsig, 2))
        surplus = [r for r in rows if not r["match"]] if any(r["match"] for r in rows) else rows[1:]
        cases.append(dict(neuron=int(i), defocus_um=round(float(truth["defocus_um"][i]), 1),
                          peak_snr=round(float(truth["peak_snr"][i]), 1), components=rows, pair=pair,
                          classes=[surplus_class(r) for r in surplus]))
    return cases


def main(argv: list[str] | None = None) -> int:
    import realistic_benchmark as rb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path)
    parser.add_argument("config", choices=list(rb.CONFIGS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="extra fit parameters")
    parser.add_argument("--focus-inputs", action="store_true",
                        help="also save the focus test's inputs as OUT.focus.npz, for focus_rerun.py")
    args = parser.parse_args(argv)
    params = dict(rb.CONFIGS[args.config]["params"], n_processes=1)
    params.update(parse_assignments(args.set))
    movie = np.load(args.movie, mmap_mode="r")
    rec, focus = StageRecorder(movie.shape[1:]), FocusInputs()
    with probes(*rec.hooks(), *(focus.hooks() if args.focus_inputs else ())):
        rb.fit_and_score(args.movie, params, args.out)   # writes args.out and its .estimates.npz
    estimates = dict(np.load(args.out.with_suffix(".estimates.npz")))
    if args.focus_inputs:
        focus.save(args.out.with_suffix(".focus.npz"), traces=estimates["C"])
    truth = dict(np.load(args.movie.with_suffix(".truth.npz")))
    cases = covered_twice_cases(estimates, truth, origins(rec, estimates["footprints"]), gsig=params["gSig"])
    args.out.with_suffix(".twice.json").write_text(json.dumps(cases, indent=1))
    for case in cases:
        print(f"neuron {case['neuron']}: {case['classes']} pair {case['pair']}")
        for row in case["components"]:
            print("   ", row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
