"""What a component's own image is made of, part by part of the simulator's truth (issue #16, h16own).

A diagnostic, not part of the product. ``engine/in_focus.py`` rejects a component whose *own image* (its row of
the window's least-squares regression of the mean-free movie on the traces of the components reaching the window)
has a flat core. Some true in-focus CA1 cells read flat (focus ratio 0.6–0.8). The regression is linear in the
movie, so the own image is the sum of the own images of the movie's parts, each regressed on the same traces:

* ``self``: the matched neuron's light (true footprint × true calcium),
* ``nbr``: every other in-focus neuron's light,
* ``oof``: the out-of-focus cells' light, ``bg``: vessels and neuropil (resting light is constant: it drops out),
* ``noise``: the movie minus all of these (shot and read noise).

For each listed component it prints the focus ratio of the observed own image, of its noise-free part, of the
neuron's own light alone, and of the true footprint read at the component's peak / at its own peak; the share of
the core's rise (core mean minus the level ring's mean) that each part holds; how far the footprint's peak lies
from the true footprint's; the trace's largest correlation with a vessel's and an out-of-focus cell's activity; and the focus ratio again with the
neuron's *true* trace in place of the component's (is the broad light in the fit's trace, or in the neuron's
activity?). The truth's background parts are not in the ``.truth.npz``: the movie is simulated again (checked
equal to the stored one). ``--below`` picks the components whose saved focus ratio is under it.

    PYTHONPATH=. .venv/bin/python benchmarks/own_image_parts.py \
        benchmarks/results/realistic_ca1_256x256x1000_seed1.npy --below 0.8
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.in_focus import LEVEL_RING_GSIG, WINDOW_GSIG, core_contrast, footprint_window, window_regressions
from cnmflow.engine.resample import block_means_along, frame_block_means
from cnmflow.shape_scoring import energy_masks, iou_matrix
from cnmflow.synthetic import simulate_realistic_1p

GSIG = {"ca1": 6.0, "cortex_l23": 3.0}   # realistic_benchmark.py's configs
PARTS = ("self", "nbr", "oof", "bg", "noise")


def truth_parts(config: str, frames: int, seed: int, movie: np.ndarray) -> dict:
    """The simulator's spatial and temporal parts (C pixel order), from a fresh simulation of the same movie."""
    sim = simulate_realistic_1p(config, n_frames=frames, rng=seed, out=np.empty(movie.shape, np.float32))
    if not np.array_equal(sim.movie[:2], movie[:2]):
        raise SystemExit("the simulation differs from the stored movie: not the same simulator or seed")
    t = sim.truth
    labels = np.array(t.background_labels)
    return dict(fin=t.footprints.reshape(len(t.footprints), -1), cal=t.calcium.astype(np.float64),
                bgs=t.background_spatial.reshape(len(labels), -1), bgt=t.background_temporal.astype(np.float64),
                oof=np.char.startswith(labels, "cell"),
                bg=np.char.startswith(labels, "vessel") | np.char.startswith(labels, "neuropil"),
                vessel=np.char.startswith(labels, "vessel"), footprints=t.footprints)


def part_movies(truth: dict, n: int, c_index: np.ndarray, observed: np.ndarray) -> dict[str, np.ndarray]:
    """(T, window pixels) movies of each part in one window, ``n`` the matched neuron."""
    fin, cal = truth["fin"], truth["cal"]
    others = [m for m in range(len(fin)) if m != n and fin[m, c_index].any()]
    movies = {"self": np.outer(cal[n], fin[n, c_index]),
              "nbr": cal[others].T @ fin[others][:, c_index] if others else np.zeros((cal.shape[1], c_index.size)),
              "oof": truth["bgt"][truth["oof"]].T @ truth["bgs"][truth["oof"]][:, c_index],
              "bg": truth["bgt"][truth["bg"]].T @ truth["bgs"][truth["bg"]][:, c_index]}
    movies["noise"] = observed - sum(movies.values())
    return movies


def own_rows(traces: np.ndarray, movies: dict[str, np.ndarray], tsub: int) -> dict[str, np.ndarray]:
    """The first trace's row of each movie's joint least-squares image on ``traces`` (centred, at rate tsub)."""
    slow = block_means_along(traces - traces.mean(axis=1, keepdims=True), tsub, axis=1)
    gram = slow @ slow.T
    gram += 1e-9 * np.trace(gram) / len(gram) * np.eye(len(gram))
    return {name: np.linalg.solve(gram, slow @ frame_block_means(m, tsub))[0] for name, m in movies.items()}


def rise_shares(images: dict[str, np.ndarray], peak: tuple[int, int], gsig: float) -> dict[str, float]:
    """Each part's share of the core's rise over the level ring (core mean minus ring mean; ring means add up)."""
    some = next(iter(images.values()))
    d = np.hypot(np.arange(some.shape[0])[:, None] - peak[0], np.arange(some.shape[1])[None, :] - peak[1])
    ring = (d > LEVEL_RING_GSIG[0] * gsig) & (d <= LEVEL_RING_GSIG[1] * gsig)
    rise = {name: float(img[d <= gsig].mean() - img[ring].mean()) for name, img in images.items()}
    total = sum(rise.values())
    return {name: value / total if total else np.nan for name, value in rise.items()}


def describe(k: int, n: int, fit: dict, truth: dict, movie2d: np.ndarray, typical: float) -> str:
    """One table row (markdown) for component k matched to neuron n."""
    window, group, gsig, tsub = fit["windows"][k], fit["groups"][k], fit["gsig"], fit["tsub"]
    shape, peak = window.shape, window.peak
    movies = part_movies(truth, n, window.c_index, movie2d[:, window.c_index].astype(np.float64))
    rows = own_rows(fit["C"][group], movies, tsub)
    images = {name: row.reshape(shape) for name, row in rows.items()}
    observed = sum(images.values())
    true_first = np.vstack([truth["cal"][n][None], fit["C"][group[1:]]])
    with_truth = sum(v.reshape(shape) for v in own_rows(true_first, movies, tsub).values())
    tf = truth["fin"][n, window.c_index].reshape(shape)
    own_peak = np.unravel_index(int(np.argmax(tf)), shape)

    def ratio(img: np.ndarray, at: tuple[int, int] = peak) -> str:
        return f"{core_contrast(img, at, gsig=gsig) / typical:.2f}"

    shares = rise_shares(images, peak, gsig)
    c = fit["C"][k] - fit["C"][k].mean()
    vessel_r = max(abs(np.corrcoef(c, v)[0, 1]) for v in truth["bgt"][truth["vessel"]])
    oof_r = max(np.corrcoef(c, o)[0, 1] for o in truth["bgt"][truth["oof"]])
    oof_r_true = max(np.corrcoef(truth["cal"][n], o)[0, 1] for o in truth["bgt"][truth["oof"]])
    offset = float(np.hypot(*(np.array(own_peak) - np.array(peak))))
    r_neuron = np.corrcoef(c, truth["cal"][n])[0, 1]
    return (f"| {k} ({n}) | {r_neuron:.2f} | {fit['ratio'][k]:.2f}{' rej' if k in fit['bad'] else ''} | {ratio(observed)} | "
            f"{ratio(observed - images['noise'])} | {ratio(images['self'])} | {ratio(tf)} / {ratio(tf, own_peak)} | "
            f"{offset:.1f} | " + " / ".join(f"{shares[p]:+.2f}" for p in PARTS)
            + f" | {vessel_r:.2f} | {oof_r:.2f} ({oof_r_true:.2f}) | {ratio(with_truth)} |")


def load_fit(movie_path: Path, movie: np.ndarray, gsig: float, tsub: int, *, without_rejected: bool) -> dict:
    """The saved fit's components, their windows and regression groups (``realistic_benchmark.py``'s estimates)."""
    est = np.load(movie_path.with_suffix(".fit.estimates.npz"))
    fp = est["footprints"]
    dims = fp.shape[1:]
    A = sp.csc_matrix(fp.transpose(0, 2, 1).reshape(len(fp), -1).T.astype(np.float64))
    radius = int(np.ceil(WINDOW_GSIG * gsig))
    windows = [footprint_window(A[:, k].toarray().ravel(), dims, radius=radius) for k in range(len(fp))]
    judged = {k: w for k, w in enumerate(windows) if w.shape == (2 * radius + 1, 2 * radius + 1)}
    C = est["C"].astype(np.float64)
    regs = window_regressions(movie, A, C, judged, tsub=tsub)
    bad = set(int(x) for x in est["idx_components_bad"])
    groups = {k: np.array([j for j in regs.neighbours[k] if j == k or not (without_rejected and int(j) in bad)])
              for k in judged}
    contrast = [core_contrast(regs.own_image(k, w), w.peak, gsig=gsig) for k, w in judged.items()]
    return dict(footprints=fp, C=C, windows=windows, groups=groups, bad=bad, ratio=est["focus_ratio"], gsig=gsig,
                tsub=tsub, typical=float(np.median(contrast)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("movie", type=Path, help="realistic_<config>_<rows>x<cols>x<T>_seed<N>.npy with its fit")
    parser.add_argument("--below", type=float, default=0.8, help="components whose saved focus ratio is below this")
    parser.add_argument("--min-iou", type=float, default=0.3, help="matched: 90%%-mask IoU above this")
    parser.add_argument("--tsub", type=int, default=2)
    args = parser.parse_args()
    found = re.match(r"realistic_(.+)_\d+x\d+x(\d+)_seed(\d+)$", args.movie.stem)
    if not found:
        raise SystemExit(f"{args.movie.name}: not a realistic_benchmark.py movie")
    config, frames, seed = found.group(1), int(found.group(2)), int(found.group(3))
    movie = np.load(args.movie)
    fit = load_fit(args.movie, movie, GSIG[config], args.tsub, without_rejected=True)
    truth = truth_parts(config, frames, seed, movie)
    iou, _ = iou_matrix(energy_masks(truth["footprints"]), energy_masks(fit["footprints"]))
    print(f"typical contrast {fit['typical']:.3f}")
    print("| component (neuron) | r(trace, neuron) | focus ratio | observed | noise-free | neuron's light | true footprint at the peak / "
          "at its own | peak offset px | core rise: " + " / ".join(PARTS) + " | max abs r(trace, vessel) | "
          "max r(trace, oof cell) (true trace's) | ratio, true trace |")
    movie2d = movie.reshape(len(movie), -1)
    for k in sorted(fit["groups"], key=lambda k: fit["ratio"][k]):
        if fit["ratio"][k] < args.below and iou[:, k].max() > args.min_iou:
            print(describe(k, int(iou[:, k].argmax()), fit, truth, movie2d, fit["typical"]))


if __name__ == "__main__":
    main()
