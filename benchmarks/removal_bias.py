"""What the seed search's removals take from a dim cell's own signal (issue #16, the never-seeded "c3" cells).

A diagnostic, not part of the product. A dim cell 9–12 px from a brighter one passes min_corr / min_pnr at
the first search's start but not once the neighbour's initial component is removed. Two removals could take
the dim cell's own transients with it, and this script measures both at the cell's core (the true
footprint's pixels >= half its peak, on the tsub-2 patch the search reads), against the truth file:

* **the first search's removal** of each initial component within 20 px of the cell (``corr_pnr._State.remove``):
  the component's trace correlation with the cell's true trace (and the true traces' own correlation), the
  share of the cell's raw amplitude at its core that ``a·c`` holds (``a·c`` at the core regressed on the
  neighbour's and the cell's true traces; the cell's coefficient over its true footprint there), the
  neighbour's coefficient there over the neighbour's true footprint there (its footprint against the truth), and the cell's amplitude in
  the filtered data ``F`` at its core after the removal over before (its coefficient on its true trace);
* **the residual search's removal** ``Y − A·C − B`` (``one_photon._residual_pass``): the share of the cell's
  raw amplitude at its core in ``A·C`` (the first search's components) and in ``B`` (the ring background).

Patches run in this process (``n_processes`` 1; the stages are wrapped by ``stage_probes``).

    PYTHONPATH=. .venv/bin/python benchmarks/removal_bias.py benchmarks/results/realistic_ca1_256x256x1000_seed1.npy \
        --neurons 39 42 57 104 105 115 --out /tmp/removal_bias_s1.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from cnmflow.engine.init import corr_pnr
from cnmflow.engine.patch_job import one_photon
from assignments import parse_assignments
from stage_probes import Hook, PatchTracker, crop, probes

#: removals of components whose peak lies farther than this (px) from the cell are not measured
NEAR_PX = 20.0


class Probe:
    """The truth on the tsub-2 time base and the records of one fit."""

    def __init__(self, truth: dict, neurons: list[int], tsub: int = 2):
        self.fp = truth["footprints"]
        n, t = truth["calcium"].shape
        self.cal = truth["calcium"][:, : t // tsub * tsub].reshape(n, -1, tsub).mean(-1).astype(np.float64)
        self.snr = truth["peak_snr"]
        self.peaks = np.array([np.unravel_index(np.argmax(f), f.shape) for f in self.fp])
        self.neurons = neurons
        self.tracker = PatchTracker()
        self.before_residual: dict[int, tuple] = {}
        self.before_removal: list[tuple] = []
        self.records: list[dict] = []

    @property
    def box(self):
        return self.tracker.box

    def cores_in(self, dims: tuple[int, int]) -> list[tuple[int, np.ndarray]]:
        """(neuron, core mask on the patch grid) of the neurons whose peak lies in the current patch."""
        b = self.box
        out = []
        for n in self.neurons:
            r, c = self.peaks[n]
            if b.row0 <= r < b.row0 + dims[0] and b.col0 <= c < b.col0 + dims[1]:
                out.append((n, self.patch(self.fp[n] >= 0.5 * self.fp[n].max(), dims)))
        return out

    def patch(self, image: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
        return crop(self.box, image, dims)

    def coefficients(self, y: np.ndarray, neurons: list[int]) -> np.ndarray:
        """Least-squares coefficients of ``y`` (frames, ...) on the neurons' true traces (with a constant)."""
        x = self.cal[neurons].T
        x = x - x.mean(0)
        y = y.reshape(y.shape[0], -1)
        return np.linalg.lstsq(x, y - y.mean(0), rcond=None)[0]


def _removal_record(p: Probe, st, a: np.ndarray, c: np.ndarray, n: int, core: np.ndarray, f_before: np.ndarray,
                    pnr_before: float) -> dict:
    """One removal's effect at neuron n's core (module docstring)."""
    dims = (st.h, st.w)
    peak = np.unravel_index(np.argmax(a), a.shape)
    nb = int(np.argmax(p.fp[:, p.box.row0 + peak[0], p.box.col0 + peak[1]]))  # the source under its peak
    product = c.astype(np.float64)[:, None] * a[core].astype(np.float64)[None, :]
    on_truth = p.coefficients(product, [nb, n])  # a·c at each core pixel as (neighbour, cell) true traces
    share = on_truth[1] / p.patch(p.fp[n], dims)[core]
    f_after = st.F[:, :, :][:, core].astype(np.float64).mean(1)
    amp = [p.coefficients(f, [nb, n])[1, 0] for f in (f_before, f_after)]
    nb_true = float(p.patch(p.fp[nb], dims)[core].mean())
    return dict(ev="remove", box=(p.box.row0, p.box.col0), n=n, nb=nb, snr_nb=float(p.snr[nb]),
                dist=round(float(np.hypot(*(p.peaks[n] - (p.box.row0 + peak[0], p.box.col0 + peak[1])))), 1),
                r_c_dim=float(np.corrcoef(c, p.cal[n])[0, 1]), r_true=float(np.corrcoef(p.cal[nb], p.cal[n])[0, 1]),
                raw_share=float(share.mean()), a_core_over_true=float(on_truth[0].mean() / max(nb_true, 1e-9)),
                core_px=int((a > 0.5 * a.max()).sum()), f_survival=float(amp[1] / amp[0]) if amp[0] else np.nan,
                pnr_before=pnr_before, pnr_after=float(st.pnr[core].max()))


def _hooks(p: Probe) -> list[Hook]:
    """Record each removal of the first search (around ``_State.remove``) and the residual search's input."""
    def before_removal(st, a, c):
        peak = np.add((p.box.row0, p.box.col0), np.unravel_index(np.argmax(a), a.shape))
        owner = int(np.argmax(p.fp[:, peak[0], peak[1]]))  # the component's own neuron is not measured
        near = [(n, m) for n, m in p.cores_in((st.h, st.w)) if n != owner and np.hypot(*(p.peaks[n] - peak)) <= NEAR_PX]
        p.before_removal = [(n, m, st.F[:, :, :][:, m].astype(np.float64).mean(1), float(st.pnr[m].max()))
                            for n, m in near]

    def after_removal(_, st, a, c):
        for n, m, f, pnr in p.before_removal:
            p.records.append(_removal_record(p, st, a, c, n, m, f, pnr))

    def before_residual_pass(Y, A, C, ring, job, **kw):
        for n, m in p.cores_in(Y.shape[1:]):
            mf = m.ravel(order="F")
            p.before_residual[n] = (m, Y[:, :, :][:, m].astype(np.float64).mean(1),
                                    (C.T.astype(np.float64) @ A[mf].T.astype(np.float64)).mean(1))

    def before_search(st, **kw):
        if p.tracker.kind == "residual":  # st.Y = Y − A·C − B
            for n, (m, y, ac) in p.before_residual.items():
                left = st.Y[:, :, :][:, m].astype(np.float64).mean(1)
                amp = p.coefficients(np.stack([y, ac, y - ac - left, left], 1), [n])[0]
                p.records.append(dict(ev="residual", box=(p.box.row0, p.box.col0), n=n, snr=float(p.snr[n]),
                                      ac_share=float(amp[1] / amp[0]), b_share=float(amp[2] / amp[0]),
                                      left=float(amp[3] / amp[0]), pnr=float(st.pnr[m].max())))
            p.before_residual = {}

    return [*p.tracker.hooks(), Hook(corr_pnr, "_greedy", before=before_search),
            Hook(corr_pnr._State, "remove", before=before_removal, after=after_removal),
            Hook(one_photon, "_residual_pass", before=before_residual_pass)]


def summary(records: list[dict]) -> list[dict]:
    """Per neuron: the first-search removal that cut its core's PNR most, and its residual-search shares."""
    worst, residual = {}, defaultdict(list)
    for r in records:
        if r["ev"] == "remove":
            drop = r["pnr_before"] - r["pnr_after"]
            if r["n"] not in worst or drop > worst[r["n"]][0]:
                worst[r["n"]] = (drop, r)
        else:
            residual[r["n"]].append(r)
    rows = []
    for n in sorted(set(worst) | set(residual)):
        row = dict(neuron=n, **({k: v for k, v in worst[n][1].items() if k not in ("ev", "n")} if n in worst else {}))
        if residual[n]:
            row.update({k: float(np.median([r[k] for r in residual[n]])) for k in ("ac_share", "b_share", "left")},
                       residual_pnr=max(r["pnr"] for r in residual[n]))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    from cnmflow.engine import fit
    from cnmflow.params import build_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path)
    parser.add_argument("--neurons", nargs="+", type=int, help="true neurons to measure (default: all)")
    parser.add_argument("--set", nargs="*", default=["fr=10", "gSig=6", "gSiz=25", "min_corr=0.6", "min_pnr=7",
                                                     "rf=64", "stride=32"], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    params = parse_assignments(args.set)
    params["n_processes"] = 1
    truth = dict(np.load(args.movie.with_suffix(".truth.npz")))
    probe = Probe(truth, args.neurons if args.neurons else list(range(truth["footprints"].shape[0])))
    with probes(*_hooks(probe)):
        fit(np.load(args.movie, mmap_mode="r"), build_params(params))
    rows = summary(probe.records)
    for row in rows:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    if args.out:
        args.out.write_text(json.dumps(dict(records=probe.records, summary=rows), indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
