"""Where each true neuron the 1P engine misses or matches poorly is lost (issue #16): never a seed,
seeded but dropped, rejected by the focus test, or found with a footprint that matches at IoU <= 0.5.

A diagnostic, not part of the product: it wraps the patch job's stages in this process (``stage_probes``;
patches run in-process, ``n_processes`` 1) and records, per patch, the first and residual searches'
correlation / PNR / search images, every seed tried and what became of it, what ``_neurons_only`` dropped
and the refined footprints, and the components after each stage that follows the patches (``deduplicate``,
``merge_components``, the size and transient rules). It scores the accepted components as
``realistic_benchmark.py`` does and classifies (``loss_class``) every true neuron matched at IoU <= 0.5
or not at all by where it was lost.

    PYTHONPATH=. .venv/bin/python benchmarks/seed_losses.py benchmarks/results/realistic_cortex_l23_256x256x1200_seed1.npy \
        --set gSig=3 gSiz=13 min_corr=0.7 min_pnr=5 rf=40 stride=20 fr=20
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from cnmflow.engine import fitting
from cnmflow.engine.footprint_shape import MAX_INITIAL_RADIUS_FACTOR, neuron_sized
from cnmflow.engine.init import corr_pnr
from cnmflow.engine.patch_job import one_photon
from cnmflow.pixel_order import column_to_image
from cnmflow.shape_scoring import energy_masks, iou_matrix
from assignments import parse_assignments
from stage_probes import Hook, PatchTracker, crop, probes, to_field

RECORD: dict = dict(searches=[], tries=[], sized=[], refined=[], after=[])
TRACKER = PatchTracker()


def _search_hooks() -> list[Hook]:
    """Each search's images (at its end, after its removals: ``st`` is kept) and every seed tried."""
    def search(st, **kw):
        RECORD["searches"].append(dict(box=TRACKER.box, kind=TRACKER.kind, cn=st.cn.copy(), pnr=st.pnr.copy(),
                                       search=st.search.copy(), min_pnr=st.min_pnr, min_corr=st.min_corr,
                                       state=st))  # st.cn / st.pnr at the search's end: after its removals

    def tried(out, st, r, c, gsiz):
        why = "ok" if out is not None else ("no transient" if st.peak[r, c] < st.min_pnr * st.sn[r, c] else "empty")
        RECORD["tries"].append(dict(box=TRACKER.box, kind=TRACKER.kind, at=(r, c), why=why))

    def on_halo(on, trace, seed, traces, centers, gsiz):
        if on:
            RECORD["tries"][-1]["why"] = "halo of a found component"

    def core_blocked(blocked, a, seed, disc):
        RECORD["searches"][-1]["blocked"] = blocked  # the search's own array: its final state is read later

    return [Hook(corr_pnr, "_greedy", before=search), Hook(corr_pnr, "_init_one", after=tried),
            Hook(corr_pnr, "_on_found_halo", after=on_halo), Hook(corr_pnr, "_block_core", before=core_blocked)]


def _patch_hooks() -> list[Hook]:
    """The initial components ``_neurons_only`` is handed (and which it keeps), and the refined ones."""
    def sized(A, C, dims, gsig, edges):
        keep = neuron_sized(A, dims, gsig=gsig, fov_edges=edges, factor=MAX_INITIAL_RADIUS_FACTOR)
        RECORD["sized"].append(dict(box=TRACKER.box, kind=TRACKER.kind, dims=dims,
                                    A=[column_to_image(A[:, k], dims) for k in range(A.shape[1])], keep=keep))

    def refined(out, Y, A, C, ring, section, **kw):
        dims = Y.shape[1:]
        RECORD["refined"].append(dict(box=TRACKER.box, A=[column_to_image(out[0][:, k], dims)
                                                          for k in range(out[0].shape[1])]))

    return [Hook(one_photon, "_neurons_only", before=sized), Hook(one_photon, "_refine", after=refined)]


def _after_patches_hooks() -> list[Hook]:
    """Record the components after each stage that follows the patches: every patch's copies,
    ``deduplicate``, ``merge_components``, the size rule and the transient rule."""
    def dedup(keep, A, owners, boxes, dims, **kw):
        RECORD["after"] += [("patch copies", sp.csc_matrix(A)), ("deduplicate", sp.csc_matrix(A)[:, np.flatnonzero(keep)])]

    def after(name: str, footprints: Callable):
        def record(out, *args, **kw):
            RECORD["after"].append((name, sp.csc_matrix(footprints(out))))
        return record

    return [Hook(fitting, "deduplicate", after=dedup),
            Hook(fitting, "merge_components", after=after("merge", lambda out: out.A)),
            Hook(fitting, "_neuron_sized", after=after("size rule", lambda out: out[0])),
            Hook(fitting, "_transient_like", after=after("transient rule", lambda out: out[0]))]


def _in_box(box, point) -> bool:
    return box.row0 <= point[0] < box.row1 and box.col0 <= point[1] < box.col1


def _energy_mask(img: np.ndarray, fraction: float = 0.9) -> np.ndarray:
    """The pixels holding ``fraction`` of the footprint's weight (as shape_scoring)."""
    w = np.maximum(img, 0).ravel()
    if not w.sum() > 0:
        return np.zeros(img.shape, bool)
    order = np.argsort(w)[::-1]
    n = int(np.searchsorted(np.cumsum(w[order]), fraction * w.sum())) + 1
    mask = np.zeros(w.size, bool)
    mask[order[:n]] = True
    return mask.reshape(img.shape)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def _search_values(core: np.ndarray, centre, kind: str) -> dict:
    """Max over the neuron's core of each patch search's correlation, PNR and search image."""
    best = dict(cn=0.0, pnr=0.0, joint=0.0, joint_end=0.0, searchable=False, pnr_needed=np.inf, blocked=1.0)
    for s in RECORD["searches"]:
        if s["kind"] != kind or not _in_box(s["box"], centre):
            continue
        m = crop(s["box"], core)
        best["cn"] = max(best["cn"], float(s["cn"][m].max()))
        best["pnr"] = max(best["pnr"], float(s["pnr"][m].max()))
        best["searchable"] |= bool((s["search"][m] > 0).any())
        if "blocked" in s:
            best["blocked"] = min(best["blocked"], float(s["blocked"][m].mean()))
        else:
            best["blocked"] = 0.0
        # the factor both thresholds could be scaled by with some core pixel still passing both
        joint = np.minimum(s["cn"][m] / s["min_corr"], s["pnr"][m] / s["min_pnr"])
        best["joint"] = max(best["joint"], float(joint.max()))
        end = np.minimum(s["state"].cn[m] / s["min_corr"], s["state"].pnr[m] / s["min_pnr"])
        best["joint_end"] = max(best["joint_end"], float(end.max()))
        best["pnr_needed"] = min(best["pnr_needed"], float(s["min_pnr"]))
    return best


def _tries_on(core: np.ndarray) -> list[dict]:
    out = []
    for t in RECORD["tries"]:
        r, c = t["box"].row0 + t["at"][0], t["box"].col0 + t["at"][1]
        if core[r, c]:
            out.append(dict(t, global_at=(r, c)))
    return out


def _nearest_try(centre, footprints: np.ndarray) -> dict:
    """The seed tried closest to a neuron's centre, and whose core (>= half its peak) it was on."""
    best = dict(distance=np.inf)
    for t in RECORD["tries"]:
        r, c = t["box"].row0 + t["at"][0], t["box"].col0 + t["at"][1]
        d = float(np.hypot(r - centre[0], c - centre[1]))
        if d < best["distance"]:
            on = np.flatnonzero(footprints[:, r, c] >= 0.5 * footprints.max(axis=(1, 2)))
            best = dict(distance=round(d, 1), kind=t["kind"], why=t["why"], on_core_of=on.tolist())
    return best


def _best_iou(truth_mask: np.ndarray, entries: list[dict], dims, *, kept_only: bool) -> float:
    best = 0.0
    for e in entries:
        keep = e.get("keep", np.ones(len(e["A"]), bool))
        for a, k in zip(e["A"], keep):
            if kept_only and not k:
                continue
            if np.count_nonzero(crop(e["box"], truth_mask) & (a > 0)) == 0:
                continue
            best = max(best, _iou(truth_mask, _energy_mask(to_field(e["box"], a, dims))))
    return best


def _stage(first: dict, residual: dict, tries: list[dict], iou_sized_all: float, iou_sized_kept: float,
           iou_refined: float, iou_final: float) -> str:
    """The first stage that lost the neuron."""
    if iou_final > 0.3:
        return "c3: its best final component (IoU > 0.3) went to a neighbour (one component for two)"
    if not first["searchable"] and not residual["searchable"]:
        return "a: below min_corr/min_pnr in both searches"
    if not tries:
        return "a2: in the search image, never tried (suppressed / blocked)"
    whys = {t["why"] for t in tries}
    if "ok" not in whys:
        return "b1: tried, " + "/".join(sorted(whys))
    if iou_sized_all > 0.3 and iou_sized_kept <= 0.3:
        return "b2: initialised, dropped by _neurons_only"
    if iou_sized_all <= 0.3:
        return "c0: initialised at IoU <= 0.3"
    if iou_refined <= 0.3:
        return "c1: refined footprint IoU <= 0.3 (or dropped in the patch)"
    return "c2: lost after the patches (merge / border / quality / final update)"


def _after_patches(truth_masks: sp.csc_matrix, dims) -> dict[str, np.ndarray]:
    """Each true neuron's best IoU among the components after every stage that follows the patches."""
    return {name: iou_matrix(truth_masks, energy_masks(A, dims=dims))[0].max(axis=1, initial=0.0)
            for name, A in RECORD["after"]}


def _lost_at(row: dict, limit: float, *, min_drop: float = 0.0) -> str | None:
    """The post-patch stage where a neuron's best IoU fell most (by ``min_drop`` at least), if it ends at
    ``limit`` or less."""
    names = list(row["after"])
    if not names or row["after"][names[-1]] > limit:
        return None
    before = [row["iou_refined"]] + [row["after"][name] for name in names[:-1]]
    drops = [b - row["after"][name] for b, name in zip(before, names)]
    return names[int(np.argmax(drops))] if max(drops) >= min_drop else None


def _seed_row(n: int, truth: dict, est_masks: list[np.ndarray], full_images) -> dict:
    """Where in the patches a neuron was lost: its search values, the seeds tried on it, its best IoU per stage."""
    fp = truth["footprints"][n]
    dims = fp.shape
    core = fp >= 0.5 * fp.max()
    centre = np.unravel_index(np.argmax(fp), dims)
    tmask = _energy_mask(fp)
    first, residual = _search_values(core, centre, "first"), _search_values(core, centre, "residual")
    tries = _tries_on(core)
    iou_all = _best_iou(tmask, RECORD["sized"], dims, kept_only=False)
    iou_kept = _best_iou(tmask, RECORD["sized"], dims, kept_only=True)
    iou_ref = _best_iou(tmask, RECORD["refined"], dims, kept_only=False)
    iou_final = max([_iou(tmask, m) for m in est_masks], default=0.0)
    return dict(
        corr_full=round(float(full_images.correlation[core].max()), 3),
        pnr_full=round(float(full_images.pnr[core].max()), 2),
        corr_first=round(first["cn"], 3), pnr_first=round(first["pnr"], 2), pnr_needed=first["pnr_needed"],
        corr_resid=round(residual["cn"], 3), pnr_resid=round(residual["pnr"], 2),
        joint_first=round(first["joint"], 2), joint_resid=round(residual["joint"], 2),
        joint_first_end=round(first["joint_end"], 2), joint_resid_end=round(residual["joint_end"], 2),
        blocked_first=round(first["blocked"], 2), blocked_resid=round(residual["blocked"], 2),
        tries=[(t["kind"], t["why"]) for t in tries], nearest_try=_nearest_try(centre, truth["footprints"]),
        iou_init=round(iou_all, 2), iou_kept=round(iou_kept, 2), iou_refined=round(iou_ref, 2),
        iou_final=round(iou_final, 2), stage=_stage(first, residual, tries, iou_all, iou_kept, iou_ref, iou_final))


def _rejected_match(n: int, iou_all: np.ndarray, estimates, truth: dict) -> dict:
    """The rejected component overlapping neuron n most: IoU, focus ratio, trace r with the neuron."""
    bad = np.asarray(estimates.idx_components_bad, int)
    if not bad.size:
        return dict(iou=0.0)
    k = int(bad[np.argmax(iou_all[n, bad])])
    r = float(np.corrcoef(estimates.C[k], truth["calcium"][n])[0, 1])
    return dict(component=k, iou=round(float(iou_all[n, k]), 2), focus_ratio=round(float(estimates.focus_ratio[k]), 2),
                r_with_neuron=round(r, 2))


def loss_class(row: dict) -> str:
    """The class of a neuron matched at IoU <= 0.5 or not at all, from its row (issue #16's classes)."""
    seeded = any(why == "ok" for _, why in row["tries"])
    if row["iou_accepted"] > 0.3:
        if not seeded:
            return "m0: kept at IoU 0.3-0.5, never seeded — a neighbour's component covers it"
        if min(row["iou_refined"], row["after"].get("patch copies", 1.0)) < 0.5:
            return "m1: kept at IoU 0.3-0.5, seeded — no copy >= 0.5 out of any patch"
        stage = _lost_at(row, 0.5)
        return f"m2: kept at IoU 0.3-0.5, seeded — a >= 0.5 copy lost at {stage}" if stage else \
            "m3: kept at IoU 0.3-0.5, seeded — a >= 0.5 component exists, assigned elsewhere"
    if row["rejected"]["iou"] > 0.3:
        return "f: rejected by the focus test"
    # unmatched: the stage where a seeded copy's IoU fell most, when it fell by 0.2 or more
    if seeded and row["iou_refined"] > 0.3 and (stage := _lost_at(row, 1.0, min_drop=0.2)):
        return f"c2: seeded, IoU > 0.3 out of its patch, lost at {stage}"
    return row["stage"]


def classify(truth: dict, estimates, shapes, full_images) -> list[dict]:
    """Every true neuron matched (accepted components, IoU > 0.3) below IoU 0.5 or not at all, and why."""
    dims = truth["footprints"].shape[1:]
    accepted = np.setdiff1d(np.arange(estimates.K), estimates.idx_components_bad)
    est_fp = estimates.footprints()
    est_masks = [_energy_mask(f) for f in est_fp[accepted]]
    truth_masks = energy_masks(truth["footprints"])
    iou_all = iou_matrix(truth_masks, energy_masks(est_fp))[0]
    after = _after_patches(truth_masks, dims)
    assigned = {i: float(v) for (i, _), v in zip(shapes.matches, shapes.ious)}
    rows = []
    for n in range(truth["footprints"].shape[0]):
        if assigned.get(n, 0.0) >= 0.5:
            continue
        row = dict(neuron=n, peak_snr=round(float(truth["peak_snr"][n]), 2),
                   defocus=round(float(truth["defocus_um"][n]), 1), iou_accepted=round(assigned.get(n, 0.0), 2),
                   rejected=_rejected_match(n, iou_all, estimates, truth),
                   after={name: round(float(best[n]), 3) for name, best in after.items()},
                   **_seed_row(n, truth, est_masks, full_images))
        row["class"] = loss_class(row)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    from cnmflow.engine import fit
    from cnmflow.engine.summary_images import correlation_pnr
    from cnmflow.params import build_params
    from cnmflow.shape_scoring import shape_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", type=Path)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    params = parse_assignments(args.set)
    params["n_processes"] = 1
    movie = np.load(args.movie, mmap_mode="r")
    truth = dict(np.load(args.movie.with_suffix(".truth.npz")))
    with probes(*TRACKER.hooks(), *_search_hooks(), *_patch_hooks(), *_after_patches_hooks()):
        estimates = fit(movie, build_params(params))
    accepted = np.setdiff1d(np.arange(estimates.K), estimates.idx_components_bad)  # as the benchmark scores
    shapes = shape_score(truth["footprints"], estimates.footprints()[accepted], truth_traces=truth["calcium"],
                         estimated_traces=estimates.C[accepted])
    print({k: v for k, v in shapes.summary().items()})
    images = correlation_pnr(movie, gsig=params.get("gSig", 3))
    rows = classify(truth, estimates, shapes, images)
    for row in rows:
        print(row)
    print(Counter(r["class"] for r in rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
