"""The 1P focus test re-run on a saved fit, without fitting again (issue #16, h16dup).

A diagnostic, not part of the product. The focus test (``cnmflow.engine.in_focus``) changes no component: it only
decides ``idx_components_bad``. So a change to it (a constant, a pair rule, another member choice) or another
``focus_thr`` / ``halo_thr`` can be measured on a saved fit in a few seconds instead of a 25–50 s refit — if the test
is handed exactly what the fit handed it. Rebuilding A and C from a fit's saved float32 footprints did not reproduce
every focus ratio (h16s8); :class:`FocusInputs` records the test's own arguments instead (a probe on
``fitting.out_of_focus``, and ``never_at_rest``'s rejections, which the fit adds to the test's), and :func:`rerun`
calls the test as imported now on them. On main 54b8233's 36 realistic fits (seeds 1–9, both configs, two settings
each) the re-run reproduces every rejection and every focus ratio (to 4e-16).
A fit that merges a pair on one soma — a weak pair or a strong one with an unjudged edge member
(``fitting._weak_pairs_merged``, h19merge, h20edge) — runs the test twice; the
second call, on the merged components, is the one recorded (its rejections are the fit's), and a re-run with other
thresholds does not redo the merge, whose pairs were chosen among the first call's accepted components.

    # fit once, keeping the test's inputs next to covered_twice.py's outputs
    PYTHONPATH=. .venv/bin/python benchmarks/covered_twice.py MOVIE.npy ca1 /tmp/ct_ca1_s1.json --focus-inputs
    # then, after editing engine/in_focus.py (or with other thresholds): main's row, the re-run's, what changed
    PYTHONPATH=. .venv/bin/python benchmarks/focus_rerun.py /tmp/ct_ca1_s1.json [--set focus_thr=0.7]
    # a module constant of engine/in_focus.py changed for the re-run (h23focus)
    PYTHONPATH=. .venv/bin/python benchmarks/focus_rerun.py /tmp/ct_ca1_s1.json --constant RELEASE_TRACE_CORR=0.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cnmflow.engine import fitting
from assignments import parse_assignments
from stage_probes import Hook

#: the test's keyword arguments recorded, in the order ``out_of_focus`` takes them
KEYWORDS = ("gsig", "focus_thr", "halo_thr", "chunk_frames", "tsub")


class FocusInputs:
    """What the fit hands the focus test (A, C, the field's shape, its keywords) and ``never_at_rest``'s rejections,
    for every call: a fit that tries a merge and undoes it (``fitting._settled_merges_kept``) runs the test on the
    merged components and returns the unmerged ones, judged by an earlier call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def _test(self, result, movie, A, C, dims, **kw) -> None:
        self.calls.append(dict(A=sp.csc_matrix(A, copy=True), C=np.array(C), dims=tuple(dims), kw=dict(kw),
                               rejected=np.asarray(result.rejected), ratio=np.asarray(result.ratio)))

    def _restless(self, result, C, snr) -> None:
        self.calls[-1].update(never_at_rest=np.flatnonzero(result), snr=np.asarray(snr))

    def hooks(self) -> list[Hook]:
        return [Hook(fitting, "out_of_focus", after=self._test), Hook(fitting, "never_at_rest", after=self._restless)]

    def judging(self, traces: np.ndarray | None = None) -> dict:
        """The call that judged the fit's returned components: the last whose traces are ``traces`` (the fit's C;
        None: the last call) up to each row's scale (the typical-size cut rescales a cut footprint's trace)."""
        if traces is None:
            return self.calls[-1]
        for call in reversed(self.calls):
            if call["C"].shape == traces.shape and np.allclose(_unit_rows(call["C"]), _unit_rows(traces), atol=1e-5):
                return call
        raise ValueError(f"none of the {len(self.calls)} focus test calls saw the fit's {len(traces)} traces")

    def save(self, path: Path, traces: np.ndarray | None = None) -> None:
        """The inputs of the call that judged the fit whose traces are ``traces`` (:meth:`judging`)."""
        s = self.judging(traces)
        A = s["A"]
        np.savez_compressed(path, A_data=A.data, A_indices=A.indices, A_indptr=A.indptr, A_shape=np.array(A.shape),
                            C=s["C"], dims=np.array(s["dims"]), rejected=s["rejected"], ratio=s["ratio"],
                            never_at_rest=s.get("never_at_rest", np.zeros(0, int)), snr=s.get("snr", np.zeros(0)),
                            **{f"kw_{k}": np.array(s["kw"][k]) for k in KEYWORDS if k in s["kw"]})


def _unit_rows(traces: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(np.asarray(traces, np.float64), axis=1, keepdims=True)
    return traces / np.where(norms > 0, norms, 1.0)


def load(path: Path) -> dict:
    """A :class:`FocusInputs` file: A (csc, as the test got it), C, dims, kw, the fit's rejections and ratios."""
    f = np.load(path)
    A = sp.csc_matrix((f["A_data"], f["A_indices"], f["A_indptr"]), shape=tuple(f["A_shape"]))
    kw = {k: f[f"kw_{k}"].item() for k in KEYWORDS if f"kw_{k}" in f}
    return dict(A=A, C=f["C"], dims=tuple(int(d) for d in f["dims"]), kw=kw, rejected=f["rejected"],
                ratio=f["ratio"], never_at_rest=f["never_at_rest"], snr=f["snr"])


def rerun(movie, inputs: dict, **overrides):
    """The focus test as imported now on a fit's recorded inputs (``overrides``: e.g. focus_thr), and the fit's
    rejections as the engine would report them (``never_at_rest``'s added while the test is on)."""
    from cnmflow.engine.in_focus import out_of_focus
    from cnmflow.engine.threads import single_threaded

    kw = {**inputs["kw"], **overrides}
    with single_threaded():   # as the fit runs it: a multi-threaded BLAS sums in another order (ratios off by 1e-6)
        test = out_of_focus(movie, inputs["A"], inputs["C"], inputs["dims"], **kw)
    rejected = test.rejected
    if kw["focus_thr"] > 0 and inputs["A"].shape[1]:
        rejected = np.union1d(rejected, inputs["never_at_rest"]).astype(int)
    return test, rejected


def score_row(footprints: np.ndarray, C: np.ndarray, rejected: np.ndarray, truth) -> str:
    """The benchmark's row: K accepted (rejected), F1@0.5, F1@0.3 (P / R), median IoU, median r, covered twice, and
    covered twice by a component whose trace follows the neuron."""
    from cnmflow.shape_scoring import covered_twice_by_followers, shape_score

    accepted = np.setdiff1d(np.arange(len(footprints)), rejected)
    s = shape_score(truth["footprints"], footprints[accepted], truth_traces=truth["calcium"],
                    estimated_traces=C[accepted])
    followers = covered_twice_by_followers(s, truth["calcium"], C[accepted])
    return (f"{accepted.size} ({len(rejected)}), {s.f1_iou50:.3f}, {s.f1_iou30:.3f} ({s.precision_iou30:.3f} / "
            f"{s.recall_iou30:.3f}), {s.median_iou:.3f}, {s.median_trace_corr:.3f}, covered twice "
            f"{s.n_multiply_covered}, by followers {len(followers)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fits", nargs="+", type=Path, help="covered_twice.py outputs (OUT.json) fitted with --focus-inputs")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="focus_thr / halo_thr to use")
    parser.add_argument("--constant", nargs="*", default=[], metavar="NAME=VALUE",
                        help="engine/in_focus.py module constants to set for the re-run (e.g. RELEASE_TRACE_CORR=0.5)")
    parser.add_argument("--movies", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="the folder holding the movies and their .truth.npz (default benchmarks/results)")
    args = parser.parse_args(argv)
    overrides = parse_assignments(args.set)
    from cnmflow.engine import in_focus
    for name, value in parse_assignments(args.constant).items():
        if not hasattr(in_focus, name):
            parser.error(f"--constant {name}: engine/in_focus.py has no such constant")
        setattr(in_focus, name, value)
    for out in args.fits:
        record = json.loads(out.read_text())
        movie_path = args.movies / record["movie"]
        movie = np.load(movie_path, mmap_mode="r")
        truth = dict(np.load(movie_path.with_suffix(".truth.npz")))
        estimates = dict(np.load(out.with_suffix(".estimates.npz")))
        _, rejected = rerun(movie, load(out.with_suffix(".focus.npz")), **overrides)
        before = estimates["idx_components_bad"]
        print(out.stem)
        print("   fit:    ", score_row(estimates["footprints"], estimates["C"], before, truth))
        if np.array_equal(before, rejected):
            print("   re-run:  the same")
        else:
            print("   re-run: ", score_row(estimates["footprints"], estimates["C"], rejected, truth),
                  "| rejected besides", sorted(map(int, np.setdiff1d(rejected, before))),
                  "| no longer", sorted(map(int, np.setdiff1d(before, rejected))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
