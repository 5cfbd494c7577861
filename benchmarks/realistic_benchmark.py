"""Footprint shapes, duplicates and traces of ``cnmflow.engine.fit`` on the realistic 1P simulator.

Simulates each configuration once (``cnmflow.synthetic.simulate_realistic_1p``, cached under the
results folder as a memory-mappable ``.npy`` plus a ``.truth.npz``), fits it in a fresh process,
and scores it with ``cnmflow.shape_scoring.shape_score`` (90%-energy masks, Hungarian matching):
F1 at IoU >= 0.5 and > 0.3, median IoU, median trace r, 90%-energy mask areas, neurons covered by
two or more components — plus diagnostics of the matched footprints against the truth (radial
profiles around the true peak, non-zero pixels, energy within 5 and 10 px). Writes
``realistic_benchmark.json`` and prints a table. The issue #16 targets: median IoU >= 0.75,
F1@0.5 >= 0.85, F1@0.3 >= 0.93, median trace r >= 0.98, no neuron covered twice.

    .venv/bin/python benchmarks/realistic_benchmark.py                    # ca1 and cortex_l23
    .venv/bin/python benchmarks/realistic_benchmark.py --configs ca1 --set min_pnr=10
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignments import parse_assignments  # noqa: E402

#: Movie and the parameters a user sets for it (gSig matched to the cells, thresholds read
#: off the correlation / PNR images), as in issue #16.
CONFIGS = {
    "ca1": dict(frames=1000, params=dict(fr=10.0, gSig=6, gSiz=25, min_corr=0.6, min_pnr=7, rf=64, stride=32,
                                         n_processes=2)),
    "cortex_l23": dict(frames=1200, params=dict(fr=20.0, gSig=3, gSiz=13, min_corr=0.7, min_pnr=5, rf=40, stride=20,
                                                n_processes=2)),
}
TARGETS = {"median_iou": 0.75, "f1_iou50": 0.85, "f1_iou30": 0.93, "median_trace_corr": 0.98, "n_multiply_covered": 0}
RADII = np.arange(0, 20, 2)
RESULTS = Path(__file__).resolve().parent / "results"


def simulate(config: str, frames: int, folder: Path, seed: int, overrides: dict | None = None) -> Path:
    """Render the movie straight into a ``.npy`` memmap; save the truth next to it.

    ``overrides`` replace settings of the simulator's preset (``--sim-set``, e.g. ``vessel_contrast=[0.38,0.45]``):
    the movie's name then ends in ``_sim-`` and the settings (:func:`simulator_tag`), so it never collides with the
    preset's movie of the same seed, and the truth file keeps them (``simulator_overrides``, JSON) for the scripts
    that re-simulate its sources (``fp_sources.py``)."""
    from cnmflow.synthetic import simulate_realistic_1p

    overrides = overrides or {}
    movie_path = folder / f"realistic_{config}_256x256x{frames}_seed{seed}{simulator_tag(overrides)}.npy"
    truth_path = movie_path.with_suffix(".truth.npz")
    if movie_path.exists() and truth_path.exists():
        return movie_path
    out = np.lib.format.open_memmap(movie_path, mode="w+", dtype=np.float32, shape=(frames, 256, 256))
    sim = simulate_realistic_1p(config, n_frames=frames, rng=seed, out=out, **overrides)
    out.flush()
    t = sim.truth
    labels = np.array(t.background_labels)
    np.savez_compressed(truth_path, footprints=t.footprints, calcium=t.calcium, centers=t.centers,
                        peak_snr=t.peak_snr, defocus_um=t.defocus_um,
                        out_of_focus_calcium=t.background_temporal[np.char.startswith(labels, "cell")],
                        neuropil_traces=t.background_temporal[np.char.startswith(labels, "neuropil")],
                        simulator_overrides=json.dumps(overrides, sort_keys=True))
    return movie_path


def simulator_tag(overrides: dict) -> str:
    """The movie name's suffix for simulator overrides: ``""`` for none, else ``_sim-`` and each ``NAME-VALUE``
    (values' numbers joined by ``-``), sorted by name: ``{"vessel_contrast": [0.38, 0.45]}`` ->
    ``_sim-vessel_contrast-0.38-0.45``."""
    parts = []
    for name, value in sorted(overrides.items()):
        values = value if isinstance(value, (list, tuple)) else [value]
        parts.append("-".join([name] + [str(v) for v in values]))
    return "_sim-" + "-".join(parts) if parts else ""


def simulator_overrides(truth_path: Path) -> dict:
    """The simulator overrides a movie was made with (``simulate``), read from its truth file; ``{}`` for none
    (also for truth files written before they were recorded)."""
    with np.load(truth_path) as truth:
        return json.loads(str(truth["simulator_overrides"])) if "simulator_overrides" in truth.files else {}


def _profile(img: np.ndarray, center: tuple[int, int]) -> np.ndarray:
    from cnmflow.synthetic.optics import radial_profile

    peak = img[center]
    return radial_profile(img, center, RADII) / peak if peak > 0 else np.full(len(RADII), np.nan)


def diagnose(truth_fp: np.ndarray, est_fp: np.ndarray, result, peak_snr: np.ndarray | None = None) -> dict:
    """What the matched footprints look like next to the truth (medians over matches)."""
    prof_t, prof_e, nnz_t, nnz_e, nnz1_t, nnz1_e, e5, e10, e5t, e10t, peak_off = ([] for _ in range(11))
    for i, j in result.matches:
        t, e = truth_fp[i], est_fp[j]
        c = np.unravel_index(np.argmax(t), t.shape)
        ce = np.unravel_index(np.argmax(e), e.shape)
        peak_off.append(float(np.hypot(c[0] - ce[0], c[1] - ce[1])))
        prof_t.append(_profile(t, c))
        prof_e.append(_profile(e, c))  # around the true peak, relative to the estimate there
        nnz_t.append(int((t > 0).sum()))
        nnz_e.append(int((e > 0).sum()))
        nnz1_t.append(int((t > 0.01 * t.max()).sum()))
        nnz1_e.append(int((e > 0.01 * e.max()).sum()))
        e5.append(_within(e, c, 5))
        e10.append(_within(e, c, 10))
        e5t.append(_within(t, c, 5))
        e10t.append(_within(t, c, 10))
    med = lambda x: float(np.nanmedian(x)) if len(x) else float("nan")  # noqa: E731
    dup_pairs = []
    for i, js in result.covering.items():
        peaks = [np.unravel_index(np.argmax(est_fp[j]), est_fp[j].shape) for j in js]
        c = np.unravel_index(np.argmax(truth_fp[i]), truth_fp[i].shape)
        dup_pairs.append({"neuron": i, "components": list(js),
                          "peak_distance_px": [round(float(np.hypot(p[0] - c[0], p[1] - c[1])), 1) for p in peaks],
                          "nnz": [int((est_fp[j] > 0).sum()) for j in js]})
    unmatched_true = sorted(set(range(truth_fp.shape[0])) - {i for i, _ in result.matches})
    # how finding and traces depend on brightness: thirds of the true neurons by peak SNR
    by_snr = {}
    if peak_snr is not None and len(peak_snr):
        edges = np.quantile(peak_snr, [0, 1 / 3, 2 / 3, 1])
        matched = dict(result.matches)
        corr = dict(zip((i for i, _ in result.matches), result.trace_corrs))
        for name, lo, hi in zip(("dim", "middle", "bright"), edges[:-1], edges[1:]):
            members = [i for i in range(len(peak_snr)) if lo <= peak_snr[i] <= hi]
            rs = [corr[i] for i in members if i in matched]
            by_snr[name] = {"peak_snr": [round(float(lo), 2), round(float(hi), 2)],
                            "recall_iou30": round(sum(i in matched for i in members) / max(len(members), 1), 3),
                            "median_trace_corr": round(med(rs), 3)}
    return {
        "profile_true": np.round(np.nanmedian(prof_t, axis=0), 3).tolist() if prof_t else [],
        "profile_estimated": np.round(np.nanmedian(prof_e, axis=0), 3).tolist() if prof_e else [],
        "nnz_true": med(nnz_t), "nnz_estimated": med(nnz_e),
        "nnz_over_1pct_true": med(nnz1_t), "nnz_over_1pct_estimated": med(nnz1_e),
        "energy_5px_true": round(med(e5t), 3), "energy_5px_estimated": round(med(e5), 3),
        "energy_10px_true": round(med(e10t), 3), "energy_10px_estimated": round(med(e10), 3),
        "peak_offset_px": med(peak_off), "n_unmatched_true": len(unmatched_true),
        "by_peak_snr": by_snr, "duplicates": dup_pairs[:20],
    }


def edge_distances(result, est_fp: np.ndarray, truth_fp: np.ndarray) -> dict:
    """How far from the field's edge (px, the nearest of the four) the peaks of the surplus
    components, the unmatched components and all components lie, and the true neurons': the ring
    background is cut by the field's edge (its unexplained smooth background there is 2–2.5× the
    interior's), so components that are no neuron gather there."""
    rows, cols = est_fp.shape[1:]

    def edge(fp: np.ndarray) -> int:
        r, c = np.unravel_index(np.argmax(fp), fp.shape)
        return int(min(r, c, rows - 1 - r, cols - 1 - c))

    from cnmflow.shape_scoring import surplus_pairs

    own = dict(result.matches)  # neuron -> its matched component
    surplus = sorted(j for _, j in surplus_pairs(result))
    unmatched = sorted(set(range(est_fp.shape[0])) - set(own.values()) - set(surplus))
    near = max(rows, cols) // 16  # the outer band: 1/16 of the field per side (16 px at 256²)
    return {"surplus": [edge(est_fp[j]) for j in surplus], "unmatched": [edge(est_fp[j]) for j in unmatched],
            "band_px": near, "components_in_band": int(sum(edge(f) < near for f in est_fp)),
            "true_in_band": int(sum(edge(f) < near for f in truth_fp))}


def _within(img: np.ndarray, center, radius: float) -> float:
    rr = np.hypot(np.arange(img.shape[0])[:, None] - center[0], np.arange(img.shape[1])[None, :] - center[1])
    pos = np.clip(img, 0, None)
    total = pos.sum()
    return float(pos[rr <= radius].sum() / total) if total > 0 else float("nan")


def _zscored(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def extra_components(result, truth, C: np.ndarray) -> dict:
    """What the components that are not a neuron's match are, by their traces' best correlation.

    Surplus components on a covered neuron and unmatched components are each called a
    ``duplicate`` (r >= 0.7 with the neuron it covers), ``neuron`` (r >= 0.7 with some other true
    neuron), ``out_of_focus`` (r >= 0.7 with an out-of-focus cell), ``neuropil`` (|r| >= 0.5
    with a neuropil mode) or ``other``.
    """
    ce, ct = _zscored(C), _zscored(truth["calcium"])
    co, cn = _zscored(truth["out_of_focus_calcium"]), _zscored(truth["neuropil_traces"])
    matched = {j for _, j in result.matches}
    owner = {j: i for i, js in result.covering.items() for j in js}
    counts: dict[str, int] = {}
    for j in range(ce.shape[0]):
        if j in matched:
            continue
        i = owner.get(j)
        if i is not None and float(ct[i] @ ce[j]) >= 0.7:
            kind = "duplicate"
        elif ct.size and float((ct @ ce[j]).max()) >= 0.7:
            kind = "neuron"
        elif co.size and float((co @ ce[j]).max()) >= 0.7:
            kind = "out_of_focus"
        elif cn.size and float(np.abs(cn @ ce[j]).max()) >= 0.5:
            kind = "neuropil"
        else:
            kind = "other"
        key = ("surplus_" if i is not None else "unmatched_") + kind
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def footprint_breadth(image: np.ndarray, peak: tuple[int, int], gsig: float) -> dict:
    """Half-max radius (in gSig) of the region around ``peak`` and its core contrast: mean within gSig
    of the peak over mean at gSig–2·gSig, both above the median at 3–4·gSig. An in-focus soma seen
    through scattering has a compact core plus a faint halo (contrast ~2.4 at CA1's gSig 6); a defocused
    cell or neuropil is a broad blob with a flat top (contrast nearer 1)."""
    rr = np.hypot(np.arange(image.shape[0])[:, None] - peak[0], np.arange(image.shape[1])[None, :] - peak[1])
    base = float(np.median(image[(rr > 3 * gsig) & (rr <= 4 * gsig)]))
    core, annulus = image[rr <= gsig].mean() - base, image[(rr > gsig) & (rr <= 2 * gsig)].mean() - base
    top = np.unravel_index(np.argmax(np.where(rr <= gsig, image, -np.inf)), image.shape)
    regions, _ = ndimage.label((image - base >= 0.5 * (image[top] - base)) & (rr <= 4 * gsig))
    radius = np.sqrt((regions == regions[top]).sum() / np.pi) / gsig
    return {"half_max_radius_gsig": round(float(radius), 2),
            "core_contrast": round(float(core / annulus), 2) if annulus > 0 else float("inf")}


def active_images(movie, C: np.ndarray, components, n_active: int = 20, chunk: int = 200) -> dict:
    """Each listed component's active image: the mean of its ``n_active`` most active frames minus
    the movie's mean frame, smoothed over 1 px — what the movie shows when its trace fires."""
    mean = sum(np.asarray(movie[s:s + chunk], np.float64).sum(axis=0) for s in range(0, movie.shape[0], chunk))
    mean = mean / movie.shape[0]
    return {j: ndimage.gaussian_filter(np.asarray(movie[np.sort(np.argsort(-C[j])[:n_active])], np.float64)
                                       .mean(axis=0) - mean, 1.0) for j in components}


def surplus_table(result, truth, C: np.ndarray, est_fp: np.ndarray, movie, gsig: float) -> dict:
    """Each surplus component: its trace against the neuron it covers, its best match among the true
    sources (neurons, out-of-focus cells, neuropil modes), its footprint's and its active image's
    breadth and core contrast, and its peak's distance from the field's edge; and how many neurons are
    covered twice by a component whose trace follows the neuron (r >= 0.5, the issue's duplicates),
    against the fit's median component (the in-focus cells' breadth and contrast); and how well a low
    active-image contrast singles out the surplus among the matched components whose trace follows
    their neuron (r >= 0.5), as an AUC."""
    from cnmflow.shape_scoring import covered_twice_by_followers, surplus_pairs

    ce, ct = _zscored(C), _zscored(truth["calcium"])
    sources = {"neuron": ct, "out_of_focus": _zscored(truth["out_of_focus_calcium"]),
               "neuropil": _zscored(truth["neuropil_traces"])}
    pairs = surplus_pairs(result)
    images = active_images(movie, C, range(len(est_fp)))
    rows = []
    for i, j in pairs:
        r_neuron = float(ct[i] @ ce[j])
        best = {kind: np.abs(x @ ce[j]) if kind == "neuropil" else x @ ce[j] for kind, x in sources.items() if x.size}
        kind = max(best, key=lambda k: best[k].max())
        peak = np.unravel_index(np.argmax(est_fp[j]), est_fp[j].shape)
        rows.append({"neuron": i, "component": j, "r_with_neuron": round(r_neuron, 2), "best_source": kind,
                     "best_source_index": int(best[kind].argmax()), "best_r": round(float(best[kind].max()), 2),
                     "footprint": footprint_breadth(est_fp[j], peak, gsig),
                     "active_image": footprint_breadth(images[j], peak, gsig),
                     "edge_px": int(min(peak[0], peak[1], est_fp.shape[1] - 1 - peak[0], est_fp.shape[2] - 1 - peak[1]))})
    everyone = [footprint_breadth(images[j], np.unravel_index(np.argmax(f), f.shape), gsig) for j, f in enumerate(est_fp)]
    contrast = np.array([e["core_contrast"] for e in everyone])
    followers = covered_twice_by_followers(result, truth["calcium"], C)
    good = [j for (_, j), r in zip(result.matches, result.trace_corrs) if r >= 0.5 and j not in {j for _, j in pairs}]
    return {"n_covered_twice_trace_following": len(followers), "surplus": rows,
            "median_active_image": {k: float(np.median([e[k] for e in everyone])) for k in everyone[0]} if everyone else {},
            "active_contrast_auc": _lower_auc(contrast[[j for _, j in pairs]], contrast[good])}


def _lower_auc(flagged: np.ndarray, kept: np.ndarray) -> float | None:
    """P(a flagged value < a kept value), ties half: how well a low value singles out the first group."""
    if not len(flagged) or not len(kept):
        return None
    below = (flagged[:, None] < kept[None, :]).mean() + 0.5 * (flagged[:, None] == kept[None, :]).mean()
    return round(float(below), 3)


def clipped_truth(truth_fp: np.ndarray, cuts=(0.1, 0.05, 0.02)) -> dict:
    """Median IoU and 90%-energy area of the *true* footprints cut below a fraction of their peak:
    what a perfect footprint clipped at that level would score."""
    from cnmflow.shape_scoring import shape_score

    out = {}
    for cut in cuts:
        clipped = np.where(truth_fp >= cut * truth_fp.max(axis=(1, 2), keepdims=True), truth_fp, 0)
        s = shape_score(truth_fp, clipped)
        out[f"{cut:g}"] = {"median_iou": round(s.median_iou, 3), "median_area": s.median_area_estimated}
    return out


def _by_thirds(r: np.ndarray, peak_snr: np.ndarray) -> list[float]:
    """Median r over the dim / middle / bright thirds of peak SNR, then over all."""
    edges = np.quantile(peak_snr, [1 / 3, 2 / 3])
    thirds = [peak_snr <= edges[0], (peak_snr > edges[0]) & (peak_snr <= edges[1]), peak_snr > edges[1]]
    return [round(float(np.nanmedian(r[m])), 3) for m in thirds] + [round(float(np.nanmedian(r)), 3)]


def trace_ceiling(config: str, frames: int, seed: int) -> dict:
    """The trace r an engine could reach if it knew every footprint and the whole background.

    Each true footprint's trace is the least-squares fit of the movie minus the true background (neuropil,
    vessels, out-of-focus cells, resting light) on all true footprints: only the noise is left. Deconvolved
    with the engine's own noise estimate (the PSD's high band) and with the noise sd the residual really has,
    so what the noise estimate alone costs shows. Median r by thirds of peak SNR and over all neurons.
    """
    from cnmflow.engine.deconvolution import deconvolve_trace, deconvolve_traces
    from cnmflow.synthetic import simulate_realistic_1p

    sim = simulate_realistic_1p(config, n_frames=frames, rng=seed, out=np.empty((frames, 256, 256), np.float32))
    t = sim.truth
    footprints = t.footprints.reshape(len(t.footprints), -1).T.astype(np.float64)
    background = t.background_spatial.reshape(len(t.background_spatial), -1).T @ t.background_temporal
    residual = sim.movie.reshape(frames, -1).T - background
    traces = np.linalg.solve(footprints.T @ footprints, footprints.T @ residual)
    truth = t.calcium.astype(np.float64)

    def r_rows(estimated: np.ndarray) -> np.ndarray:
        return np.array([np.corrcoef(e, c)[0, 1] for e, c in zip(estimated, truth)])

    psd_noise = np.array([d.c for d in deconvolve_traces(traces, p=1)])
    scale = (traces * truth).sum(axis=1) / (truth * truth).sum(axis=1)
    true_sd = (traces - scale[:, None] * truth).std(axis=1)
    true_noise = np.array([deconvolve_trace(y, p=1, sn=float(sd)).c for y, sd in zip(traces, true_sd)])
    return {name: _by_thirds(r_rows(x), t.peak_snr)
            for name, x in (("raw", traces), ("denoised, PSD noise sd", psd_noise),
                            ("denoised, true noise sd", true_noise))}


def fit_and_score(movie_path: Path, params: dict, out_json: Path) -> None:
    """Runs in a fresh process: fit the memory-mapped movie, score shapes and traces."""
    import resource

    from cnmflow.engine import fit
    from cnmflow.params import build_params
    from cnmflow.scoring import score
    from cnmflow.shape_scoring import shape_score

    movie = np.load(movie_path, mmap_mode="r")
    truth = np.load(movie_path.with_suffix(".truth.npz"))
    started = time.perf_counter()
    estimates = fit(movie, build_params(dict(params)))
    wall = time.perf_counter() - started
    cpu = time.process_time() + _children_cpu()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.savez_compressed(out_json.with_suffix(".estimates.npz"), footprints=estimates.footprints().astype(np.float32),
                        C=estimates.C.astype(np.float32), idx_components_bad=estimates.idx_components_bad,
                        focus_ratio=estimates.focus_ratio, YrA=estimates.YrA.astype(np.float32),
                        SNR_comp=estimates.SNR_comp)  # for looking at the footprints afterwards
    # scored as a CaImAn user reads a fit: the components the engine rejected (idx_components_bad) left out
    accepted = np.setdiff1d(np.arange(estimates.K), estimates.idx_components_bad)
    rejected = _rejected_kinds(truth, estimates)
    est_fp, C = estimates.footprints()[accepted], estimates.C[accepted]
    shapes = shape_score(truth["footprints"], est_fp, truth_traces=truth["calcium"], estimated_traces=C)
    old = score(truth["footprints"], est_fp, truth_traces=truth["calcium"], estimated_traces=C)
    record = {
        "movie": movie_path.name, "shape": list(movie.shape), "params": params, "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_rss, 1), "K": int(accepted.size), "n_rejected": len(rejected),
        "rejected": rejected, "cpu_s": round(cpu, 1),
        "stages_s": {stage: round(seconds, 2) for stage, seconds in estimates.timings.items()},
        **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in shapes.summary().items()},
        "score_f1_thr02": round(old.f1, 3),
        "diagnostics": {**diagnose(truth["footprints"], est_fp, shapes, truth["peak_snr"]),
                        "extra_components": extra_components(shapes, truth, C),
                        "edge_distance_px": edge_distances(shapes, est_fp, truth["footprints"]),
                        "covered_twice": surplus_table(shapes, truth, C, est_fp, movie, params["gSig"]),
                        "truth_clipped_at": clipped_truth(truth["footprints"])},
    }
    out_json.write_text(json.dumps(record, indent=1))


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rejected_kinds(truth, estimates) -> list[dict]:
    """Each component the engine rejected: what its trace follows best among the true sources, and whether
    its footprint would have matched a neuron (IoU > 0.3) — a true cell rejected shows here."""
    from cnmflow.shape_scoring import shape_score

    bad = [int(k) for k in estimates.idx_components_bad]
    if not bad:
        return []
    fp = estimates.footprints()
    full = shape_score(truth["footprints"], fp, truth_traces=truth["calcium"], estimated_traces=estimates.C)
    matched = {j: (i, float(r)) for (i, j), r in zip(full.matches, full.trace_corrs)}
    ce = _zscored(estimates.C)
    sources = {"neuron": _zscored(truth["calcium"]), "out_of_focus": _zscored(truth["out_of_focus_calcium"]),
               "neuropil": _zscored(truth["neuropil_traces"])}
    rows = []
    for k in bad:
        best = {kind: float(np.abs(x @ ce[k]).max() if kind == "neuropil" else (x @ ce[k]).max())
                for kind, x in sources.items() if x.size}
        rows.append({"component": k, "focus_ratio": round(float(estimates.focus_ratio[k]), 2),
                     "best_source": max(best, key=best.get), "best_r": round(max(best.values()), 2),
                     "matched_neuron": matched.get(k, (None,))[0],
                     "r_with_matched": round(matched[k][1], 2) if k in matched else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="extra fit parameters")
    parser.add_argument("--sim-set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="simulator settings replacing the preset's (RealisticConfig fields, values as JSON: "
                             "vessel_contrast=[0.38,0.45] n_vessels=3); the movie's name says them")
    parser.add_argument("--fit-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params-json", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--simulate-only", help=argparse.SUPPRESS)
    parser.add_argument("--ceiling", action="store_true",
                        help="print the trace r reachable with the true footprints and background (no fit)")
    args = parser.parse_args(argv)
    if args.ceiling:
        for config in args.configs:
            for name, r in trace_ceiling(config, CONFIGS[config]["frames"], args.seed).items():
                print(f"{config} seed {args.seed}, {name}: median trace r dim / middle / bright / all {r}")
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.simulate_only:
        simulate(args.simulate_only, CONFIGS[args.simulate_only]["frames"], RESULTS, args.seed,
                 parse_assignments(args.sim_set))
        return 0
    if args.fit_only:
        fit_and_score(args.fit_only, json.loads(args.params_json), args.out)
        return 0

    records = []
    for config in args.configs:
        spec = CONFIGS[config]
        params = {**spec["params"], **parse_assignments(args.set)}
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--simulate-only", config, "--seed", str(args.seed),
                        "--sim-set", *args.sim_set], check=True)
        simulate_s = time.perf_counter() - started
        movie_path = simulate(config, spec["frames"], RESULTS, args.seed, parse_assignments(args.sim_set))  # cached
        out = RESULTS / f"{movie_path.stem}.fit.json"
        subprocess.run([sys.executable, __file__, "--fit-only", str(movie_path), "--params-json", json.dumps(params),
                        "--out", str(out)], check=True)
        record = json.loads(out.read_text())
        record["configuration"], record["simulate_s"] = config, round(simulate_s, 1)
        records.append(record)
    summary = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()}, "targets": TARGETS, "runs": records}
    (RESULTS / "realistic_benchmark.json").write_text(json.dumps(summary, indent=1))
    cols = ("wall_s", "K", "n_true", "f1_iou50", "f1_iou30", "median_iou", "median_trace_corr",
            "median_area_true", "median_area_estimated", "n_multiply_covered", "n_surplus")
    print(f"{'configuration':<14}" + "".join(f"{c[:12]:>13}" for c in cols))
    for r in records:
        print(f"{r['configuration']:<14}" + "".join(f"{r[c]!s:>13}" for c in cols))
        d = r["diagnostics"]
        print(f"   profile true {d['profile_true']}\n   profile est  {d['profile_estimated']}")
        print(f"   by peak SNR {d['by_peak_snr']}")
        print(f"   peaks' distance to the field's edge (px): {d['edge_distance_px']}")
        twice = d["covered_twice"]
        print(f"   covered twice with a trace following the neuron (r >= 0.5): "
              f"{twice['n_covered_twice_trace_following']}; median component's active image {twice['median_active_image']}, "
              f"AUC of its low core contrast for the surplus against matched components {twice['active_contrast_auc']}")
        for row in twice["surplus"]:
            print(f"     surplus {row}")
        print(f"   rejected by the engine ({r['n_rejected']}): {r['rejected']}; fit CPU {r['cpu_s']} s")
        print(f"   extra components {d['extra_components']}; truth clipped at a fraction of its peak "
              f"{d['truth_clipped_at']}")
        print(f"   nnz true/est {d['nnz_true']}/{d['nnz_estimated']}, energy in 5 / 10 px true "
              f"{d['energy_5px_true']}/{d['energy_10px_true']} est {d['energy_5px_estimated']}/"
              f"{d['energy_10px_estimated']}, stages {r['stages_s']}")
    print("targets:", TARGETS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
