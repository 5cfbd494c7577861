"""The initial components' core areas, against what they are (issue #16, h16wide).

A diagnostic, not part of the product. Some of the first seed search's components on the realistic CA1
movies are far wider than a cell (cores of 4–7 π·gSig² against ~1–1.4) yet pass ``_neurons_only``'s radius
test, and their removal takes the light of dim cells beside them (h16c3, ``removal_bias.py``). This script
runs the fit in-process (``n_processes`` 1; the stages are wrapped by ``stage_probes``) and records, for
every component the first and the residual search hand to ``one_photon._neurons_only``: its core (pixels
above half its peak) in π·gSig², its second-moment radius in gSig, whether the radius test keeps it, the
true neuron under its peak (and that neuron's footprint there over its peak) and the component's trace
correlation with that neuron's true trace (tsub 2).

    PYTHONPATH=. .venv/bin/python benchmarks/initial_cores.py \
        benchmarks/results/realistic_ca1_256x256x1000_seed4.npy ca1 /tmp/cores_ca1_s4.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cnmflow.engine.footprint_shape import MAX_INITIAL_RADIUS_FACTOR, footprint_radii, neuron_sized
from cnmflow.engine.patch_job import one_photon
from stage_probes import Hook, PatchTracker, probes


def core_areas(A: np.ndarray) -> np.ndarray:
    """(K,) each footprint's pixels above half its peak."""
    peak = A.max(axis=0)
    return ((A > 0.5 * peak) & (peak > 0)).sum(axis=0)


class Recorder:
    """The truth on the tsub-2 time base and one record per initial component."""

    def __init__(self, truth: dict, tsub: int = 2):
        self.fp = truth["footprints"]
        n, t = truth["calcium"].shape
        self.cal = truth["calcium"][:, : t // tsub * tsub].reshape(n, -1, tsub).mean(-1)
        self.tracker, self.records = PatchTracker(), []

    def record(self, A: np.ndarray, C: np.ndarray, dims: tuple[int, int], gsig: float, edges: dict) -> None:
        """Every component ``_neurons_only`` is handed (a ``before`` hook: the call's arguments)."""
        kept = neuron_sized(A, dims, gsig=gsig, fov_edges=edges, factor=MAX_INITIAL_RADIUS_FACTOR)
        cores, radii = core_areas(A) / (np.pi * gsig ** 2), footprint_radii(A, dims) / gsig
        box = self.tracker.box
        for k in range(A.shape[1]):
            peak = np.unravel_index(np.argmax(A[:, k].reshape(dims, order="F")), dims)
            row, col = box.row0 + peak[0], box.col0 + peak[1]
            under = int(np.argmax(self.fp[:, row, col]))
            trace = C[k, : self.cal.shape[1]].astype(np.float64)
            self.records.append(dict(search=self.tracker.search, box=(box.row0, box.col0), peak=(int(row), int(col)),
                                     core=float(cores[k]), radius=float(radii[k]), radius_test=bool(kept[k]),
                                     under=under, on_peak=float(self.fp[under, row, col] / self.fp[under].max()),
                                     r=float(np.corrcoef(trace, self.cal[under])[0, 1])))

    def hooks(self) -> list[Hook]:
        return [*self.tracker.hooks(), Hook(one_photon, "_neurons_only", before=self.record)]


def summary(records: list[dict], true_cores: np.ndarray) -> dict:
    """The cores of the first search's components that follow the cell under their peak (r >= 0.8), and the
    components wider than 3 and 4 π·gSig² with their trace r."""
    first = [r for r in records if r["search"] == 0]
    cells = np.array([r["core"] for r in first if r["r"] >= 0.8 and r["on_peak"] >= 0.5])
    wide = {limit: sorted(round(r["r"], 2) for r in first if r["core"] > limit) for limit in (3, 4)}
    return dict(first=len(first), cells=len(cells), cell_core_p50_p99_max=np.percentile(cells, [50, 99, 100]).tolist(),
                true_core_p50_max=np.percentile(true_cores, [50, 100]).tolist(),
                wide_r={str(k): v for k, v in wide.items()})


def main(argv: list[str] | None = None) -> int:
    from cnmflow.engine import fit
    from cnmflow.params import build_params
    from realistic_benchmark import CONFIGS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path)
    parser.add_argument("config", choices=list(CONFIGS))
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    params = dict(CONFIGS[args.config]["params"], n_processes=1)
    truth = dict(np.load(args.movie.with_suffix(".truth.npz")))
    rec = Recorder(truth)
    with probes(*rec.hooks()):
        fit(np.load(args.movie, mmap_mode="r"), build_params(params))
    fp = truth["footprints"]
    true_cores = (fp >= 0.5 * fp.max(axis=(1, 2), keepdims=True)).sum(axis=(1, 2)) / (np.pi * params["gSig"] ** 2)
    result = summary(rec.records, true_cores)
    print(json.dumps(result))
    args.out.write_text(json.dumps(dict(records=rec.records, summary=result), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
