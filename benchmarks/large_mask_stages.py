"""Where a component's 90%-energy mask grows past its neuron's: one patch job probed stage by stage (issue #16,
findings/footprint_fidelity.md, h22large).

Fits the patch box whose centre lies nearest a true neuron (in this process, ``stage_probes`` hooks on the 1P patch
job) and, at each stage, takes the component whose peak lies nearest the neuron's: the initial footprint (the seed
search's, before the refinement), then in each refinement round the unclipped least-squares weights
(``_unconstrained``), the supported region (``_supported``) and the footprint after ``smooth_halo``. Per stage it
prints the 90% mask's area, IoU with the neuron's (its footprint cut to the box), the supported region's reach and
the mean on 2-px rings about the true peak relative to the ring at the peak, beside the truth's.

    PYTHONPATH=. .venv/bin/python benchmarks/large_mask_stages.py results/realistic_ca1_256x256x1000_seed4.npy \
        --cell 3 --set fr=10.0 gSig=6 gSiz=25 min_corr=0.6 min_pnr=6 rf=64 stride=32 focus_thr=0.72 [--out x.json]
"""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from assignments import parse_assignments
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.patch_job import one_photon
from cnmflow.engine.patch_job.dispatch import fit_patch
from cnmflow.engine.patches import patch_boxes
from cnmflow.engine.sections import EngineSettings
from cnmflow.params import build_params
from cnmflow.pixel_order import column_to_image
from footprint_split import energy_mask
from ring_means import ring_means
from stage_probes import Hook, crop, overridden, probes

RINGS = np.arange(0, 32, 2)


class Recorder:
    """The stages' footprints of the component nearest ``peak`` (box coordinates)."""

    def __init__(self, peak: tuple[int, int], dims: tuple[int, int]) -> None:
        self.peak, self.dims, self.stages = np.asarray(peak), dims, []
        self.round = 0
        self.pending: dict = {}

    def nearest(self, A: np.ndarray) -> int | None:
        if A.shape[1] == 0:
            return None
        peaks = np.array([np.unravel_index(int(np.argmax(column_to_image(A[:, k], self.dims))), self.dims)
                          for k in range(A.shape[1])])
        distance = np.hypot(*(peaks - self.peak).T)
        return int(np.argmin(distance)) if distance.min() <= 8 else None

    def add(self, name: str, image: np.ndarray, **extra) -> None:
        self.stages.append(dict(stage=name, image=image, **extra))

    def before_refine(self, Y, A, C, ring, section, **kw) -> None:
        k = self.nearest(A)
        if k is not None:
            self.add("initial (seed search + residual search)", column_to_image(A[:, k], self.dims))

    def after_supported(self, result, A, unconstrained, noise, dims, gsig, energies, **kw) -> None:
        k = self.nearest(A[:, :energies.size])
        self.round += 1
        if k is not None:
            self.pending = dict(k=k, unconstrained=column_to_image(unconstrained[:, k], dims),
                                supported=column_to_image(result[:, k], dims))
            self.add(f"round {self.round} unconstrained", self.pending["unconstrained"])
            self.add(f"round {self.round} clipped to support", np.where(self.pending["supported"],
                                                                          np.maximum(self.pending["unconstrained"], 0),
                                                                          0.0),
                     reach=self.reach(self.pending["supported"]))

    def after_halos(self, result, A, unconstrained, supported, dims, gsig, **kw) -> None:
        if self.pending:
            self.add(f"round {self.round} smooth_halo (final of the round)",
                     column_to_image(result[:, self.pending["k"]], dims))
            self.pending = {}

    def after_statistics(self, result, Y, A, C, C_background, ring, grid, **kw) -> None:
        """The unconstrained weights' three terms: the frames' own (``Y·c̃ / CC_kk``), the background's
        (``−B·c̃ / CC_kk``) and the other components' and surround maps' (``−Σ_j a_j CC_jk / CC_kk``)."""
        k = self.nearest(A)
        if k is None:
            return
        P, CC = result
        trace = C[k].astype(np.float64) - C[k].mean(dtype=np.float64)
        own = np.zeros(Y.shape[1:])
        for chunk in Y.chunks():
            own += np.tensordot(trace[chunk], np.asarray(Y[chunk], dtype=np.float64), axes=(0, 0))
        own = own / CC[k, k]
        others = np.delete(np.arange(A.shape[1]), k)     # the other footprints (not the surround maps)
        rest = column_to_image(-(A.astype(np.float64)[:, others] @ CC[others, k]) / CC[k, k], self.dims)
        self.add(f"round {self.round + 1} term: frames Y·c", own)
        background = column_to_image(P[:, k] / CC[k, k], self.dims) - own
        self.add(f"round {self.round + 1} term: background −B·c", background)
        self.add(f"round {self.round + 1} term: other components −A·CC", rest)

    def reach(self, region: np.ndarray) -> float:
        rows, cols = np.nonzero(region)
        return float(np.hypot(rows - self.peak[0], cols - self.peak[1]).max()) if rows.size else 0.0


def profile(image: np.ndarray, peak: np.ndarray, relative: bool = True) -> np.ndarray:
    """Mean on 2-px rings about ``peak`` (relative to the first ring's mean)."""
    means = ring_means(image, peak, RINGS)
    return means / means[0] if relative and means[0] > 0 else means


@contextmanager
def variant_in_place(variant: str | None, recorder: "Recorder", calcium: np.ndarray):
    """``no-surround``: every component's local residual trace zeroed (its surround map then takes nothing);
    ``true-trace``: the probed component's trace replaced, after each trace update, by the neuron's true calcium
    (block means to the patch's frame rate) fitted to it (scale and offset), so the footprint update sees a trace
    that carries nothing else; ``true-trace-background``: the same, and the round's background formed with it too."""
    if variant is None:
        yield
        return
    original = one_photon._refine_traces

    def changed(*args, **kw):
        A, C, C_background, local, *rest = original(*args, **kw)
        if variant == "no-surround":
            return (A, C, C_background, np.zeros_like(local), *rest)
        k = recorder.nearest(A)
        if k is not None:
            frames = C.shape[1]
            step = calcium.size // frames
            truth = calcium[:frames * step].reshape(frames, step).mean(axis=1)
            X = np.column_stack([truth, np.ones(frames)])
            C = C.copy()
            C[k] = (X @ np.linalg.lstsq(X, C[k].astype(np.float64), rcond=None)[0]).astype(C.dtype)
            rest = [C] * len(rest)   # the core traces too (main's patch job has none)
            if variant == "true-trace-background":   # the background of the round formed with it too
                C_background = C_background.copy()
                fit = np.linalg.lstsq(X, C_background[k].astype(np.float64), rcond=None)[0]
                C_background[k] = (X @ fit).astype(C_background.dtype)
        return (A, C, C_background, local, *rest)

    with overridden(one_photon, "_refine_traces", changed):
        yield


def run(movie_path: Path, cell: int, params: dict, variant: str | None = None) -> tuple[list[dict], np.ndarray, object]:
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    movie = np.load(movie_path, mmap_mode="r")
    dims = movie.shape[1:]
    full = build_params(dict(params, n_processes=1))
    job = EngineSettings.from_params(full).patch_job
    peak = np.array(np.unravel_index(int(np.argmax(truth["footprints"][cell])), dims))
    boxes = patch_boxes(dims, rf=full.rf, stride=full.stride)
    box = min(boxes, key=lambda b: np.hypot(*(np.array(b.center) - peak)))
    if job.init.ssub != 1:
        raise SystemExit("this probe reads the patch at full resolution (ssub 1)")
    recorder = Recorder(tuple(peak - [box.row0, box.col0]), box.shape)
    hooks = (Hook(one_photon, "_refine", before=recorder.before_refine),
             Hook(one_photon, "_supported", after=recorder.after_supported),
             Hook(one_photon, "_centred_footprint_statistics", after=recorder.after_statistics),
             Hook(one_photon, "_smoothed_halos", after=recorder.after_halos))
    with probes(*hooks), variant_in_place(variant, recorder, truth["calcium"][cell].astype(np.float64)):
        result = fit_patch(MovieSource.of(movie), box, job, fov_dims=dims, storage=PatchStorage())
    k = recorder.nearest(result.A)
    if k is not None:
        recorder.add("patch result", column_to_image(result.A[:, k], box.shape))
    return recorder.stages, crop(box, truth["footprints"][cell]), recorder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path)
    parser.add_argument("--cell", type=int, required=True, help="true neuron index")
    parser.add_argument("--set", nargs="*", default=[], help="NAME=VALUE analysis parameters")
    parser.add_argument("--variant", choices=["no-surround", "true-trace", "true-trace-background"],
                        help="a change to the patch job (see variant_in_place)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    stages, true_image, recorder = run(args.movie, args.cell, parse_assignments(args.set), args.variant)
    true_mask, peak = energy_mask(true_image), recorder.peak
    print(f"{'truth':45s} area {int(true_mask.sum()):5d}            profile "
          + " ".join(f"{v:.3f}" for v in profile(true_image, peak)))
    rows = []
    scale = None
    for stage in stages:
        m = energy_mask(stage["image"])
        iou = float((m & true_mask).sum() / (m | true_mask).sum())
        p = profile(stage["image"], peak, relative=False)
        if "term:" not in stage["stage"]:
            p = p / p[0] if p[0] > 0 else p
        else:   # the terms relative to the frames term's peak ring, so that they add up
            scale = p[0] if "frames" in stage["stage"] else scale
            p = p / scale
        reach = f" reach {stage['reach']:.1f}" if "reach" in stage else ""
        print(f"{stage['stage']:45s} area {int(m.sum()):5d} IoU {iou:.2f}{reach:12s} profile "
              + " ".join(f"{v:.3f}" for v in p))
        rows.append(dict(stage=stage["stage"], area=int(m.sum()), iou=iou, reach=stage.get("reach"),
                         profile=p.tolist()))
    if args.out:
        args.out.write_text(json.dumps(dict(cell=args.cell, truth_area=int(true_mask.sum()),
                                            truth_profile=profile(true_image, peak).tolist(), stages=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
